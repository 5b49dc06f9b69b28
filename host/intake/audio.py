"""Reading a stem that arrived: any format libsndfile reads, any rate and channel count."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from host.errors import InputError

MAX_STEM_SECONDS = 600.0
MAX_STEM_BYTES = 2 * 1024**3


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
    """The stem's samples, or an InputError naming the file and why it cannot be used."""
    path = Path(path)
    where = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(where, "file not found") from None
    except OSError as err:
        raise InputError(where, f"cannot read: {err.strerror or err}") from None
    if size > max_bytes:
        raise InputError(where, f"file is {size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    try:
        info = sf.info(str(path))
        if info.frames <= 0 or info.samplerate <= 0:
            raise InputError(where, "holds no audio")
        if info.frames / info.samplerate > max_seconds:
            raise InputError(where, f"is {info.frames / info.samplerate:.1f} s long; the limit is {max_seconds:g} s")
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except InputError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "does not exist" in reason or "Format not recognised" in reason or "unknown format" in reason.lower():
            reason = "format not recognised or the file is corrupt"  # libsndfile's wording misleads here
        raise InputError(where, f"not a readable audio file ({reason})") from None
    if not np.all(np.isfinite(data)):
        raise InputError(where, "contains NaN or infinite samples")
    return StemAudio(np.ascontiguousarray(data.T), int(rate), info.subtype, info.format)


def probe_stem(path: Path, max_seconds: float, where: str):
    """The stem's header (libsndfile's info), checked: it reads as audio, holds some, and is not
    longer than ``max_seconds``. Cheap: no samples are decoded. Raises InputError naming ``where``."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError):
        raise InputError(where, f"'{path}' is not a readable audio file (format not recognised or the file is corrupt)") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise InputError(where, f"'{path}' holds no audio")
    if info.frames / info.samplerate > max_seconds:
        raise InputError(where, f"'{path}' is {info.frames / info.samplerate:.1f} s long; the limit is {max_seconds:g} s")
    return info


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
