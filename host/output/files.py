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
from dataclasses import dataclass
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

# Sample formats written back exactly as read: bits per sample (float ones by their width).
EXACT_SUBTYPES = {"PCM_U8": 8, "PCM_S8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}
# Containers an input's own format is kept in (libsndfile's name -> extension); others become WAV.
KEPT_CONTAINERS = {"WAV": "wav", "FLAC": "flac", "AIFF": "aiff"}
# Encodings whose decoded samples are not whole numbers: always written as float.
LOSSY_SUBTYPES = frozenset({"MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III", "VORBIS", "OPUS"})


@dataclass(frozen=True)
class SampleFormat:
    """A container (also the file extension: wav, flac, aiff) and a libsndfile subtype."""

    container: str
    subtype: str

    @property
    def bits(self) -> int:
        return EXACT_SUBTYPES[self.subtype]


def input_sample_format(container: str, subtype: str, audio: np.ndarray) -> SampleFormat:
    """What a file read as ``container``/``subtype`` (libsndfile's names, e.g. "WAV", "PCM_24") is
    written back as, so that every decoded sample of ``audio`` reads back bit for bit.

    1. Plain PCM or float (8/16/24/32-bit integer, 32/64-bit float): the same subtype, in the same
       container when that is WAV, FLAC or AIFF, else in WAV (where signed 8-bit becomes WAV's
       unsigned 8-bit: the same 256 values).
    2. Other encodings that decode to whole numbers (mu-law, A-law, ADPCM, GSM 6.10, ALAC, ...): WAV
       PCM at the narrowest of 16, 24 or 32 bits that holds every decoded sample exactly.
    3. Lossy ones (MP3, Vorbis, Opus), and whatever 2 cannot hold: 32-bit float WAV, or 64-bit
       float in the rare case a decoded sample is not a 32-bit float.
    """
    container, subtype = container.upper(), subtype.upper()
    if subtype in EXACT_SUBTYPES:
        ext = KEPT_CONTAINERS.get(container)
        if ext is not None and sf.check_format(container, subtype):
            return SampleFormat(ext, subtype)
        return SampleFormat("wav", "PCM_U8" if subtype == "PCM_S8" else subtype)
    x = np.asarray(audio, dtype=np.float64)
    if subtype not in LOSSY_SUBTYPES:
        for bits in (16, 24, 32):
            top = float(1 << (bits - 1))
            scaled = x * top
            if np.all((scaled >= -top) & (scaled < top)) and np.array_equal(scaled, np.rint(scaled)):
                return SampleFormat("wav", f"PCM_{bits}")
    return SampleFormat("wav", "FLOAT" if np.array_equal(x, x.astype(np.float32)) else "DOUBLE")


def write_audio_new(
    path: Path,
    audio: np.ndarray,
    rate: int,
    bit_depth: Optional[int],
    fmt: str,
    subtype: Optional[str] = None,
    *,
    metadata: Optional[TakeMetadata] = None,
    carried: Optional[Carried] = None,
    chunks: Sequence[Chunk] = (),
) -> None:
    """Write ``audio`` (channels, samples) as a new WAV/FLAC file at ``path``; never overwrite.

    16/24-bit are integer PCM (WAV and FLAC), 32 is 32-bit float (WAV only): the project's
    delivery formats. ``subtype`` instead names the libsndfile sample format to write (one of
    ``EXACT_SUBTYPES``, as :func:`input_sample_format` chooses; ``bit_depth`` is then unused)
    and ``fmt`` may also be "aiff". Integer samples are clipped to [-1, 1) and rounded here, so
    out-of-range input saturates instead of wrapping; float samples are written as they are.
    Raises ``FileExistsError`` if ``path`` exists (the existing file is left untouched) and
    ``ValueError`` for an unsupported format/depth.

    ``metadata``: the take's bext/iXML chunks (WAV) or Vorbis comments (FLAC), written before the
    file is published (:mod:`host.output.metadata`). ``carried``: what the input held
    (:func:`~host.output.metadata.read_carried`), kept in the take: only for a take written in the
    input's own format and rate (inpainting). ``chunks``: further WAV chunks, e.g. a ``smpl`` loop.
    A WAV whose audio would pass 4 GiB is written as RF64.
    """
    fmt = fmt.lower()
    if subtype is None:
        subtype = _SUBTYPES.get(fmt, {}).get(bit_depth)
        if subtype is None:
            raise ValueError(f"cannot write {bit_depth}-bit {fmt!r} (supported: wav 16/24/32, flac 16/24)")
    elif subtype not in EXACT_SUBTYPES or fmt not in KEPT_CONTAINERS.values() or not sf.check_format(fmt.upper(), subtype):
        raise ValueError(f"cannot write {subtype!r} in {fmt!r} (supported: {', '.join(EXACT_SUBTYPES)} in wav, flac or aiff where the container allows)")
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"audio must be (channels, samples), got shape {x.shape}")
    frames = _quantise(x, subtype).T  # soundfile wants (frames, channels)
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


def _quantise(x: np.ndarray, subtype: str) -> np.ndarray:
    """float -> float32 (FLOAT), float64 (DOUBLE), or clipped, rounded integers as int32 with the
    sample in the top bits (libsndfile keeps the top 8/16/24/32 bits of int32 samples)."""
    if subtype == "FLOAT":
        return np.ascontiguousarray(x, dtype=np.float32)
    if subtype == "DOUBLE":
        return np.ascontiguousarray(x, dtype=np.float64)
    bits = EXACT_SUBTYPES[subtype]
    scale = float(1 << (bits - 1))
    q = np.clip(np.rint(np.asarray(x, dtype=np.float64) * scale), -scale, scale - 1).astype(np.int64)
    return np.ascontiguousarray(q << (32 - bits), dtype=np.int32)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
