"""The finish stage's signal path: from a take as the model rendered it to the audio that is delivered.

Pure functions, no model and no files: a rendered take (mono float at the model's rate) goes in,
a :class:`Finished` (the samples, their rate and sample format, and what was measured) comes out.

- foley and restyle: resampled to the project rate, the preset's chain, loudness to the target
  under the true-peak ceiling, the project's bit depth and format;
- inpaint: each gap's fill is taken from the rendered take, resampled to the stem's own rate,
  run through the chain, matched to the level at the gap's edges, kept under the ceiling and
  spliced into the stem, which is otherwise left exactly as it was and written back in its own
  sample format;
- superres: the stem's own band below the cutoff (its channels, resampled to the project rate)
  joined by a linear-phase crossover with the rendered take's band above it (through the chain),
  then loudness and ceiling as for foley;
- loops: as foley, but everything that sees time sees the take as a loop: resampling and the
  chain run round the wrap point, loudness and true peak are measured on the take repeated, no
  fade is applied, and the WAV carries a ``smpl`` chunk with the loop points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pedalboard

from host.config.schema import Delivery
from host.engine import gaps as gapmath
from host.finish.chain import apply_chain
from host.finish.crossover import crossover
from host.finish.delivery import finish, integrated_loudness, looped_loudness, looped_true_peak_db, resample
from host.finish.fill import finish_fill
from host.intake.audio import StemAudio
from host.output.files import input_sample_format
from host.plan.takes import TakePlan
from host.output.metadata import smpl_chunk
from host.output.riff import Chunk

# A loop is finished with this much of itself before and after it (seconds), so the limiter sees
# round the wrap point (it reaches 30 ms at most); the chain hears this much of the loop's end first.
LOOP_PAD_SECONDS = 0.1
LOOP_CHAIN_WARM_SECONDS = 10.0
LOOP_PASSES = 3  # finish() runs again, aimed better, while the loop is more than 0.05 LU off target


@dataclass
class Finished:
    audio: np.ndarray  # (channels, samples)
    rate: int
    bit_depth: int  # 16, 24, or 32 (float)
    format: str  # wav | flac
    levels: dict[str, Any]  # what was measured, for the sidecar
    delivery: dict[str, Any]  # what the file is, for the sidecar
    extra: dict[str, Any] = field(default_factory=dict)  # further sidecar fields (gaps, strength, ...)
    subtype: Optional[str] = None  # write exactly this libsndfile sample format (inpaint: the stem's own)
    chunks: tuple[Chunk, ...] = ()  # further WAV chunks (a loop's smpl)

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.rate


def finish_take(plan: TakePlan, wave: np.ndarray, model_rate: int, board: pedalboard.Pedalboard) -> Finished:
    """One take of ``plan`` as the model rendered it, finished for its kind: an inpainted take's
    gaps filled into the stem, a super-resolved take's new band joined to the stem's own, a
    loop finished as it will be heard (repeated), a restyled take exactly as long as the stem, a
    foley take as asked."""
    job = plan.job
    if job.kind == "inpaint":
        return fill_gaps(plan.stem, wave, model_rate, plan.gaps, plan.windows, board, job.delivery.true_peak)
    if job.kind == "superres":
        done = deliver_superres(plan.stem, wave, model_rate, plan.cutoff, job.delivery, board)
        done.extra["cutoff"] = {"hz": plan.cutoff, "found": plan.cutoff_found}
        return done
    if job.preset.loop:
        done = deliver_loop(wave, model_rate, job.delivery, board)
        done.extra["duration"] = job.preset.duration
        return done
    length = None
    if job.kind == "restyle":
        frames, rate = plan.stem_length
        length = int(round(frames * job.delivery.sample_rate / rate))
    done = deliver(wave, model_rate, job.delivery, board, length)
    if job.kind == "restyle":
        done.extra["strength"] = job.preset.strength
    else:
        done.extra["duration"] = job.preset.duration
    return done


def deliver(wave: np.ndarray, model_rate: int, delivery: Delivery, board: pedalboard.Pedalboard, length: Optional[int] = None) -> Finished:
    """A foley or restyle take: project rate (high-quality resampler), exact ``length`` if given,
    the chain, then loudness and ceiling."""
    audio = resample(np.atleast_2d(wave).astype(np.float32), model_rate, delivery.sample_rate)
    if length is not None:
        audio = fit(audio, length)
    audio = apply_chain(board, audio, delivery.sample_rate)
    audio, rate, report = finish(audio, delivery.sample_rate, delivery)
    described = {**delivery.model_dump(mode="json"), "channels": int(audio.shape[0])}
    return Finished(audio, rate, delivery.bit_depth, delivery.format, report, described)


def fill_gaps(
    stem: StemAudio,
    rendered: np.ndarray,
    model_rate: int,
    gaps: Sequence[gapmath.Gap],
    windows: Sequence[tuple[float, float]],
    board: pedalboard.Pedalboard,
    true_peak: float,
) -> Finished:
    """An inpaint take: every gap of ``stem`` filled from ``rendered`` (the model's take, as long
    as the stem), everything outside the gaps and their crossfades bit-identical to the stem, in
    the stem's own sample format. Each fill is finished by ``finish_fill``: the chain, matched to
    the level at the gap's edges, kept under the ceiling, spliced in."""
    rate, n = stem.rate, stem.audio.shape[1]
    channels = stem.audio.shape[0]
    result = stem.audio.copy()
    spans = [g.samples(rate) for g in gaps]
    fills = []
    for gap, (w0, w1) in zip(gaps, windows):
        a, b = int(round(w0 * rate)), min(n, int(round(w1 * rate)))
        m0, m1 = int(round(w0 * model_rate)), min(len(rendered), int(round(w1 * model_rate)))
        fill = fit(resample(np.asarray(rendered[m0:m1], dtype=np.float32)[None], model_rate, rate), b - a)
        result[:, a:b], levels = finish_fill(result, np.repeat(fill, channels, axis=0), gap.samples(rate), (a, b), rate, board, true_peak, spans)
        fills.append(levels)
    as_input = input_sample_format(stem.format, stem.subtype, stem.audio)
    described = {
        "sample_rate": rate, "bit_depth": as_input.bits, "subtype": as_input.subtype, "format": as_input.container,
        "loudness": None, "true_peak": true_peak, "channels": channels,
    }
    extra = {"gaps": [[g.start, g.end] for g in gaps], "delivered_as_input": True, "fills": fills}
    return Finished(result, rate, as_input.bits, as_input.container, {"loudness_normalised": False}, described, extra, subtype=as_input.subtype)


