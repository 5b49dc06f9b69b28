"""Where takes go and how they are found again: ``renders/<kind>/<name>/<file>_tNN.<ext>`` plus a
JSON sidecar ``<file>_tNN.json`` beside each, and ``renders/.rejected/<kind>/<name>/`` for the
takes a user rejected.

The file name (:func:`take_base`) is the cue's name for foley, ``<stem>__<preset>`` for a restyled
or inpainted stem (so takes of one stem made with different presets are told apart and numbered
apart), or a UCS name when the project asks for one. The *cache* does not depend on the names:
each sidecar records the job key and take index it belongs to, and a folder is read whole, so
"is this job already rendered?" is answered by the sidecars in the folder whatever the files are
called (takes named by an earlier scheme, or before the project switched to UCS names, are found
the same). A take whose audio a user deleted is rendered again; a rejected take is not, and a
replacement with a fresh seed takes its place (:func:`wanted_indices`).

A sidecar is written first (it claims the take number), the audio second; a sidecar whose audio
is missing is a take to finish, not a new one.
"""

from __future__ import annotations

import glob
import json
import re
import threading
from dataclasses import dataclass, field, replace
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from host.output.files import write_json_new

if TYPE_CHECKING:
    from host.jobs.job import Job

RENDERS = "renders"
REJECTED = ".rejected"  # renders/.rejected/<kind>/<name>/: rejected takes and their sidecars
PRESET_PART_MAX = 60


@dataclass(frozen=True)
class Take:
    index: int  # 0-based take of its job
    audio: Path
    sidecar: Path
    number: int = 0  # the take number in the file name (_t01 is 1); 0 if not known
    score: Optional[float] = None  # its CLAP score when its job was ranked (from the sidecar)

    @property
    def complete(self) -> bool:
        return self.audio.is_file() and self.sidecar.is_file()


@dataclass(frozen=True)
class Found:
    """What a take folder holds for one job key."""

    claimed: dict[int, Take] = field(default_factory=dict)  # take index -> take (audio may be missing)
    rejected: frozenset[int] = frozenset()  # take indices a user rejected


def take_folder(project_root: Path, kind: str, name: str) -> Path:
    return Path(project_root) / RENDERS / kind / name


def rejected_folder(folder: Path) -> Path:
    """Where the rejected takes of the take folder ``renders/<kind>/<name>`` go."""
    folder = Path(folder)
    return folder.parent.parent / REJECTED / folder.parent.name / folder.name


def take_base(job: "Job") -> tuple[str, Optional[str]]:
    """(the file name of the job's takes before ``_tNN``, a note when UCS naming could not be used).

    - default naming: the cue's name for foley; ``<stem>__<preset>`` for restyle and inpaint;
    - ``naming = "ucs"``: ``CatID_FXName_CreatorID_SourceID`` (the take number then is the UCS
      UserData block, ``_t01``), the CatID from the preset, cue or stem sidecar (``ucs``), the FX
      name from the cue or stem name (and for a stem the preset's, as above). Without a CatID the
      default name is used and the note says why. Raises InputError for a name UCS cannot hold.
    """
    from host.output.ucs import ucs_name

    default = job.name if job.kind == "foley" else f"{job.name}__{_preset_part(job.preset_name)}"
    if job.ucs_ids is None:
        return default, None
    if not job.preset.ucs:
        where = "the cue or its preset" if job.kind == "foley" else "the stem's sidecar or its preset"
        note = f'naming = "ucs", but {where} ({job.preset_name}) gives no UCS CatID (ucs = "..."); named {default}_tNN instead'
        return default, note
    fx = job.name if job.kind == "foley" else f"{job.name} {job.preset_name}"
    creator, source = job.ucs_ids
    return ucs_name(job.preset.ucs, fx, creator, source), None


def _preset_part(preset_name: str) -> str:
    part = re.sub(r"[^A-Za-z0-9.-]+", "-", preset_name).strip("-.")
    return part[:PRESET_PART_MAX].rstrip("-.") or "preset"


def wanted_indices(takes: int, rejected: Iterable[int] = ()) -> list[int]:
    """The take indices a job of ``takes`` takes keeps: the first ``takes`` that were not
    rejected. Rejecting index 1 of 3 makes the wanted ones 0, 2, 3: index 3 is a new take, with
    its own seed, so kept takes plus new ones make ``takes``."""
    skip = set(rejected)
    return [i for i, _ in zip((i for i in count() if i not in skip), range(max(0, takes)))]


def kept_takes(found: Found, takes: int) -> dict[int, Take]:
    """The wanted takes (:func:`wanted_indices`) that are whole on disk, by index."""
    out = {}
    for i in wanted_indices(takes, found.rejected):
        take = found.claimed.get(i)
        if take is not None and take.complete:
            out[i] = take
    return out


def _number_re(base: str) -> re.Pattern:
    return re.compile(re.escape(base) + r"_t(\d{2,})\.json$")


def takes_for_key(folder: Path, key: str) -> Found:
    """What ``folder`` holds for a job key (reads every sidecar; a long-lived process asks a
    :class:`TakeIndex` instead)."""
    return _scan(folder).get(key, Found())


