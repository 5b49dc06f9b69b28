"""The steps every AudioLDM or AudioLDM 2 render is made of, each a small function over a :class:`Model`.

encode the prompt -> prepare latents -> denoise loop -> decode to a waveform, plus the
reverse direction (waveform -> latent) that restyle and inpaint start from. The pipelines in
``foley.py``, ``restyle.py`` and ``inpaint.py`` call these in order, so one render reads top
to bottom. The two families differ only in prompt encoding (:func:`encode_prompts` returns
a :class:`Conditioning`) and in the UNet call (:func:`predict_noise`); the VAE, vocoder and
everything around them are the same, so the pipelines have no family branches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

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


@dataclass(frozen=True)
class Conditioning:
    """What the UNet is conditioned on, one row per take (with guidance: negatives first).

    AudioLDM: ``clap`` holds the L2-normalised CLAP text embeddings (the UNet's class labels).
    AudioLDM 2: ``generated`` is GPT-2's conditioning sequence (the first cross-attention
    stream), ``text`` the T5 hidden states padded to ``model.text_length`` and ``text_mask``
    marks their real tokens (the second stream). Only :func:`predict_noise` looks inside.
    """

    clap: Optional[torch.Tensor] = None
    generated: Optional[torch.Tensor] = None
    text: Optional[torch.Tensor] = None
    text_mask: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        first = self.clap if self.clap is not None else self.generated
        return int(first.shape[0])


def encode_prompts(model: Model, prompts: Sequence[str], negatives: Sequence[str], guidance: float) -> Conditioning:
    """The conditioning for a batch of takes; with guidance the negatives come first (uncond, cond).

    Each distinct text is encoded on its own, so a take's conditioning does not depend on
    what it is batched with.
    """
    texts = list(negatives) + list(prompts) if guidance > 1.0 else list(prompts)
    if model.family == "audioldm2":
        return _encode_audioldm2(model, texts)
    return Conditioning(clap=_clap_text(model, texts))


def _clap_text(model: Model, texts: Sequence[str]) -> torch.Tensor:
    """CLAP text embeddings, L2-normalised, (len(texts), projection_dim)."""
    tokens = model.tokenizer(
        list(texts), padding="max_length", max_length=model.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    encoder = model.text_encoder
    with torch.no_grad():
        pooled = encoder.text_model(tokens.input_ids.to(model.device), attention_mask=tokens.attention_mask.to(model.device)).pooler_output
        embeds = encoder.text_projection(pooled)
    return F.normalize(embeds, dim=-1).to(model.dtype)


def _encode_audioldm2(model: Model, texts: Sequence[str]) -> Conditioning:
    """CLAP embedding and T5 states -> projection model -> GPT-2 generates ``max_new_tokens``
    vectors. The UNet attends to those and, through the second stream, to the T5 states."""
    unique = list(dict.fromkeys(texts))
    length = model.text_length
    encoded = {}
    for text in unique:
        clap = _clap_text(model, [text])[:, None, :]  # (1, 1, D): one attended vector
        ids = model.tokenizer_2([text], truncation=True, max_length=length, return_tensors="pt").input_ids.to(model.device)
        with torch.no_grad():
            t5 = model.text_encoder_2(ids).last_hidden_state.to(model.dtype)  # (1, n, D_t5)
            projected = model.projection_model(hidden_states=clap, hidden_states_1=t5).hidden_states
            generated = _generate(model, projected.to(model.dtype))
        padded = torch.zeros((1, length, t5.shape[-1]), dtype=model.dtype, device=model.device)
        padded[:, : t5.shape[1]] = t5
        mask = torch.zeros((1, length), dtype=torch.long, device=model.device)
        mask[:, : t5.shape[1]] = 1
        encoded[text] = (generated, padded, mask)
    rows = [encoded[t] for t in texts]
    return Conditioning(
        generated=torch.cat([r[0] for r in rows]),
        text=torch.cat([r[1] for r in rows]),
        text_mask=torch.cat([r[2] for r in rows]),
    )


def _generate(model: Model, embeds: torch.Tensor) -> torch.Tensor:
    """GPT-2 continues the projected sequence by ``max_new_tokens`` hidden states (greedy in
    embedding space: each new last hidden state is fed back as the next input)."""
    lm = model.language_model
    lm = getattr(lm, "transformer", lm)  # GPT2LMHeadModel wraps the GPT2Model we need
    steps_left = model.max_new_tokens
    out = lm(inputs_embeds=embeds, use_cache=True)
    new = [out.last_hidden_state[:, -1:]]
    for _ in range(steps_left - 1):
        out = lm(inputs_embeds=new[-1], past_key_values=out.past_key_values, use_cache=True)
        new.append(out.last_hidden_state[:, -1:])
    return torch.cat(new, dim=1).to(model.dtype)


def predict_noise(model: Model, sample: torch.Tensor, t, cond: Conditioning) -> torch.Tensor:
    """One UNet call, for either family."""
    with torch.no_grad():
        if model.family == "audioldm2":
            return model.unet(
                sample, t, encoder_hidden_states=cond.generated, encoder_hidden_states_1=cond.text,
                encoder_attention_mask_1=cond.text_mask, return_dict=False,
            )[0]
        return model.unet(sample, t, encoder_hidden_states=None, class_labels=cond.clap, return_dict=False)[0]


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
    embeds: Conditioning,
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
        noise_pred = predict_noise(model, model_input, t, embeds)
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


def warm_up(model: Model, shapes: Iterable[tuple[int, int]], guidance: bool = True) -> int:
    """Run the UNet once per (mel frames, takes) shape, so a compiled UNet (``--compile``)
    compiles them now rather than in the middle of a user's render. ``frames`` is what
    ``model.frames_for(duration)`` gives; with ``guidance`` the UNet sees twice the takes, as
    every render with guidance > 1 does. Returns how many distinct shapes were run. Harmless
    (and quick on tiny models) when the UNet is not compiled."""
    done = set()
    for frames, takes in shapes:
        frames = model.frames_for(int(frames) * model.hop / model.sample_rate)
        rows = int(takes) * (2 if guidance else 1)
        if (frames, rows) in done or rows < 1:
            continue
        done.add((frames, rows))
        sample = torch.zeros((rows, *latent_shape(model, frames)), device=model.device, dtype=model.dtype)
        predict_noise(model, sample, torch.tensor(999, device=model.device), _blank_conditioning(model, rows))
    return len(done)


def _blank_conditioning(model: Model, rows: int) -> Conditioning:
    """Conditioning of the right shapes and dtype (zeros): enough to trace and compile the UNet."""
    kw = dict(device=model.device, dtype=model.dtype)
    if model.family == "audioldm2":
        width = int(model.language_model.config.n_embd)
        t5_width = int(model.text_encoder_2.config.d_model)
        mask = torch.ones((rows, model.text_length), dtype=torch.long, device=model.device)
        return Conditioning(
            generated=torch.zeros((rows, model.max_new_tokens, width), **kw),
            text=torch.zeros((rows, model.text_length, t5_width), **kw),
            text_mask=mask,
        )
    return Conditioning(clap=torch.zeros((rows, int(model.text_encoder.config.projection_dim)), **kw))
