"""The finish stage's signal path: from a take as the model rendered it to the audio that is delivered.

Pure functions, no model and no files: a rendered take (mono float at the model's rate) goes in,
a :class:`Finished` (the samples, their rate and sample format, and what was measured) comes out.

- foley and restyle: resampled to the project rate, the preset's chain, loudness to the target
  under the true-peak ceiling, the project's bit depth and format;
- inpaint: each gap's fill is taken from the rendered take, resampled to the stem's own rate,
  run through the chain, matched to the level at the gap's edges, kept under the ceiling and
  spliced into the stem, which is otherwise left exactly as it was and written back in its own
  sample format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pedalboard

from host.config.schema import Delivery
from host.engine import gaps as gapmath
from host.finish.chain import apply_chain
from host.finish.delivery import finish, resample
from host.finish.fill import finish_fill
from host.intake.audio import StemAudio
from host.output.files import input_sample_format
from host.plan.takes import TakePlan


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

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / self.rate


def finish_take(plan: TakePlan, wave: np.ndarray, model_rate: int, board: pedalboard.Pedalboard) -> Finished:
    """One take of ``plan`` as the model rendered it, finished for its kind: an inpainted take's
    gaps filled into the stem, a restyled take exactly as long as the stem, a foley take as asked."""
    job = plan.job
    if job.kind == "inpaint":
        return fill_gaps(plan.stem, wave, model_rate, plan.gaps, plan.windows, board, job.delivery.true_peak)
    length = None
    if job.kind == "restyle":
        length = int(round(plan.stem.audio.shape[1] * job.delivery.sample_rate / plan.stem.rate))
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


def fit(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the last axis to exactly ``length`` samples."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    pad = np.zeros(audio.shape[:-1] + (length - audio.shape[-1],), dtype=audio.dtype)
    return np.concatenate([audio, pad], axis=-1)