def _sidecars(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


def _score(record: dict) -> Optional[float]:
    score = record.get("clap_score")
    return float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None


def _scan(folder: Path) -> dict[str, Found]:
    """Every take claimed in ``folder`` and every take rejected from it: job key -> Found."""
    claimed: dict[str, dict[int, Take]] = {}
    rejected: dict[str, set[int]] = {}
    for where, into in ((folder, "claimed"), (rejected_folder(folder), "rejected")):
        for sidecar in _sidecars(where):
            data = read_sidecar(sidecar)
            if not isinstance(data, dict):
                continue
            key, index, file = data.get("job_key"), data.get("take_index"), data.get("file")
            if not (isinstance(key, str) and isinstance(index, int) and not isinstance(index, bool) and isinstance(file, str)):
                continue
            if into == "rejected":
                rejected.setdefault(key, set()).add(index)
            elif "/" not in file and "\\" not in file:
                number = data.get("take") if isinstance(data.get("take"), int) else 0
                claimed.setdefault(key, {})[index] = Take(index, folder / file, sidecar, number, _score(data))
    return {
        key: Found({i: t for i, t in claimed.get(key, {}).items() if i not in rejected.get(key, set())}, frozenset(rejected.get(key, ())))
        for key in set(claimed) | set(rejected)
    }


class TakeIndex:
    """The takes on disk, read once per folder and kept: a folder's sidecars are read again only
    when the folder or its rejected folder changed since (a take added, deleted or rejected by
    someone else; the directories' modification times tell). Claims made through :meth:`claim`
    update it in place, so rendering a job reads no sidecar at all once its folder is known."""

    def __init__(self) -> None:
        self._folders: dict[Path, tuple[Optional[tuple], dict[str, Found]]] = {}
        self._lock = threading.Lock()
        self.scans = 0  # folders read, for tests and benchmarks

    def lookup(self, folder: Path, key: str) -> Found:
        folder = Path(folder)
        with self._lock:
            seen = _signature(folder)
            cached = self._folders.get(folder)
            if cached is None or cached[0] != seen or seen is None:
                self.scans += 1
                cached = (seen, _scan(folder))
                self._folders[folder] = cached
            found = cached[1].get(key, Found())
            return Found(dict(found.claimed), found.rejected)

    def takes(self, folder: Path, key: str) -> dict[int, Take]:
        """The claimed (not rejected) takes of a job key, by take index."""
        return self.lookup(folder, key).claimed

    def claim(self, folder: Path, base: str, key: str, index: int, ext: str, record: dict, unfinished: Optional[Take] = None) -> Take:
        take = claim_take(folder, base, index, ext, {**record, "job_key": key}, unfinished=unfinished)
        take = replace(take, score=_score(record))
        self._remember(Path(folder), key, take)
        return take

    def release(self, folder: Path, key: str, take: Take) -> None:
        release_take(take)
        with self._lock:
            cached = self._folders.get(Path(folder))
            if cached is not None and key in cached[1]:
                cached[1][key].claimed.pop(take.index, None)

    def _remember(self, folder: Path, key: str, take: Take) -> None:
        with self._lock:
            cached = self._folders.get(folder)
            if cached is None:
                return  # never read: the next look-up scans the folder
            found = cached[1].setdefault(key, Found())
            found.claimed[take.index] = take
            self._folders[folder] = (_signature(folder), cached[1])

    def published(self, folder: Path) -> None:
        """The audio of a claimed take landed: the folder changed, and that was us."""
        with self._lock:
            cached = self._folders.get(Path(folder))
            if cached is not None:
                self._folders[Path(folder)] = (_signature(Path(folder)), cached[1])


def _signature(folder: Path) -> Optional[tuple]:
    try:
        st = folder.stat()
    except OSError:
        return None
    try:
        rt = rejected_folder(folder).stat()
        rejected = (rt.st_ino, rt.st_mtime_ns, rt.st_nlink)
    except OSError:
        rejected = None
    return (st.st_ino, st.st_mtime_ns, st.st_nlink, rejected)


def used_numbers(folder: Path, base: str) -> set[int]:
    """Take numbers of ``base`` in use in ``folder`` or its rejected folder (a file of either kind,
    audio or sidecar): a new take never reuses the number of a rejected one."""
    pattern = _number_re(base)
    used = set()
    for where in (folder, rejected_folder(folder)):
        if where.is_dir():
            for p in where.glob(f"{glob.escape(base)}_t*"):
                m = pattern.match(p.with_suffix(".json").name)
                if m:
                    used.add(int(m.group(1)))
    return used


def claim_take(folder: Path, base: str, index: int, ext: str, record: dict, unfinished: Optional[Take] = None) -> Take:
    """Write the sidecar under the next free take number of ``base`` (never over another take) and
    return where the audio goes. Safe against a concurrent writer: the link either wins or moves on.

    ``unfinished``: an earlier claim of this take whose audio is missing; the take is finished
    under that name and number (its stale sidecar replaced) rather than claimed anew."""
    folder.mkdir(parents=True, exist_ok=True)
    if unfinished is not None and not unfinished.audio.exists() and unfinished.audio.suffix == f".{ext}":
        unfinished.sidecar.unlink(missing_ok=True)
        number = unfinished.number or _number_in(unfinished.sidecar.name)
        try:
            write_json_new(unfinished.sidecar, {**record, "file": unfinished.audio.name, "take_index": index, "take": number})
            return Take(index, unfinished.audio, unfinished.sidecar, number)
        except FileExistsError:
            pass  # someone claimed that name meanwhile: a new number below
    number = max(used_numbers(folder, base), default=0) + 1
    while True:
        stem = f"{base}_t{number:02d}"
        audio, sidecar = folder / f"{stem}.{ext}", folder / f"{stem}.json"
        if not audio.exists():
            try:
                write_json_new(sidecar, {**record, "file": audio.name, "take_index": index, "take": number})
                return Take(index, audio, sidecar, number)
            except FileExistsError:
                pass
        number += 1


def _number_in(name: str) -> int:
    m = re.search(r"_t(\d{2,})\.json$", name)
    return int(m.group(1)) if m else 0


def release_take(take: Take) -> None:
    """Undo a claim whose audio never arrived (the render failed after claiming)."""
    if not take.audio.exists():
        take.sidecar.unlink(missing_ok=True)


def read_sidecar(path: Path) -> Optional[dict]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