def deliver_superres(
    stem: StemAudio,
    rendered: np.ndarray,
    model_rate: int,
    cutoff: float,
    delivery: Delivery,
    board: pedalboard.Pedalboard,
) -> Finished:
    """A super-resolved take: the stem's own band below ``cutoff`` (Hz), in its own channels, and
    the rendered take's band above it (the same in every channel), at the project rate, exactly
    as long as the stem; then loudness and ceiling. The chain runs over the generated band only,
    never over the stem's own band."""
    rate = int(delivery.sample_rate)
    length = int(round(stem.audio.shape[1] * rate / stem.rate))
    original = fit(resample(stem.audio.astype(np.float32), stem.rate, rate), length)
    generated = fit(resample(np.atleast_2d(rendered).astype(np.float32), model_rate, rate), length)
    generated = apply_chain(board, generated, rate)
    joined = crossover(original, generated, rate, cutoff)
    audio, rate, report = finish(joined, rate, delivery)
    described = {**delivery.model_dump(mode="json"), "channels": int(audio.shape[0])}
    return Finished(audio, rate, delivery.bit_depth, delivery.format, report, described)


def deliver_loop(wave: np.ndarray, model_rate: int, delivery: Delivery, board: pedalboard.Pedalboard) -> Finished:
    """A foley take that loops: at the project rate, through the chain and to the loudness target
    under the ceiling like any foley take, but with the take heard as a loop throughout (resampled
    and filtered round its wrap point, loudness and true peak measured on it repeated), no fades,
    and a ``smpl`` chunk (WAV) looping the whole file."""
    rate = int(delivery.sample_rate)
    x = resample_looped(np.atleast_2d(wave).astype(np.float32), model_rate, rate)
    x = chain_looped(board, x, rate)
    n = x.shape[1]
    pad = int(round(LOOP_PAD_SECONDS * rate))
    around = x[:, np.arange(-pad, n + pad) % n]  # the loop with a little of itself either side
    loop_in = looped_loudness(x, rate)
    around_in = integrated_loudness(around, rate)
    aim = None
    if delivery.loudness is not None and loop_in is not None and around_in is not None:
        # finish() levels what it is given: aim it so the loop itself, heard repeated, lands on the target
        aim = float(delivery.loudness) + around_in - loop_in
    for _ in range(LOOP_PASSES):
        done, rate, report = finish(around, rate, delivery if aim is None else replace_loudness(delivery, aim))
        audio = np.ascontiguousarray(done[:, pad : pad + n])
        if aim is None or not report["limited"]:
            break  # a static gain lands exactly
        missed = float(delivery.loudness) - (looped_loudness(audio, rate) or float(delivery.loudness))
        if abs(missed) <= 0.05:
            break
        aim += missed  # the limiter bent the loop and its padding differently: aim again
    # measured as it will be heard: the loop repeated
    ceiling = min(10 ** (float(delivery.true_peak) / 20), 1.0) * (1 - 1e-5)
    peak_db = looped_true_peak_db(audio, rate)
    if peak_db > -math.inf and 10 ** (peak_db / 20) > ceiling:  # a last plain trim, as finish() does
        audio = (audio * np.float32(ceiling / 10 ** (peak_db / 20))).astype(np.float32)
        peak_db = looped_true_peak_db(audio, rate)
    levels = {
        **report,
        "loudness_in": loop_in,
        "loudness_out": looped_loudness(audio, rate),
        "true_peak_out": peak_db if peak_db > -math.inf else None,
        "measured": "looped",
    }
    described = {**delivery.model_dump(mode="json"), "channels": int(audio.shape[0])}
    chunks = (smpl_chunk(rate, 0, n, frames=n),) if delivery.format == "wav" else ()
    extra = {"loop": {"start": 0, "end": n, "frames": n, "seconds": round(n / rate, 6), "smpl": bool(chunks)}}
    return Finished(audio, rate, delivery.bit_depth, delivery.format, levels, described, extra, chunks=chunks)


