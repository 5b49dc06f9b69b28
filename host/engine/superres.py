"""Super-resolution: a band-limited stem's missing upper band generated, up to the model's 8 kHz
(the AudioLDM paper's zero-shot super-resolution with a frequency hint).

In mel space the bands below the cutoff are the observation: the stem's latent is re-imposed
there at every denoising step, noised to that step's level, and the model generates the bands
above, guided by the prompt. The mask is over mel bands, mapped to the latent's frequency axis
(a latent bin is known when every mel band it is made of lies below the cutoff). Stems longer
than the model's window are cut into overlapping windows, each on its own, joined with
equal-power crossfades; only one window is in the model at a time.

The result is the whole take as the model made it (mono, 16 kHz). Keeping the stem's own band
below the cutoff, at the stem's own rate and channels, is the finish stage's job: a linear-phase
crossover takes only the band above the cutoff from this take (``host.finish.take``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from host import mel
from host.engine import steps
from host.engine.bands import latent_band_mask
from host.engine.models import Model
from host.engine.windows import OverlapJoiner, plan_windows

OVERLAP_SECONDS = 1.0


class SuperresPipeline:
    def __init__(self, model: Model):
        self.model = model

    def __call__(
        self,
        stem: np.ndarray,
        sample_rate: int,
        cutoff: float,
        prompt: str,
        negative_prompt: str,
        seeds: Sequence[int],
        num_steps: int,
        guidance: float,
        scheduler: str = "ddim",
        on_step: Optional[steps.OnStep] = None,
    ) -> list[np.ndarray]:
        """One mono float32 take per seed at the model's rate, as long as the stem, its bands
        above ``cutoff`` (Hz) generated."""
        model = self.model
        # 0. the stem as the model hears it: mono, 16 kHz
        heard = mel.to_model_rate(np.atleast_2d(stem).mean(axis=0), sample_rate)
        total = len(heard)
        if total == 0:
            return [heard.astype(np.float32) for _ in seeds]

        # 1. the prompt once for every take and window; the known latent bins
        embeds = steps.encode_prompts(model, [prompt] * len(seeds), [negative_prompt] * len(seeds), guidance)
        window = model.window_frames * model.hop
        windows = plan_windows(total, window, int(OVERLAP_SECONDS * model.sample_rate))
        joiners = [OverlapJoiner(total) for _ in seeds]
        done = 0

        def progress(i: int, n: int) -> None:
            if on_step is not None:
                on_step(done + i, n * len(windows))

        for k, (start, end) in enumerate(windows):
            frames = model.frames_for((end - start) / model.sample_rate)
            # 2. the window at the level AudioLDM was trained on, and its latent: the observation
            wave, gain = steps.peak_normalise(heard[start:end])
            known = steps.encode_audio(model, wave, frames).repeat(len(seeds), 1, 1, 1)
            free = self.band_mask(known, cutoff)  # 1 above the cutoff (generate), 0 below (keep)

            # 3. start from noise; the same noise re-noises the observation after every step
            sched = model.new_scheduler(scheduler)
            sched.set_timesteps(num_steps)
            timesteps = sched.timesteps
            noise = steps.seeded_noise(model, [steps.part_seed(s, k) for s in seeds], frames)
            latents = noise * sched.init_noise_sigma

            def reimpose(i: int, latents: torch.Tensor, known=known, free=free, noise=noise, sched=sched, timesteps=timesteps) -> torch.Tensor:
                if i + 1 < len(timesteps):
                    held = sched.add_noise(known, noise, timesteps[i + 1 : i + 2].repeat(len(seeds)))
                else:
                    held = known
                return free * latents + (1 - free) * held

            # 4. denoise with the low bands held, decode at the window's own level and join
            latents = steps.denoise(model, sched, latents, embeds, guidance, timesteps, progress, after_step=reimpose)
            done += len(timesteps)
            for joiner, piece in zip(joiners, steps.decode(model, latents)):
                joiner.add(start, piece[: end - start] / gain)
        return [j.out[0].astype(np.float32) for j in joiners]

    def band_mask(self, latent: torch.Tensor, cutoff: float) -> torch.Tensor:
        """1 over the latent's frequency bins the model generates, 0 over the observed ones."""
        known = latent_band_mask(cutoff, latent.shape[3])
        mask = torch.ones_like(latent[:1, :1, :1, :])
        mask[..., torch.from_numpy(known)] = 0
        return mask
