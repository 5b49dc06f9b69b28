"""The built-in ``tiny`` model: random weights, real AudioLDM geometry.

16 kHz audio, 64 mel bins, hop 160 (vocoder upsampling 5*4*4*2 = 160), VAE scale factor 4,
8 latent channels, a CLAP text tower with a byte-level tokenizer so any prompt tokenizes.
It is built deterministically, saved once into a cache folder and from then on loaded through
the same ``from_pretrained`` path as a real checkpoint. It sounds like noise: it exists so the
whole host runs and is tested on machines that cannot reach a model hub.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

TINY_VERSION = "tiny-v1"
MAX_TOKENS = 77


def cache_root() -> Path:
    return Path(os.environ.get("AUDIOHOST_CACHE", Path.home() / ".cache" / "audiohost"))


def tiny_path() -> Path:
    """Folder of the saved tiny pipeline, building it first if it is not there yet."""
    target = cache_root() / TINY_VERSION
    if not (target / "model_index.json").exists():
        _build_and_save(target)
    return target


def _byte_level_vocab() -> dict[str, int]:
    # GPT-2/RoBERTa byte-level alphabet: every byte maps to one printable character,
    # so with no merges every string tokenizes into known symbols.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for ch in chars:
        vocab[ch] = len(vocab)
    return vocab


def build_tiny():
    """A freshly initialised tiny AudioLDM pipeline (deterministic: seeded)."""
    import torch
    from diffusers import AudioLDMPipeline, AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import ClapTextConfig, ClapTextModelWithProjection, RobertaTokenizer, SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(0)
    vocab = _byte_level_vocab()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = RobertaTokenizer(
            vocab_file=str(Path(tmp) / "vocab.json"), merges_file=str(Path(tmp) / "merges.txt"), model_max_length=MAX_TOKENS
        )
    text_encoder = ClapTextModelWithProjection(
        ClapTextConfig(
            vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            projection_dim=32, max_position_embeddings=MAX_TOKENS + 2, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=128,  # latent frames: 128 * 4 * 160 / 16000 = 5.12 s, as audioldm-s
        in_channels=8, out_channels=8,
        block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(32, 64), attention_head_dim=8, norm_num_groups=8,
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=32, class_embeddings_concat=True,
    )
    vae = AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=8, block_out_channels=(16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1, norm_num_groups=8, sample_size=512, scaling_factor=1.0,
    )
    vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=64, sampling_rate=16000, upsample_initial_channel=32, upsample_rates=[5, 4, 4, 2],
            upsample_kernel_sizes=[10, 8, 8, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
            normalize_before=False,
        )
    )
    scheduler = DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )
    _calibrate_vocoder(vae, vocoder)
    from diffusers.utils import logging as dlogging

    previous = dlogging.get_verbosity()
    dlogging.set_verbosity_error()  # diffusers' deprecation notice for AudioLDMPipeline is not the user's business
    try:
        return AudioLDMPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler, vocoder=vocoder)
    finally:
        dlogging.set_verbosity(previous)


def _calibrate_vocoder(vae, vocoder, target_rms: float = 0.1) -> None:
    """Scale the vocoder's last layer so a decoded random latent comes out at an audible level.

    Freshly initialised HiFi-GAN weights are so small that the output would sit near -160 dBFS,
    below BS.1770's absolute gate; the host's loudness path needs something it can measure.
    """
    import torch

    with torch.no_grad():
        latent = torch.randn(1, 8, 128, 16, generator=torch.Generator().manual_seed(1))
        mel = vae.decode(latent).sample.squeeze(1)
        rms = vocoder(mel).std().item()
        vocoder.conv_post.weight.mul_(target_rms / rms)


def _build_and_save(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build_tiny().save_pretrained(staging)
        try:
            os.rename(staging, target)  # atomic publish; loses harmlessly to a concurrent builder
        except OSError:
            if not (target / "model_index.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
