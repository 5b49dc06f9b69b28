"""The built-in tiny models: random weights, the real geometry of each family.

``tiny`` is an AudioLDM, ``tiny-audioldm2`` an AudioLDM 2. Both make 16 kHz audio from 64 mel
bins, hop 160 (vocoder upsampling 5*4*4*2 = 160), VAE scale factor 4 and 8 latent channels;
``tiny`` has AudioLDM's 5.12 s window, ``tiny-audioldm2`` AudioLDM 2's 10.24 s. Their
tokenizers are built here with the ``tokenizers`` library (a byte-level BPE for CLAP, a
Unigram with byte fallback for T5), so any prompt tokenizes and nothing comes from a hub.
``tiny-audioldm2`` carries a full CLAP (text and audio towers) and CLAP's own feature
extractor, so ranking takes works on it as on a real AudioLDM 2.

Each is built deterministically (seeded), saved once into a cache folder one component per
subfolder with a ``model_index.json``, exactly the layout of a diffusers checkpoint, and from
then on loaded through the same path as a real checkpoint. They sound like noise: they exist
so the whole host runs and is tested on machines that cannot reach a model hub.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

# Bump a version when its build changes, so a cache built by older code is not reused.
TINY_VERSIONS = {"tiny": "tiny-v2", "tiny-audioldm2": "tiny-audioldm2-v1"}
TINY_NAMES = tuple(TINY_VERSIONS)
TINY_VERSION = TINY_VERSIONS["tiny"]
MAX_TOKENS = 77  # CLAP's tokenizer, as in the real checkpoints
T5_MAX_TOKENS = 128  # AudioLDM 2's T5 tokenizer (hard-coded to 128 in the original code)
LANGUAGE_TOKENS = 8  # GPT-2 generates this many conditioning vectors, as in cvssp/audioldm2


def cache_root() -> Path:
    return Path(os.environ.get("AUDIOHOST_CACHE", Path.home() / ".cache" / "audiohost"))


def tiny_path(name: str = "tiny") -> Path:
    """Folder of a saved tiny model (``tiny`` or ``tiny-audioldm2``), building it first if needed."""
    target = cache_root() / TINY_VERSIONS[name]
    if not (target / "model_index.json").exists():
        _build_and_save(name, target)
    return target


# --------------------------------------------------------------------------- tokenizers


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


def _save_tokenizer(tok, folder: Path, max_length: int, specials: dict[str, str]) -> None:
    """A ``tokenizers`` tokenizer as a transformers tokenizer folder. The class is the generic
    fast tokenizer so every transformers version loads ``tokenizer.json`` exactly as built."""
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length, **specials}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _save_clap_tokenizer(folder: Path) -> int:
    """RoBERTa-style byte-level BPE without merges (one token per byte). Returns the vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = _byte_level_vocab()
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}
    _save_tokenizer(tok, folder, MAX_TOKENS, specials)
    return len(vocab)