def replace_loudness(delivery: Delivery, loudness: float) -> Delivery:
    """``delivery`` aiming at another loudness (clamped to what a delivery may ask)."""
    return delivery.model_copy(update={"loudness": float(np.clip(loudness, -70.0, 0.0))})


def resample_looped(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``audio`` (channels, samples) resampled as a loop: the resampler's filter reads round the
    wrap point, so the result loops as seamlessly as the input; ``round(n * to / from)`` samples."""
    n = audio.shape[-1]
    if from_rate == to_rate or n == 0:
        return np.asarray(audio, dtype=np.float32).copy()
    step = from_rate // math.gcd(from_rate, to_rate)  # input samples that map to whole output samples
    pad = -(-int(0.1 * from_rate) // step) * step
    out_pad = pad * to_rate // from_rate
    wide = resample(audio[..., np.arange(-pad, n + pad) % n], from_rate, to_rate)
    return np.ascontiguousarray(wide[..., out_pad : out_pad + int(round(n * to_rate / from_rate))])


def chain_looped(board: pedalboard.Pedalboard, audio: np.ndarray, rate: int) -> np.ndarray:
    """The chain over a loop: it first hears the loop's last seconds (reverb tails, compressor
    state), so its output at the start continues its output at the end."""
    if len(board) == 0:
        return audio
    n = audio.shape[-1]
    warm = int(round(LOOP_CHAIN_WARM_SECONDS * rate))
    out = apply_chain(board, audio[..., np.arange(-warm, n) % n], rate)
    return np.ascontiguousarray(out[..., warm:])


def fit(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the last axis to exactly ``length`` samples."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    pad = np.zeros(audio.shape[:-1] + (length - audio.shape[-1],), dtype=audio.dtype)
    return np.concatenate([audio, pad], axis=-1)
