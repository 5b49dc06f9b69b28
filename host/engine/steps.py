"""The steps every AudioLDM render is made of, each a small function over a :class:`Model`.

encode the prompt -> prepare latents -> denoise loop -> decode to a waveform, plus the
reverse direction (waveform -> latent) that restyle and inpaint start from. The pipelines in
``foley.py``, ``restyle.py`` and ``inpaint.py`` call these in order, so one render reads top
to bottom.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from host import mel
from host.engine.models import Model

# Called after each denoising step with (steps done, total steps). It may raise Cancelled,
# which is how a render stops at a step boundary.
OnStep = Callable[[int, int], None]


class Cancelled(Exception):
    """A render was asked to stop; raised between two denoising steps."""


def encode_prompts(model: Model, prompts: Sequence[str], negatives: Sequence[str], guidance: float) -> torch.Tensor:
    """CLAP text embeddings, L2-normalised; with guidance the negatives come first (uncond, cond)."""
    texts = list(negatives) + list(prompts) if guidance > 1.0 else list(prompts)
    tokens = model.tokenizer(
        texts, padding="max_length", max_length=model.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = model.text_encoder(tokens.input_ids.to(model.device), attention_mask=tokens.attention_mask.to(model.device))
    return F.normalize(out.text_embeds, dim=-1).to(model.dtype)


def latent_shape(model: Model, frames: int) -> tuple[int, int, int]:
    channels = int(model.unet.config.in_channels)
    return channels, frames // model.vae_scale, int(model.vocoder.config.model_in_dim) // model.vae_scale


def part_seed(seed: int, part: int) -> int:
    """The seed for part ``part`` (a window, a gap) of a take rendered from ``seed``: part 0 is the
    seed itself; later parts draw from (seed, part) so no two takes or parts share their noise
    (``seed + part`` would hand take 2's window k the noise of take 1's window k + 1)."""
    if part == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(part)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def seeded_noise(model: Model, seeds: Sequence[int], frames: int) -> torch.Tensor:
    """One noise tensor per seed, drawn on the CPU so a seed means the same audio on any device
    and a take does not change when it is batched with others."""
    shape = latent_shape(model, frames)
    noise = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(s)), dtype=torch.float32) for s in seeds]
    return torch.stack(noise).to(model.device, model.dtype)


def denoise(
    model: Model,
    scheduler,
    latents: torch.Tensor,
    embeds: torch.Tensor,
    guidance: float,
    timesteps: torch.Tensor,
    on_step: Optional[OnStep] = None,
    after_step: Optional[Callable[[int, torch.Tensor], torch.Tensor]] = None,
) -> torch.Tensor:
    """The reverse diffusion loop with classifier-free guidance.

    ``after_step(i, latents)`` may rewrite the latents after step i (inpainting re-imposes the
    known region there). ``on_step`` reports progress and may cancel.
    """
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        model_input = torch.cat([latents] * 2) if guidance > 1.0 else latents
        model_input = scheduler.scale_model_input(model_input, t)
        with torch.no_grad():
            noise_pred = model.unet(model_input, t, encoder_hidden_states=None, class_labels=embeds).sample
        if guidance > 1.0:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + guidance * (cond - uncond)
        latents = scheduler.step(noise_pred, t, latents).prev_sample
        if after_step is not None:
            latents = after_step(i, latents)
        if on_step is not None:
            on_step(i + 1, total)
    return latents


def decode(model: Model, latents: torch.Tensor) -> np.ndarray:
    """Latents -> log-mel (VAE decoder) -> waveform (HiFi-GAN), float32 of shape (batch, samples)."""
    with torch.no_grad():
        mels = model.vae.decode(latents / model.vae.config.scaling_factor).sample
        waves = model.vocoder(mels.squeeze(1))
    return waves.float().cpu().numpy().reshape(latents.shape[0], -1)


def encode_audio(model: Model, wave16k: np.ndarray, frames: int) -> torch.Tensor:
    """A 16 kHz mono waveform -> its latent, (1, C, frames/4, 16), through the AudioLDM front end."""
    features = mel.log_mel(wave16k, model.sample_rate)
    features = _fit_frames(features, frames)
    x = torch.from_numpy(features)[None, None].to(model.device, model.dtype)
    with torch.no_grad():
        latent = model.vae.encode(x).latent_dist.mode()
    return latent * model.vae.config.scaling_factor


def _fit_frames(features: np.ndarray, frames: int) -> np.ndarray:
    if len(features) >= frames:
        return features[:frames]
    pad = np.full((frames - len(features), features.shape[1]), np.log(mel.CLAMP), dtype=features.dtype)
    return np.concatenate([features, pad])


def sdedit_timesteps(scheduler, steps: int, strength: float) -> torch.Tensor:
    """The tail of the schedule a strength leaves: strength 1 is the full schedule, 0 is none."""
    scheduler.set_timesteps(steps)
    keep = min(steps, int(round(steps * strength)))
    return scheduler.timesteps[len(scheduler.timesteps) - keep * scheduler.order :] if keep else scheduler.timesteps[:0]


def peak_normalise(wave: np.ndarray, peak: float = 0.5) -> tuple[np.ndarray, float]:
    """Scale to the level AudioLDM was trained on (peak 0.5, DC removed); returns the gain used."""
    wave = wave - np.mean(wave) if len(wave) else wave
    top = float(np.max(np.abs(wave))) if len(wave) else 0.0
    gain = peak / top if top > 1e-8 else 1.0
    return wave * gain, gain
