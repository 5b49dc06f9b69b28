"""Gap inpainting: generate what belongs in each gap so that it continues its surroundings.

For each gap only a model-sized window around it is diffused. At every denoising step the
latent outside the gap is re-imposed from the stem's own latent, noised to that step, as the
AudioLDM paper does; inside the gap the model is free. Gaps are filled in order, and each fill is
spliced into the take before the next window is encoded, so a window that holds an earlier gap
hears that gap's fill, not silence.

The result is one take per seed: the stem as the model hears it (mono, model rate) with every
gap generated. Splicing the fills into the stem at its own rate and channel count, so that the
rest of the file stays bit-identical, is the finish stage's job (``host.finish.take``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from host import mel
from host.engine import steps
from host.engine.models import Model

# latent frames of margin added to the gap's mask on each side, so the model owns its edges
MASK_MARGIN_FRAMES = 1
# linear crossfade at each gap edge when a fill is spliced in for the next window to hear
CONTEXT_FADE_SECONDS = 0.01


class InpaintPipeline:
    def __init__(self, model: Model):
        self.model = model

    def __call__(
        self,
        stem: np.ndarray,
        sample_rate: int,
        gaps: Sequence[tuple[float, float]],
        windows: Sequence[tuple[float, float]],
        prompt: str,
        negative_prompt: str,
        seeds: Sequence[int],
        num_steps: int,
        guidance: float,
        scheduler: str = "ddim",
        on_step: Optional[steps.OnStep] = None,
    ) -> list[np.ndarray]:
        """One mono float32 take per seed at the model's rate, as long as the stem, with every gap
        (seconds) generated inside its context window (seconds, ``windows[k]`` for ``gaps[k]``)."""
        model = self.model
        rate = model.sample_rate
        # 0. the stem as the model hears it, one working copy per take
        heard = mel.to_model_rate(np.atleast_2d(stem).mean(axis=0), sample_rate).astype(np.float64)
        takes = [heard.copy() for _ in seeds]

        # 1. the prompt, once for every take and gap
        embeds = steps.encode_prompts(model, [prompt] * len(seeds), [negative_prompt] * len(seeds), guidance)

        for k, (gap, window) in enumerate(zip(gaps, windows)):
            a, b = int(round(window[0] * rate)), min(len(heard), int(round(window[1] * rate)))
            local_gap = (gap[0] - a / rate, gap[1] - a / rate)

            def gap_step(done: int, total: int, k: int = k) -> None:
                if on_step is not None:
                    on_step(k * total + done, total * len(gaps))

            pieces = self.fill_window([t[a:b] for t in takes], local_gap, embeds, [steps.part_seed(s, k) for s in seeds],
                                       num_steps, guidance, scheduler, gap_step)
            # 5. splice each fill into its take, so the next window hears it
            g0, g1 = (int(round(x * rate)) for x in gap)
            for take, piece in zip(takes, pieces):
                _splice_linear(take, piece, a, g0, g1, int(round(CONTEXT_FADE_SECONDS * rate)))
        return [t.astype(np.float32) for t in takes]

    def fill_window(self, windows: list[np.ndarray], gap: tuple[float, float], embeds, seeds, num_steps, guidance, scheduler, on_step) -> list[np.ndarray]:
        """Each take's window (16 kHz) with its gap (seconds into the window) generated, at the
        window's own level. Also used by loops, whose seam is a gap across the wrap point."""
        model = self.model
        length = len(windows[0])
        frames = model.frames_for(length / model.sample_rate)
        # 2. each take's window at the level AudioLDM was trained on, and its latent: what is known outside the gap
        normalised = [steps.peak_normalise(w) for w in windows]
        known = torch.cat([steps.encode_audio(model, wave, frames) for wave, _ in normalised])
        mask = self._gap_mask(known, gap)  # 1 inside the gap (generate), 0 outside (keep)

        # 3. start from pure noise; the same noise re-noises the known region at each step
        sched = model.new_scheduler(scheduler)
        sched.set_timesteps(num_steps)
        timesteps = sched.timesteps
        noise = steps.seeded_noise(model, seeds, frames)
        latents = noise * sched.init_noise_sigma

        def reimpose(i: int, latents: torch.Tensor) -> torch.Tensor:
            if i + 1 < len(timesteps):
                t_next = timesteps[i + 1 : i + 2].repeat(len(seeds))
                outside = sched.add_noise(known, noise, t_next)
            else:
                outside = known
            return mask * latents + (1 - mask) * outside

        # 4. denoise, re-imposing the surroundings after every step; decode at the window's own scale
        latents = steps.denoise(model, sched, latents, embeds, guidance, timesteps, on_step, after_step=reimpose)
        return [piece[:length] / gain for piece, (_, gain) in zip(steps.decode(model, latents), normalised)]

    def _gap_mask(self, latent: torch.Tensor, gap: tuple[float, float]) -> torch.Tensor:
        model = self.model
        per_latent = model.hop * model.vae_scale / model.sample_rate  # seconds per latent frame
        lo = max(0, int(np.floor(gap[0] / per_latent)) - MASK_MARGIN_FRAMES)
        hi = min(latent.shape[2], int(np.ceil(gap[1] / per_latent)) + MASK_MARGIN_FRAMES)
        mask = torch.zeros_like(latent[:1, :1, :, :1])
        mask[:, :, lo:hi, :] = 1
        return mask


def _splice_linear(take: np.ndarray, piece: np.ndarray, offset: int, g0: int, g1: int, fade: int) -> None:
    """Write ``piece`` (which starts at ``offset`` in ``take``) over [g0, g1) of ``take`` in place,
    with linear crossfades of ``fade`` samples centred on each edge (clipped to the piece)."""
    end = offset + len(piece)
    half = fade // 2
    lo, hi = max(offset, g0 - half), min(end, g1 + half)
    if hi <= lo:
        return
    weight = np.ones(hi - lo)
    if fade > 0:
        ramp_in = np.clip((np.arange(lo, hi) - (g0 - half) + 0.5) / fade, 0.0, 1.0)
        ramp_out = np.clip(((g1 + half) - np.arange(lo, hi) - 0.5) / fade, 0.0, 1.0)
        weight = np.minimum(ramp_in if g0 > offset else 1.0, ramp_out if g1 < end else 1.0) * weight
    take[lo:hi] = take[lo:hi] * (1 - weight) + piece[lo - offset : hi - offset] * weight
