"""Where takes go and how they are recalled: ``renders/<kind>/<name>/<name>_tNN.<ext>`` plus a
JSON sidecar ``<name>_tNN.json`` beside each file.

The sidecars double as the render cache: each records the job key and take index it belongs
to, so "is this job already rendered?" is answered by the files themselves, and a take whose
file a user deleted is simply rendered again. A sidecar is written first (it claims the take
number), the audio second; a sidecar whose audio is missing is a take to finish, not a new one.
"""

from __future__ import annotations

import json
import re
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
    """The takes already claimed for a job key in this folder, by take index."""
    found: dict[int, Take] = {}
    if not folder.is_dir():
        return found
    pattern = _number_re(name)
    for sidecar in sorted(folder.glob(f"{name}_t*.json")):
        if not pattern.match(sidecar.name):
            continue
        try:
            data = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if data.get("job_key") == key and isinstance(data.get("take_index"), int):
            found[data["take_index"]] = Take(data["take_index"], folder / data.get("file", ""), sidecar)
    return found


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
