"""Where takes go and how they are recalled: ``renders/<kind>/<name>/<name>_tNN.<ext>`` plus a
JSON sidecar ``<name>_tNN.json`` beside each file.

The sidecars double as the render cache: each records the job key and take index it belongs
to, so "is this job already rendered?" is answered by the files themselves, and a take whose
file a user deleted is simply rendered again. A sidecar is written first (it claims the take
number), the audio second; a sidecar whose audio is missing is a take to finish, not a new one.
"""

from __future__ import annotations

import glob
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from host.output.files import write_json_new

RENDERS = "renders"


@dataclass(frozen=True)
class Take:
    index: int  # 0-based take of its job
    audio: Path
    sidecar: Path

    @property
    def complete(self) -> bool:
        return self.audio.is_file() and self.sidecar.is_file()


def take_folder(project_root: Path, kind: str, name: str) -> Path:
    return Path(project_root) / RENDERS / kind / name


def _number_re(name: str) -> re.Pattern:
    return re.compile(re.escape(name) + r"_t(\d{2,})\.json$")


def takes_for_key(folder: Path, name: str, key: str) -> dict[int, Take]:
    """The takes already claimed for a job key in this folder, by take index (reads every sidecar;
    a long-lived process asks a :class:`TakeIndex` instead)."""
    return _scan(folder, name).get(key, {})


def _scan(folder: Path, name: str) -> dict[str, dict[int, Take]]:
    """Every take claimed in ``folder`` under ``name``: job key -> take index -> Take."""
    found: dict[str, dict[int, Take]] = {}
    if not folder.is_dir():
        return found
    pattern = _number_re(name)
    for sidecar in sorted(folder.glob(f"{glob.escape(name)}_t*.json")):
        if not pattern.match(sidecar.name):
            continue
        try:
            data = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        key, index = data.get("job_key"), data.get("take_index")
        if isinstance(key, str) and isinstance(index, int) and isinstance(data.get("file"), str):
            found.setdefault(key, {})[index] = Take(index, folder / data["file"], sidecar)
    return found


class TakeIndex:
    """The takes on disk, read once per folder and kept: a folder's sidecars are read again only
    when the folder itself changed since (a take added or deleted by someone else; the
    directory's modification time tells). Claims made through :meth:`claim` update it in place,
    so rendering a job reads no sidecar at all once its folder is known."""

    def __init__(self) -> None:
        self._folders: dict[tuple[Path, str], tuple[Optional[tuple], dict[str, dict[int, Take]]]] = {}
        self._lock = threading.Lock()
        self.scans = 0  # folders read, for tests and benchmarks

    def takes(self, folder: Path, name: str, key: str) -> dict[int, Take]:
        folder = Path(folder)
        with self._lock:
            seen = _signature(folder)
            cached = self._folders.get((folder, name))
            if cached is None or cached[0] != seen or seen is None:
                self.scans += 1
                cached = (seen, _scan(folder, name))
                self._folders[(folder, name)] = cached
            return dict(cached[1].get(key, {}))

    def claim(self, folder: Path, name: str, key: str, index: int, ext: str, record: dict, unfinished: Optional[Take] = None) -> Take:
        take = claim_take(folder, name, index, ext, {**record, "job_key": key}, unfinished=unfinished)
        self._remember(Path(folder), name, key, take)
        return take

    def release(self, folder: Path, name: str, key: str, take: Take) -> None:
        release_take(take)
        with self._lock:
            cached = self._folders.get((Path(folder), name))
            if cached is not None:
                cached[1].get(key, {}).pop(take.index, None)

    def _remember(self, folder: Path, name: str, key: str, take: Take) -> None:
        with self._lock:
            cached = self._folders.get((folder, name))
            if cached is None:
                return  # never read: the next look-up scans the folder
            cached[1].setdefault(key, {})[take.index] = take
            self._folders[(folder, name)] = (_signature(folder), cached[1])

    def published(self, folder: Path, name: str) -> None:
        """The audio of a claimed take landed: the folder changed, and that was us."""
        with self._lock:
            cached = self._folders.get((Path(folder), name))
            if cached is not None:
                self._folders[(Path(folder), name)] = (_signature(Path(folder)), cached[1])


def _signature(folder: Path) -> Optional[tuple]:
    try:
        st = folder.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_nlink)


def claim_take(folder: Path, name: str, index: int, ext: str, record: dict, unfinished: Optional[Take] = None) -> Take:
    """Write the sidecar under the next free take number (never over another take) and return
    where the audio goes. Safe against a concurrent writer: the link either wins or moves on.

    ``unfinished``: an earlier claim of this take whose audio is missing; the take is finished
    under that number (its stale sidecar replaced) rather than claimed anew."""
    folder.mkdir(parents=True, exist_ok=True)
    pattern = _number_re(name)
    used = [int(m.group(1)) for p in folder.glob(f"{name}_t*") if (m := pattern.match(p.with_suffix(".json").name))]
    number = max(used, default=0) + 1
    if unfinished is not None and not unfinished.audio.exists() and (m := pattern.match(unfinished.sidecar.name)):
        unfinished.sidecar.unlink(missing_ok=True)
        number = int(m.group(1))
    while True:
        stem = f"{name}_t{number:02d}"
        audio, sidecar = folder / f"{stem}.{ext}", folder / f"{stem}.json"
        if not audio.exists():
            try:
                write_json_new(sidecar, {**record, "file": audio.name, "take_index": index, "take": number})
                return Take(index, audio, sidecar)
            except FileExistsError:
                pass
        number += 1


def release_take(take: Take) -> None:
    """Undo a claim whose audio never arrived (the render failed after claiming)."""
    if not take.audio.exists():
        take.sidecar.unlink(missing_ok=True)


def read_sidecar(path: Path) -> Optional[dict]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
