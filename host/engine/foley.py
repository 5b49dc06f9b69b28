"""Foley: text to audio.

Several takes, of one prompt or of several, share one batched denoising call when they share
the geometry (duration, steps, guidance, scheduler, loop). Each take has its own seed, and its
noise is drawn from that seed alone, so a take sounds the same batched or alone.

A take longer than the model's window is rendered as overlapping windows that continue each
other (``host.engine.long``); a loop has the seam across its wrap point regenerated
(``host.engine.loop``). Progress counts every step of both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from host.engine import steps
from host.engine.long import LongFoleyPipeline
from host.engine.loop import LoopPipeline
from host.engine.models import Model


@dataclass(frozen=True)
class FoleyTake:
    prompt: str
    negative_prompt: str
    seed: int


class FoleyPipeline:
    def __init__(self, model: Model):
        self.model = model
        self.long = LongFoleyPipeline(model)
        self.loop = LoopPipeline(model)

    def __call__(
        self,
        takes: Sequence[FoleyTake],
        duration: float,
        num_steps: int,
        guidance: float,
        scheduler: str = "ddim",
        on_step: Optional[steps.OnStep] = None,
        loop: bool = False,
    ) -> list[np.ndarray]:
        """One float32 waveform of exactly ``duration`` seconds per take, at the model's rate."""
        model = self.model
        frames = model.frames_for(duration)
        length = int(round(duration * model.sample_rate))
        prompts, negatives, seeds = [t.prompt for t in takes], [t.negative_prompt for t in takes], [t.seed for t in takes]
        render_on_step, seam_on_step = _progress_in_two(on_step, num_steps if loop else 0)

        embeds = None
        if frames > model.window_frames:  # longer than the window: outpainted windows
            waves = self.long(prompts, negatives, seeds, duration, num_steps, guidance, scheduler, render_on_step)
        else:
            # 1. encode the prompts (negatives first, for classifier-free guidance)
            embeds = steps.encode_prompts(model, prompts, negatives, guidance)

            # 2. timesteps and the seeded starting noise
            sched = model.new_scheduler(scheduler)
            sched.set_timesteps(num_steps)
            latents = steps.seeded_noise(model, seeds, frames) * sched.init_noise_sigma

            # 3. the denoising loop
            latents = steps.denoise(model, sched, latents, embeds, guidance, sched.timesteps, render_on_step)

            # 4. decode to audio, cut to the asked length
            waves = [w[:length].astype(np.float32) for w in steps.decode(model, latents)]

        # 5. a loop: regenerate the seam across the wrap point
        if loop:
            waves = self.loop(waves, prompts, negatives, seeds, num_steps, guidance, scheduler, seam_on_step, embeds=embeds)
        return waves


def _progress_in_two(on_step: Optional[steps.OnStep], second_steps: int):
    """on_step callbacks for a render and, after it, ``second_steps`` more steps (a loop's seam),
    reporting as one count: the render's own total plus ``second_steps``."""
    if on_step is None:
        return None, None
    seen = {"first": 0}

    def first(done: int, total: int) -> None:
        seen["first"] = total
        on_step(done, total + second_steps)

    def second(done: int, total: int) -> None:
        on_step(seen["first"] + done, seen["first"] + total)

    return first, second