def _save_t5_tokenizer(folder: Path) -> int:
    """T5-style Unigram (``▁`` word starts, ``</s>`` appended) with byte fallback, so no prompt
    meets ``<unk>``. Returns the vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789.,-'":
        pieces += [(ch, -4.0), ("▁" + ch, -4.5)]
    words = "the a of and on in with at from to low high quality sound noise rain wind water door step steps footsteps glass".split()
    pieces += [("▁" + w, -3.0) for w in words]
    pieces += [(f"<0x{b:02X}>", -12.0) for b in range(256)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    _save_tokenizer(tok, folder, T5_MAX_TOKENS, {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"})
    return len(pieces)


# --------------------------------------------------------------------------- shared parts


def _vae_and_vocoder():
    from diffusers import AutoencoderKL
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

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
    return vae, vocoder


def _scheduler():
    from diffusers import DDIMScheduler

    # AudioLDM's and AudioLDM 2's training schedule
    return DDIMScheduler(
        num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )


def _clap_text_config(vocab_size: int) -> dict:
    return dict(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        projection_dim=32, max_position_embeddings=MAX_TOKENS + 2, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )


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


# --------------------------------------------------------------------------- the two families


def _save_audioldm(folder: Path) -> dict:
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    torch.manual_seed(0)
    vocab_size = _save_clap_tokenizer(folder / "tokenizer")
    text_encoder = ClapTextModelWithProjection(ClapTextConfig(**_clap_text_config(vocab_size)))
    unet = UNet2DConditionModel(
        sample_size=128,  # latent frames: 128 * 4 * 160 / 16000 = 5.12 s, as audioldm-s
        in_channels=8, out_channels=8,
        block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(32, 64), attention_head_dim=8, norm_num_groups=8,
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=32, class_embeddings_concat=True,
    )
    vae, vocoder = _vae_and_vocoder()
    scheduler = _scheduler()
    _calibrate_vocoder(vae, vocoder)
    for sub, part in (("text_encoder", text_encoder), ("unet", unet), ("vae", vae), ("vocoder", vocoder), ("scheduler", scheduler)):
        part.save_pretrained(folder / sub)
    return {
        "_class_name": "AudioLDMPipeline",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "ClapTextModelWithProjection"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "vocoder": ["transformers", "SpeechT5HifiGan"],
    }


def _save_audioldm2(folder: Path) -> dict:
    import torch
    from diffusers import AudioLDM2ProjectionModel, AudioLDM2UNet2DConditionModel
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, GPT2Config, GPT2Model, T5Config, T5EncoderModel

    torch.manual_seed(0)
    clap_vocab = _save_clap_tokenizer(folder / "tokenizer")
    t5_vocab = _save_t5_tokenizer(folder / "tokenizer_2")
    width = 32
    # A full CLAP: text tower for conditioning, HTSAT audio tower for ranking takes. The audio
    # tower reads the real CLAP front end (48 kHz, 64 mel bins, 10 s: spec_size 256).
    clap = ClapModel(
        ClapConfig(
            text_config=_clap_text_config(clap_vocab),
            audio_config=dict(
                spec_size=256, num_mel_bins=64, window_size=8, patch_size=4, patch_stride=[4, 4],
                patch_embeds_hidden_size=16, depths=[1, 1], num_attention_heads=[2, 4], hidden_size=32,
                intermediate_size=64, projection_dim=width, enable_fusion=False,
            ),
            projection_dim=width,
        )
    )
    t5 = T5EncoderModel(T5Config(vocab_size=t5_vocab, d_model=width, d_ff=64, d_kv=8, num_heads=4, num_layers=2, pad_token_id=0, eos_token_id=1))
    gpt2 = GPT2Model(GPT2Config(vocab_size=64, n_embd=width, n_head=4, n_layer=2, n_positions=T5_MAX_TOKENS + 32))
    gpt2.config.max_new_tokens = LANGUAGE_TOKENS
    projection = AudioLDM2ProjectionModel(text_encoder_dim=width, text_encoder_1_dim=width, langauge_model_dim=width)
    # Two cross-attention streams per transformer block, as in cvssp/audioldm2: [self, GPT-2, T5]
    streams = [None, width, width]
    unet = AudioLDM2UNet2DConditionModel(
        sample_size=256,  # latent frames: 256 * 4 * 160 / 16000 = 10.24 s, as cvssp/audioldm2
        in_channels=8, out_channels=8,
        block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(streams, streams), attention_head_dim=8, norm_num_groups=8,
    )
    vae, vocoder = _vae_and_vocoder()
    scheduler = _scheduler()
    _calibrate_vocoder(vae, vocoder)
    features = ClapFeatureExtractor(
        feature_size=64, sampling_rate=48000, hop_length=480, max_length_s=10, fft_window_size=1024,
        padding="repeatpad", truncation="rand_trunc", frequency_min=50, frequency_max=14000,
    )
    parts = (
        ("text_encoder", clap), ("text_encoder_2", t5), ("language_model", gpt2), ("projection_model", projection),
        ("unet", unet), ("vae", vae), ("vocoder", vocoder), ("scheduler", scheduler), ("feature_extractor", features),
    )
    for sub, part in parts:
        part.save_pretrained(folder / sub)
    return {
        "_class_name": "AudioLDM2Pipeline",
        "feature_extractor": ["transformers", "ClapFeatureExtractor"],
        "language_model": ["transformers", "GPT2Model"],
        "projection_model": ["audioldm2", "AudioLDM2ProjectionModel"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "ClapModel"],
        "text_encoder_2": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "tokenizer_2": ["transformers", "PreTrainedTokenizerFast"],
        "unet": ["audioldm2", "AudioLDM2UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "vocoder": ["transformers", "SpeechT5HifiGan"],
    }


def save_tiny(name: str, folder: Path) -> None:
    """Build the tiny model ``name`` and save it into the empty or new ``folder``."""
    import diffusers
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    builders = {"tiny": _save_audioldm, "tiny-audioldm2": _save_audioldm2}
    folder.mkdir(parents=True, exist_ok=True)
    previous, previous_t = dlogging.get_verbosity(), tlogging.get_verbosity()
    dlogging.set_verbosity_error()
    tlogging.set_verbosity_error()
    tlogging.disable_progress_bar()
    try:
        index = builders[name](folder)
    finally:
        dlogging.set_verbosity(previous)
        tlogging.set_verbosity(previous_t)
    index["_diffusers_version"] = diffusers.__version__
    (folder / "model_index.json").write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")


def _build_and_save(name: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_tiny(name, staging)
        try:
            os.rename(staging, target)  # atomic publish; loses harmlessly to a concurrent builder
        except OSError:
            if not (target / "model_index.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
