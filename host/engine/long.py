"""Long foley: takes longer than the model's window, as overlapping windows that continue each other.

The first window is an ordinary foley render of one window. Every later window starts where the
one before it is a quarter of a window from its end: that overlap's latent is known (the end of
the window before) and re-imposed at every denoising step, noised to the step's level, as
inpainting does with the audio around a gap (outpainting); the rest of the window is free. So
each window continues the sound it hears instead of starting afresh. The windows are decoded one
by one and joined with a crossfade in the middle of each overlap, where both decodes agree and
neither is near its own edge; the crossfade follows their measured correlation.

Only one window is in the model at a time and only the last window's latent is kept, so memory
does not grow with the duration (the take itself, at the model's rate, is what grows). Each
window is a full window (the last one is cut), so every denoising call has one shape.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from host.engine import steps
from host.engine.models import Model
from host.engine.windows import correlated_fades

CONTEXT_FRACTION = 0.25  # of a window: the overlap each new window hears from the one before


def context_frames(window: int, multiple: int = 1) -> int:
    """Latent frames of overlap for a window of ``window`` latent frames: a quarter of it, in
    whole ``multiple``s, at least one and less than the window."""
    context = max(multiple, int(round(window * CONTEXT_FRACTION / multiple)) * multiple)
    if context >= window:
        raise ValueError(f"a window of {window} latent frames is too short to overlap")
    return context


def plan_long_windows(total: int, window: int, context: int) -> list[int]:
    """Start (latent frame) of each window covering ``total`` latent frames: the first at 0, each
    next one ``window - context`` later, until one reaches the end."""
    if window <= context:
        raise ValueError("window must be longer than its context")
    starts = [0]
    while starts[-1] + window < total:
        starts.append(starts[-1] + window - context)
    return starts


def windows_for(seconds: float, window_seconds: float) -> int:
    """How many windows a take of ``seconds`` costs (1 up to one window): for the README's sums."""
    if seconds <= window_seconds:
        return 1
    hop = window_seconds * (1 - CONTEXT_FRACTION)
    return 1 + math.ceil((seconds - window_seconds) / hop - 1e-9)


def fade_span(start: int, overlap: int) -> tuple[int, int]:
    """Where a window starting at sample ``start`` is crossfaded in: the middle half of its
    ``overlap`` with the window before, where both decodes agree and neither is near its edge."""
    return start + overlap // 4, start + overlap - overlap // 4


def join_window(out: np.ndarray, piece: np.ndarray, start: int, fade: tuple[int, int]) -> None:
    """Write ``piece`` (takes, samples) into ``out`` (takes, total) from sample ``start`` on,
    in place: ``out`` is kept before ``fade[0]``, crossfaded into ``piece`` over ``fade`` (one law
    per take, from the correlation of the two there), and ``piece`` from ``fade[1]`` on. Clipped
    to ``out``'s length."""
    total = out.shape[-1]
    end = min(total, start + piece.shape[-1])
    f0, f1 = max(start, min(fade[0], end)), max(start, min(fade[1], end))
    if f1 > f0:
        for row in range(out.shape[0]):
            old = out[row, f0:f1].astype(np.float64)
            new = piece[row, f0 - start : f1 - start].astype(np.float64)
            energy = float(np.dot(old, old) * np.dot(new, new))
            r = float(np.dot(old, new) / math.sqrt(energy)) if energy > 1e-24 else 0.0
            fade_out, fade_in = correlated_fades(f1 - f0, r)
            out[row, f0:f1] = old * fade_out + new * fade_in
    out[:, f1:end] = piece[:, f1 - start : end - start]


class LongFoleyPipeline:
    def __init__(self, model: Model):
        self.model = model

    def __call__(
        self,
        prompts: Sequence[str],
        negatives: Sequence[str],
        seeds: Sequence[int],
        duration: float,
        num_steps: int,
        guidance: float,
        scheduler: str = "ddim",
        on_step: Optional[steps.OnStep] = None,
    ) -> list[np.ndarray]:
        """One float32 waveform of exactly ``duration`` seconds per seed, at the model's rate."""
        model = self.model
        length = int(round(duration * model.sample_rate))
        per_frame = model.vae_scale * model.hop  # audio samples per latent frame
        window = model.window_frames // model.vae_scale  # latent frames
        context = context_frames(window, max(1, model.frame_multiple // model.vae_scale))
        starts = plan_long_windows(-(-length // per_frame), window, context)
        overlap = context * per_frame
        takes = len(seeds)

        # 1. encode the prompts once for every window
        embeds = steps.encode_prompts(model, prompts, negatives, guidance)
        out = np.zeros((takes, length), dtype=np.float32)
        before: Optional[torch.Tensor] = None  # the latent of the window before
        done = 0

        def progress(i: int, n: int) -> None:
            if on_step is not None:
                on_step(done + i, n * len(starts))

        for k, start in enumerate(starts):
            # 2. the window's own noise, from each take's seed and the window's number
            sched = model.new_scheduler(scheduler)
            sched.set_timesteps(num_steps)
            timesteps = sched.timesteps
            noise = steps.seeded_noise(model, [steps.part_seed(s, k) for s in seeds], model.window_frames)
            latents = noise * sched.init_noise_sigma
            reimpose = None
            if before is not None:
                # 3. the overlap is known: the end of the window before, re-imposed after every step
                known = torch.zeros_like(noise)
                known[:, :, :context] = before[:, :, window - context :]
                free = torch.ones_like(noise[:1, :1, :, :1])
                free[:, :, :context] = 0

                def reimpose(i: int, latents: torch.Tensor, known=known, free=free, noise=noise, sched=sched, timesteps=timesteps) -> torch.Tensor:
                    if i + 1 < len(timesteps):
                        held = sched.add_noise(known, noise, timesteps[i + 1 : i + 2].repeat(takes))
                    else:
                        held = known
                    return free * latents + (1 - free) * held

            # 4. denoise the window
            latents = steps.denoise(model, sched, latents, embeds, guidance, timesteps, progress, after_step=reimpose)
            done += len(timesteps)
            # 5. decode it and join it in: crossfaded in the middle half of the overlap
            piece = steps.decode(model, latents)
            at = start * per_frame
            join_window(out, piece, at, fade_span(at, overlap) if k else (0, 0))
            before = latents
        return [w for w in out]
