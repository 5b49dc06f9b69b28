"""Whole files or nothing: deliveries are written to a hidden temp file and published with a hard link.

A reader (the DAW, a sync client) therefore sees either no file or the complete file, an existing
file is never overwritten, and a crash leaves at most ``.<name>.<random>.partial`` temp files,
which ``remove_partials`` clears at start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional, Sequence

import numpy as np
import soundfile as sf

from host.output.metadata import Carried, TakeMetadata, flac_tags, take_chunks, write_flac_tags
from host.output.riff import Chunk, container_for, write_wav

PARTIAL_SUFFIX = ".partial"
SPOOL_BYTES = 64 << 20  # audio up to this size is embedded in memory, larger on a temp disk file

_SUBTYPES = {
    "wav": {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"},
    "flac": {16: "PCM_16", 24: "PCM_24"},
}


def write_audio_new(
    path: Path,
    audio: np.ndarray,
    rate: int,
    bit_depth: int,
    fmt: str,
    *,
    metadata: Optional[TakeMetadata] = None,
    carried: Optional[Carried] = None,
    chunks: Sequence[Chunk] = (),
) -> None:
    """Write ``audio`` (channels, samples) as a new WAV/FLAC file at ``path``; never overwrite.

    16/24-bit are integer PCM (WAV and FLAC), 32 is 32-bit float (WAV only). Integer samples are
    clipped to [-1, 1) and rounded here, so out-of-range input saturates instead of wrapping.
    Raises ``FileExistsError`` if ``path`` exists (the existing file is left untouched) and
    ``ValueError`` for an unsupported format/depth.

    ``metadata``: the take's bext/iXML chunks (WAV) or Vorbis comments (FLAC), written before the
    file is published (:mod:`host.output.metadata`). ``carried``: what the input held
    (:func:`~host.output.metadata.read_carried`), kept in the take: only for a take written in the
    input's own format and rate (inpainting). ``chunks``: further WAV chunks, e.g. a ``smpl`` loop.
    A WAV whose audio would pass 4 GiB is written as RF64.
    """
    fmt = fmt.lower()
    subtype = _SUBTYPES.get(fmt, {}).get(bit_depth)
    if subtype is None:
        raise ValueError(f"cannot write {bit_depth}-bit {fmt!r} (supported: wav 16/24/32, flac 16/24)")
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"audio must be (channels, samples), got shape {x.shape}")
    frames = _quantise(x, bit_depth).T  # soundfile wants (frames, channels)
    if chunks and fmt != "wav":
        raise ValueError(f"WAV chunks ({', '.join(c.name for c in chunks)}) cannot go into a {fmt} file")
    if carried is not None and carried.chunks and carried.sample_rate not in (0, int(rate)):
        # cue points, loops and the like count samples at the input's rate
        raise ValueError(f"chunks carried from a {carried.sample_rate} Hz input cannot go into a {rate} Hz take")
    container = container_for(frames.nbytes) if fmt == "wav" else fmt.upper()
    embed = metadata is not None or bool(chunks) or (carried is not None and (carried.chunks or carried.tags))

    def write(f: BinaryIO) -> None:
        if not embed:
            sf.write(f, frames, int(rate), subtype=subtype, format=container)
            return
        # soundfile writes the audio to a spool (memory, or disk past SPOOL_BYTES); the chunks or
        # comments go in on the way to the temp file that _publish links into place.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            sf.write(spool, frames, int(rate), subtype=subtype, format=container)
            spool.seek(0)
            if fmt == "wav":
                extra = take_chunks(metadata, carried, chunks) if metadata is not None else _carried_chunks(carried, chunks)
                write_wav(f, spool, extra, fmt=carried.fmt if carried is not None else None)
            else:
                if metadata is not None:
                    write_flac_tags(spool, flac_tags(metadata, carried))
                elif carried is not None:
                    write_flac_tags(spool, carried.tags)
                spool.seek(0)
                shutil.copyfileobj(spool, f, 1 << 20)

    _publish(Path(path), write)


def write_json_new(path: Path, data: dict) -> None:
    """Write ``data`` as a new UTF-8 JSON file (indent 2, sorted keys); never overwrite.

    NaN/inf are refused (strict JSON); numpy scalars/arrays and paths are converted.
    """
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False, default=_json_default)
    payload = (text + "\n").encode("utf-8")
    _publish(Path(path), lambda f: f.write(payload))


def remove_partials(root: Path) -> list[Path]:
    """Delete every ``*.partial`` file under ``root`` (recursively, not following symlinks); return them."""
    removed = []
    for dirpath, _dirs, names in os.walk(root, followlinks=False):
        for name in names:
            if name.endswith(PARTIAL_SUFFIX):
                target = Path(dirpath) / name
                try:
                    target.unlink()
                except FileNotFoundError:  # another process cleaned it first
                    continue
                removed.append(target)
    return sorted(removed)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- helpers


def _publish(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write via ``write(fileobj)`` to a temp file beside ``path``, fsync, hard-link into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(path):  # fail before doing the work; os.link below is the real guard
        raise FileExistsError(f"refusing to overwrite {path}")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # atomic, and raises FileExistsError instead of replacing
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the new directory entry durable (where the OS allows opening directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _carried_chunks(carried: Optional[Carried], chunks: Sequence[Chunk]) -> list[Chunk]:
    """Without take metadata: the input's chunks, with ``chunks`` replacing ones of their kind."""
    keys = {c.key for c in chunks}
    kept = [c for c in carried.chunks if c.key not in keys] if carried is not None else []
    return kept + list(chunks)


def _quantise(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """float -> float32 (32) or clipped, rounded integers (16: int16, 24: int32 with the low byte 0)."""
    if bit_depth == 32:
        return np.ascontiguousarray(x, dtype=np.float32)
    scale = float(1 << (bit_depth - 1))
    q = np.clip(np.rint(np.asarray(x, dtype=np.float64) * scale), -scale, scale - 1)
    if bit_depth == 16:
        return q.astype(np.int16)
    return q.astype(np.int32) << 8  # libsndfile keeps the top 24 bits of int32 samples


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
