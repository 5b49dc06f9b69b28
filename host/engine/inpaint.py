"""Gap inpainting: generate what belongs in a gap so that it continues its surroundings.

For each gap only a model-sized window around it is diffused. At every denoising step the
latent outside the gap is re-imposed from the stem's own latent, noised to that step, as the
AudioLDM paper does; inside the gap the model is free. The result is a *fill* for the window
(model rate, mono); splicing it into the stem at the stem's own rate and channel count, so that
the rest of the file stays bit-identical, is ``host.engine.gaps.splice``'s job.
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


class InpaintPipeline:
    def __init__(self, model: Model):
        self.model = model

    def __call__(
        self,
        window: np.ndarray,
        sample_rate: int,
        gap: tuple[float, float],
        prompt: str,
        negative_prompt: str,
        seeds: Sequence[int],
        num_steps: int,
        guidance: float,
        scheduler: str = "ddim",
        on_step: Optional[steps.OnStep] = None,
    ) -> list[np.ndarray]:
        """Fills for ``window`` (channels or mono, any rate) with the gap at ``gap`` seconds
        from the window's start. One mono float32 waveform per seed at the model's rate, as long
        as the window, levelled to the window's own audio outside the gap."""
        model = self.model
        # 0. the window as the model hears it
        wave = mel.to_model_rate(np.atleast_2d(window).mean(axis=0), sample_rate)
        wave, gain = steps.peak_normalise(wave)
        length = len(wave)
        frames = model.frames_for(length / model.sample_rate)

        # 1. the prompt, and the stem's own latent: what is known outside the gap
        embeds = steps.encode_prompts(model, [prompt] * len(seeds), [negative_prompt] * len(seeds), guidance)
        known = steps.encode_audio(model, wave, frames).repeat(len(seeds), 1, 1, 1)
        mask = self._gap_mask(known, gap)  # 1 inside the gap (generate), 0 outside (keep)

        # 2. start from pure noise; the same noise re-noises the known region at each step
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

        # 3. denoise, re-imposing the surroundings after every step
        latents = steps.denoise(model, sched, latents, embeds, guidance, timesteps, on_step, after_step=reimpose)

        # 4. decode, and level each fill to the window's own level outside the gap
        fills = []
        g0, g1 = (int(round(s * model.sample_rate)) for s in gap)
        outside = np.ones(length, dtype=bool)
        outside[g0:g1] = False
        for piece in steps.decode(model, latents):
            piece = piece[:length]
            ref = np.sqrt(np.mean(wave[outside] ** 2)) if outside.any() else 0.0
            got = np.sqrt(np.mean(piece[outside] ** 2)) if outside.any() else 0.0
            level = ref / got if ref > 1e-9 and got > 1e-9 else 1.0
            fills.append((piece * level / gain).astype(np.float32))
        return fills

    def _gap_mask(self, latent: torch.Tensor, gap: tuple[float, float]) -> torch.Tensor:
        model = self.model
        per_latent = model.hop * model.vae_scale / model.sample_rate  # seconds per latent frame
        lo = max(0, int(np.floor(gap[0] / per_latent)) - MASK_MARGIN_FRAMES)
        hi = min(latent.shape[2], int(np.ceil(gap[1] / per_latent)) + MASK_MARGIN_FRAMES)
        mask = torch.zeros_like(latent[:1, :1, :, :1])
        mask[:, :, lo:hi, :] = 1
        return mask
