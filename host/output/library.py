"""A project's takes as a library: listing them with their state, and rejecting one.

**Rejecting** moves a take's audio and its sidecar from ``renders/<kind>/<name>/`` to
``renders/.rejected/<kind>/<name>/`` (the same layout) and records the rejection in the moved
sidecar: a ``rejected`` entry saying when, how (``cli`` or ``osc``) and with which tag. The moved
sidecars *are* the record: the take index reads them (:mod:`host.output.takes`), so the next run
treats that take index as used, does not render it again, and renders a replacement with a fresh
seed when the cue still wants more takes than are kept. Deleting the files from ``.rejected/``
forgets the rejection; deleting a take from ``renders/`` by hand (not rejecting it) still means
"render it again".

Only takes are ever moved: the path must resolve (symlinks included) to a file directly inside a
take folder ``renders/<kind>/<name>/`` of this project, be a regular file (not a link), and have
its sidecar beside it. Nothing is overwritten; a rejection cut short (a crash between the steps)
is finished by rejecting the same take again.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from host.config.paths import confine
from host.errors import InputError
from host.output.files import PARTIAL_SUFFIX
from host.output.takes import REJECTED, RENDERS, read_sidecar

KINDS = ("foley", "restyle", "inpaint")


@dataclass(frozen=True)
class Rejected:
    take: Path  # where the take's audio was (its sidecar, when the audio was already missing)
    moved_to: Path  # where it is now
    sidecar: Path  # the rejected sidecar, with its "rejected" entry


def reject_take(project_root: Path, path: str | Path, *, base: Optional[Path] = None, tag: str = "", via: str = "cli", where: str = "take") -> Rejected:
    """Reject one take of the project at ``project_root``: ``path`` is its audio or its sidecar,
    absolute or relative to ``base`` (default: the project). Raises InputError naming ``where``."""
    root = Path(project_root).resolve()
    renders = root / RENDERS
    if not renders.is_dir():
        raise InputError(where, f"the project {root.name} has no {RENDERS}/ folder: nothing to reject")
    text = str(path)
    if not text or "\x00" in text:
        raise InputError(where, "empty or invalid path")
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = Path(base or root) / candidate
    try:
        folder = confine(candidate.parent, [renders], where)
    except InputError:
        raise InputError(where, f"'{text}' is not inside {RENDERS}/ of the project {root.name}; only takes can be rejected") from None
    target = folder / candidate.name
    rel = folder.relative_to(renders.resolve()).parts
    if rel[:1] == (REJECTED,):
        raise InputError(where, f"'{text}' is rejected already")
    if len(rel) != 2 or rel[0] not in KINDS:
        raise InputError(where, f"'{text}' is not a take: takes are the files in {RENDERS}/<kind>/<name>/")
    try:
        return _move(renders, folder, rel, target, text, tag, via, where)
    except OSError as err:
        raise InputError(where, f"cannot move the take: {err.strerror or type(err).__name__}") from None


def _move(renders: Path, folder: Path, rel: tuple[str, ...], target: Path, text: str, tag: str, via: str, where: str) -> Rejected:
    sidecar = target if target.suffix == ".json" else target.with_suffix(".json")
    # From here every step goes through folder descriptors opened one component at a time without
    # following links, so a folder swapped for a symlink after the checks above cannot lead out.
    with _walk(renders, rel, where) as src:
        _regular_file(src, sidecar.name, where, f"'{text}' has no sidecar ({sidecar.name}); without it audiohost does not know the take (delete the file instead)")
        if target != sidecar:
            _regular_file(src, target.name, where, f"no take '{text}'")
        record = _read_json(src, sidecar.name)
        if not record or not isinstance(record.get("job_key"), str) or not isinstance(record.get("take_index"), int) or not isinstance(record.get("file"), str):
            raise InputError(where, f"{sidecar.name} is not an audiohost take sidecar")
        file = record["file"]
        if "/" in file or "\\" in file or file in ("", ".", "..") or file.startswith("."):
            raise InputError(where, f"{sidecar.name} names an odd file '{file}'")
        if target != sidecar and file != target.name:
            raise InputError(where, f"the sidecar beside '{text}' belongs to {file}")
        audio_st = _lstat(src, file)
        if audio_st is not None:
            _regular_file(src, file, where, f"the take's audio {file} is not a regular file")
        with _walk(renders, (REJECTED, *rel), where, create=True) as dst:
            shown = f"{RENDERS}/{REJECTED}/{'/'.join(rel)}"
            # nothing is overwritten: a file already there must be this very take (a rejection cut short)
            there = _lstat(dst, file)
            if audio_st is not None and there is not None and (there.st_dev, there.st_ino) != (audio_st.st_dev, audio_st.st_ino):
                raise InputError(where, f"{shown}/{file} exists already; move it away first")
            earlier = _read_json(dst, sidecar.name) if _lstat(dst, sidecar.name) is not None else None
            if _lstat(dst, sidecar.name) is not None and not _same_take(earlier, record):
                raise InputError(where, f"{shown}/{sidecar.name} exists already; move it away first")

            # 1. the audio gets its second name in .rejected (both names hold it: nothing can be
            # lost); where the filesystem has no hard links it moves there now
            if audio_st is not None and there is None:
                _place(src, file, dst, file)
            # 2. the rejection recorded: from here on the take counts as rejected
            if earlier is None:
                note = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "via": via, "tag": tag or None,
                        "from": "/".join((*rel, file)), "audio_missing": audio_st is None}
                _write_json_new(dst, sidecar.name, {**record, "rejected": note})
            os.fsync(dst)
            # 3. the take leaves renders/<kind>/<name>/
            if audio_st is not None and _lstat(src, file) is not None:
                os.unlink(file, dir_fd=src)
            try:
                os.unlink(sidecar.name, dir_fd=src)
            except FileNotFoundError:
                pass
            os.fsync(src)
    dest = renders.resolve() / REJECTED / rel[0] / rel[1]
    if audio_st is not None:
        return Rejected(folder / file, dest / file, dest / sidecar.name)
    return Rejected(folder / sidecar.name, dest / sidecar.name, dest / sidecar.name)


class _walk:
    """A folder under ``renders`` opened one component at a time, never following a link (and,
    with ``create``, made where missing); the descriptor while the ``with`` lasts."""

    def __init__(self, renders: Path, parts: tuple[str, ...], where: str, create: bool = False):
        self.renders, self.parts, self.where, self.create = renders, parts, where, create
        self.fd = -1

    def __enter__(self) -> int:
        fd = os.open(self.renders, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in self.parts:
                if self.create:
                    try:
                        os.mkdir(part, dir_fd=fd)
                    except FileExistsError:
                        pass
                try:
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError:
                    raise InputError(self.where, f"{RENDERS}/{'/'.join(self.parts)} is not a folder of the project's renders (a link, or gone)") from None
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return fd

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


# os.link fails with these where the filesystem has no hard links (FAT, exFAT, many SMB shares)
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EACCES, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK})


def _place(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    """``src`` (in folder ``src_fd``) also at ``dst`` (in ``dst_fd``), never replacing a file: a
    hard link, or where the filesystem has none a rename after checking ``dst`` is free (the
    file then leaves ``src``)."""
    try:
        os.link(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
        return
    except OSError as err:
        if err.errno not in _NO_HARD_LINKS:
            raise
    if _lstat(dst_fd, dst) is not None:
        raise FileExistsError(errno.EEXIST, "exists", dst)
    os.rename(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def _lstat(dir_fd: int, name: str) -> Optional[os.stat_result]:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None


def _read_json(dir_fd: int, name: str) -> Optional[dict]:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(1 << 24)
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _write_json_new(dir_fd: int, name: str, data: dict) -> None:
    """``name`` in the folder ``dir_fd`` as a new, whole JSON file (written aside, then linked)."""
    payload = (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    tmp = f".{name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        _place(dir_fd, tmp, dir_fd, name)
    finally:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass


def relative_base(project_root: Path, given: str | Path) -> Path:
    """What a relative take path is relative to: the project when it names something there (or
    starts with ``renders/``), else the project's ``renders/`` (as ``audiohost takes list`` shows
    takes)."""
    root = Path(project_root)
    given = Path(given)
    if os.path.lexists(root / given) or given.parts[:1] == (RENDERS,):
        return root
    return root / RENDERS


def _regular_file(dir_fd: int, name: str, where: str, missing: str) -> None:
    st = _lstat(dir_fd, name)
    if st is None:
        raise InputError(where, missing)
    if stat.S_ISLNK(st.st_mode):
        raise InputError(where, f"{name} is a symbolic link; only takes audiohost wrote can be rejected")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(where, f"{name} is not a file")


def _same_take(a: Optional[dict], b: dict) -> bool:
    if not a:
        return False
    if a.get("take_id") and b.get("take_id"):
        return a["take_id"] == b["take_id"]
    return (a.get("job_key"), a.get("take_index"), a.get("file")) == (b.get("job_key"), b.get("take_index"), b.get("file"))


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class TakeRow:
    """One take of a project as ``audiohost takes list`` shows it."""

    path: str  # relative to the project: renders/foley/rain/rain_t01.wav
    kind: str
    name: str
    take: int  # the number in the file name
    state: str  # kept | rejected | missing audio
    preset: Optional[str]
    seed: Optional[int]
    loudness: Optional[float]  # integrated LUFS as delivered (None: inpainted, or silence)
    true_peak: Optional[float]  # dBTP as delivered
    clap_score: Optional[float]  # when the take has been ranked
    rendered_at: Optional[str]
    rejected_at: Optional[str] = None
    prompt: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_takes(project_root: Path) -> list[TakeRow]:
    """Every take of the project: kept ones, ones whose audio is missing (rendered again on the
    next run) and rejected ones, sorted by kind, name and take number."""
    root = Path(project_root).resolve()
    renders = root / RENDERS
    rows: list[TakeRow] = []
    for kind in KINDS:
        for folder in _folders(renders / kind):
            for sidecar in _take_sidecars(folder):
                record = read_sidecar(sidecar)
                if _is_take(record):
                    state = "kept" if (folder / record["file"]).is_file() else "missing audio"
                    rows.append(_row(root, folder / record["file"], kind, folder.name, record, state))
        for folder in _folders(renders / REJECTED / kind):
            for sidecar in _take_sidecars(folder):
                record = read_sidecar(sidecar)
                if _is_take(record):
                    rows.append(_row(root, folder / record["file"], kind, folder.name, record, "rejected"))
    return sorted(rows, key=lambda r: (KINDS.index(r.kind), r.name, r.take, r.path))


def _folders(parent: Path) -> list[Path]:
    try:
        return sorted(p for p in parent.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    except OSError:
        return []


def _take_sidecars(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith(".") and p.is_file())


def _is_take(record: Optional[dict]) -> bool:
    return (
        isinstance(record, dict)
        and isinstance(record.get("job_key"), str)
        and isinstance(record.get("take_index"), int)
        and isinstance(record.get("file"), str)
        and "/" not in record["file"]
    )


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _row(root: Path, audio: Path, kind: str, name: str, record: dict, state: str) -> TakeRow:
    levels = record.get("levels") if isinstance(record.get("levels"), dict) else {}
    preset = record.get("preset") if isinstance(record.get("preset"), dict) else {}
    rejected = record.get("rejected") if isinstance(record.get("rejected"), dict) else {}
    seed = record.get("seed")
    return TakeRow(
        path=audio.relative_to(root).as_posix(),
        kind=kind,
        name=name,
        take=record["take"] if isinstance(record.get("take"), int) else 0,
        state=state,
        preset=preset.get("name"),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        loudness=_number(levels.get("loudness_out")),
        true_peak=_number(levels.get("true_peak_out")),
        clap_score=_number(record.get("clap_score")),
        rendered_at=record.get("rendered_at"),
        rejected_at=rejected.get("at"),
        prompt=record.get("prompt"),
    )


__all__ = ["Rejected", "TakeRow", "list_takes", "reject_take", "relative_base"]
