"""Reading a stem that arrived: any format libsndfile reads, any rate and channel count.

``read_stem_confined`` is what a render uses: it confines the path again at the moment of use,
reads the bytes once from one descriptor (never a FIFO, a folder or a device), hashes them and
decodes them, and refuses a file whose container says it is not whole yet.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import soundfile as sf

from host.config.paths import open_confined
from host.errors import InputError
from host.intake.containers import INCOMPLETE, container_problem, frames_problem, looks_like_audio

MAX_STEM_SECONDS = 600.0
MAX_STEM_BYTES = 2 * 1024**3
# containers whose header states the exact length (MP3 and Ogg lengths can be estimates)
MIN_STEM_RATE = 4000  # below this no stem is rendered (a 1 Hz WAV is refused in one line)
EXACT_LENGTH_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF", "FLAC", "CAF"})


@dataclass(frozen=True)
class StemAudio:
    audio: np.ndarray  # float64, (channels, samples): exact for every integer PCM format
    rate: int
    subtype: str  # libsndfile's, e.g. PCM_24
    format: str  # libsndfile's, e.g. WAV, FLAC

    @property
    def seconds(self) -> float:
        return self.audio.shape[1] / self.rate


def read_stem(path: Path, max_seconds: float = MAX_STEM_SECONDS, max_bytes: int = MAX_STEM_BYTES) -> StemAudio:
    """The stem's samples, or an InputError naming the file and why it cannot be used.
    Opened without blocking (a FIFO is refused); no confinement: for paths the host chose."""
    path = Path(path)
    where = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise InputError(where, "file not found") from None
    except OSError as err:
        raise InputError(where, f"cannot read: {err.strerror or err}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(where, "not a regular file; not read")
        data = _read_all(fd, where, max_bytes)
    finally:
        os.close(fd)
    return decode_stem(data, where, max_seconds)


def read_stem_confined(
    path: Path, roots: Iterable[Path], max_seconds: float = MAX_STEM_SECONDS, max_bytes: int = MAX_STEM_BYTES, where: Optional[str] = None,
    keep: Optional[list] = None,
) -> tuple[StemAudio, str]:
    """Read a stem at the moment of use: (samples, hex SHA-256 of the bytes they came from).

    The path is confined to ``roots`` again now, and opened so that only that regular file can be
    read (a symlink swapped in since the request, a FIFO, a folder or a device is refused with
    one line). The bytes are read once from that one descriptor: the hash and the samples are
    of the same content, which must be a whole file (``host.intake.containers``). ``keep``: a
    list the bytes are appended to, for a caller that reads more from them."""
    where = where or str(path)
    fd, _resolved = open_confined(path, roots, where)
    try:
        data = _read_all(fd, where, max_bytes)
    finally:
        os.close(fd)
    stem = decode_stem(data, where, max_seconds)
    if keep is not None:  # the caller reads more from the same bytes (the file's metadata chunks)
        keep.append(data)
    return stem, hashlib.sha256(data).hexdigest()


def _read_all(fd: int, where: str, max_bytes: int) -> bytes:
    """Every byte of the open regular file, which must not change while it is read."""
    before = os.fstat(fd)
    if before.st_size > max_bytes:
        raise InputError(where, f"file is {before.st_size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    buf = bytearray()
    try:
        while len(buf) <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - len(buf)))
            if not chunk:
                break
            buf += chunk
    except OSError as err:
        raise InputError(where, f"cannot read: {err.strerror or err}") from None
    if len(buf) > max_bytes:
        raise InputError(where, f"grew past {max_bytes / 1e6:.0f} MB while being read; the limit is {max_bytes / 1e6:.0f} MB")
    after = os.fstat(fd)
    if len(buf) != after.st_size or (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise InputError(where, f"{INCOMPLETE}: it changed while being read")
    return bytes(buf)


def decode_stem(data: bytes, where: str, max_seconds: float = MAX_STEM_SECONDS) -> StemAudio:
    """Samples from a whole audio file's bytes, exactly (float64), or an InputError."""
    if not data:
        raise InputError(where, "is empty (0 bytes)")
    if not looks_like_audio(bytes(data[:16]), Path(where).suffix):
        raise InputError(where, "not a readable audio file (format not recognised or the file is corrupt)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            frames, rate, subtype, fmt = f.frames, f.samplerate, f.subtype, f.format
            if frames <= 0 or rate <= 0:
                raise InputError(where, "holds no audio")
            if rate < MIN_STEM_RATE:
                raise InputError(where, f"is at {rate} Hz; the host renders stems of {MIN_STEM_RATE} Hz and up")
            if frames / rate > max_seconds:
                raise InputError(where, f"is {frames / rate:.1f} s long; the limit is {max_seconds:g} s")
            problem = container_problem(data)
            if problem:
                raise InputError(where, problem)
            try:
                audio = f.read(dtype="float64", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as err:
                decoded = _decodable_frames(data)
                if decoded < frames:  # e.g. a FLAC that ends mid-frame
                    raise InputError(where, f"{INCOMPLETE}: {decoded} of the {frames} frames its header declares decode") from None
                raise err
    except InputError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "does not exist" in reason or "Format not recognised" in reason or "unknown format" in reason.lower() or "<_io.BytesIO" in reason:
            reason = "format not recognised or the file is corrupt"  # libsndfile's wording misleads here
        raise InputError(where, f"not a readable audio file ({reason})") from None
    problem = frames_problem(frames, len(audio), fmt) if fmt in EXACT_LENGTH_FORMATS else None
    if problem:
        raise InputError(where, problem)
    if not np.all(np.isfinite(audio)):
        raise InputError(where, "contains NaN or infinite samples")
    return StemAudio(np.ascontiguousarray(audio.T), int(rate), subtype, fmt)


def _decodable_frames(data: bytes, block: int = 1 << 15) -> int:
    """How many frames decode before the stream breaks off."""
    got = 0
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            while True:
                chunk = f.read(block, dtype="float32", always_2d=True)
                if not len(chunk):
                    break
                got += len(chunk)
    except (sf.LibsndfileError, RuntimeError):
        pass
    return got


@dataclass(frozen=True)
class StemCheck:
    """What accepting a stem learnt about it, without decoding its samples."""

    sha256: str
    frames: int
    rate: int

    @property
    def seconds(self) -> float:
        return self.frames / self.rate


def inspect_stem(path: Path, roots: Iterable[Path], max_seconds: float, max_bytes: int, where: str) -> StemCheck:
    """A stem checked when a request names it (or it settles in a drop folder), so that what
    cannot be rendered is refused at once: a regular file inside ``roots``, not over the limits,
    a container that reads as audio and agrees with the file's length (not half-written), and
    its content hashed. The file is mapped, not copied, and its samples are not decoded.
    Raises InputError naming ``where``."""
    fd, _ = open_confined(path, roots, where)
    name = f"'{Path(path).name}'"
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise InputError(where, f"{name} is {size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
        if size == 0:
            raise InputError(where, f"{name} is empty (0 bytes)")
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:
            if not looks_like_audio(data[:16], Path(path).suffix):
                raise InputError(where, f"{name} is not a readable audio file (format not recognised or the file is corrupt)")
            problem = container_problem(data)
            if problem:
                raise InputError(where, f"{name} is {problem}")
            digest = hashlib.sha256()
            for start in range(0, size, 1 << 22):
                digest.update(data[start : start + (1 << 22)])
            try:
                with sf.SoundFile(_MapFile(data)) as f:
                    frames, rate = f.frames, f.samplerate
            except (sf.LibsndfileError, RuntimeError, ValueError, OSError):
                raise InputError(where, f"{name} is not a readable audio file (format not recognised or the file is corrupt)") from None
    finally:
        os.close(fd)
    if frames <= 0 or rate <= 0:
        raise InputError(where, f"{name} holds no audio")
    if rate < MIN_STEM_RATE:
        raise InputError(where, f"{name} is at {rate} Hz; the host renders stems of {MIN_STEM_RATE} Hz and up")
    if frames / rate > max_seconds:
        raise InputError(where, f"{name} is {frames / rate:.1f} s long; the limit is {max_seconds:g} s")
    return StemCheck(digest.hexdigest(), int(frames), int(rate))


class _MapFile(io.RawIOBase):
    """A read-only file object over a memory map, for libsndfile's virtual I/O."""

    def __init__(self, data):
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._data)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        chunk = self._data[self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


# ---------------------------------------------------------------------- a region of a stem
MIN_REGION_SECONDS = 0.01


def region_samples(rate: int, frames: int, region: tuple[float, float]) -> tuple[int, int]:
    """The sample range ``[a, b)`` that ``(start s, length s)`` covers at ``rate``. A region may
    end up to half a sample past the file's end (the caller's rounding); it is clamped there."""
    start, length = region
    a = int(round(start * rate))
    b = min(frames, a + int(round(length * rate)))
    return a, b


def check_region(path: Path, start: float, length: float, where: str) -> tuple[float, float]:
    """``(start, length)`` in seconds, or an InputError unless it lies inside the file at ``path``."""
    if not (start >= 0 and length >= MIN_REGION_SECONDS):
        raise InputError(where, f"region {start:g}+{length:g} s: start must be >= 0 and length at least {MIN_REGION_SECONDS * 1000:g} ms")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError):
        raise InputError(where, f"'{path.name}' is not a readable audio file") from None
    if info.samplerate <= 0 or info.frames <= 0:
        raise InputError(where, f"'{path.name}' holds no audio")
    seconds = info.frames / info.samplerate
    a, b = region_samples(info.samplerate, info.frames, (start, length))
    if a >= info.frames or start + length > seconds + 0.5 / info.samplerate:
        raise InputError(where, f"region {start:g}+{length:g} s ends past the end of '{path.name}' ({seconds:.3f} s)")
    return (float(start), float(length))


def cut_region(stem: StemAudio, region: tuple[float, float], where: str = "region") -> StemAudio:
    """The part of ``stem`` a region covers (checked when the request was accepted; a file that
    changed since is checked again here)."""
    a, b = region_samples(stem.rate, stem.audio.shape[1], region)
    if b - a < 1:
        raise InputError(where, f"region {region[0]:g}+{region[1]:g} s lies outside the stem ({stem.seconds:.3f} s)")
    return StemAudio(np.ascontiguousarray(stem.audio[:, a:b]), stem.rate, stem.subtype, stem.format)
