"""Foley: text to audio.

Several takes, of one prompt or of several, share one batched denoising call when they share
the geometry (duration, steps, guidance, scheduler). Each take has its own seed, and its noise
is drawn from that seed alone, so a take sounds the same batched or alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from host.engine import steps
from host.engine.models import Model


@dataclass(frozen=True)
class FoleyTake:
    prompt: str
    negative_prompt: str
    seed: int


class FoleyPipeline:
    def __init__(self, model: Model):
        self.model = model

    def __call__(
        self,
        takes: Sequence[FoleyTake],
        duration: float,
        num_steps: int,
        guidance: float,
        scheduler: str = "ddim",
        on_step: Optional[steps.OnStep] = None,
    ) -> list[np.ndarray]:
        """One float32 waveform of exactly ``duration`` seconds per take, at the model's rate."""
        model = self.model
        frames = model.frames_for(duration)
        length = int(round(duration * model.sample_rate))

        # 1. encode the prompts (negatives first, for classifier-free guidance)
        embeds = steps.encode_prompts(model, [t.prompt for t in takes], [t.negative_prompt for t in takes], guidance)

        # 2. timesteps and the seeded starting noise
        sched = model.new_scheduler(scheduler)
        sched.set_timesteps(num_steps)
        latents = steps.seeded_noise(model, [t.seed for t in takes], frames) * sched.init_noise_sigma

        # 3. the denoising loop
        latents = steps.denoise(model, sched, latents, embeds, guidance, sched.timesteps, on_step)

        # 4. decode to audio, cut to the asked length
        waves = steps.decode(model, latents)
        return [w[:length].astype(np.float32) for w in waves]
