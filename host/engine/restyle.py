"""Restyle: text-guided audio to audio (SDEdit, as in the AudioLDM paper).

The stem's latent is pushed ``strength`` of the way into the noise schedule and denoised
towards the prompt. Strength 0 keeps the stem, 1 ignores it. Stems longer than the model's
window are cut into overlapping windows, each restyled on its own and joined with equal-power
crossfades; only one window is in the model at a time.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from host import mel
from host.engine import steps
from host.engine.models import Model
from host.engine.windows import OverlapJoiner, plan_windows

OVERLAP_SECONDS = 1.0


class RestylePipeline:
    def __init__(self, model: Model):
        self.model = model

    def __call__(
        self,
        stem: np.ndarray,
        sample_rate: int,
        prompt: str,
        negative_prompt: str,
        seeds: Sequence[int],
        strength: float,
        num_steps: int,
        guidance: float,
        scheduler: str = "ddim",
        on_step: Optional[steps.OnStep] = None,
    ) -> list[np.ndarray]:
        """One mono float32 waveform per seed, at the model's rate, as long as the stem."""
        model = self.model
        # 0. the stem as the model hears it: mono, 16 kHz, peak 0.5
        heard = mel.to_model_rate(np.atleast_2d(stem).mean(axis=0), sample_rate)
        if strength <= 0.0 or len(heard) == 0:
            return [heard.astype(np.float32) for _ in seeds]  # strength 0 keeps the stem
        wave, gain = steps.peak_normalise(heard)
        total = len(wave)

        # 1. encode the prompt once for every take
        embeds = steps.encode_prompts(model, [prompt] * len(seeds), [negative_prompt] * len(seeds), guidance)

        window = model.window_frames * model.hop
        overlap = int(OVERLAP_SECONDS * model.sample_rate)
        windows = plan_windows(total, window, overlap)
        joiners = [OverlapJoiner(total) for _ in seeds]
        done_before = 0

        def progress(i: int, n: int) -> None:
            if on_step is not None:
                on_step(done_before + i, n * len(windows))

        for k, (start, end) in enumerate(windows):
            frames = model.frames_for((end - start) / model.sample_rate)
            # 2. the window's latent, noised to where the strength starts the schedule
            clean = steps.encode_audio(model, wave[start:end], frames).repeat(len(seeds), 1, 1, 1)
            noise = steps.seeded_noise(model, [steps.part_seed(s, k) for s in seeds], frames)
            sched = model.new_scheduler(scheduler)
            timesteps = steps.sdedit_timesteps(sched, num_steps, strength)
            latents = sched.add_noise(clean, noise, timesteps[:1].repeat(len(seeds)))
            # 3. denoise towards the prompt
            latents = steps.denoise(model, sched, latents, embeds, guidance, timesteps, progress)
            done_before += len(timesteps)
            # 4. decode and join
            for joiner, piece in zip(joiners, steps.decode(model, latents)):
                joiner.add(start, piece[: end - start])
        return [(j.out[0] / gain).astype(np.float32) for j in joiners]
