"""Ranking takes: how well each take fits its prompt, by cosine similarity in CLAP's joint space.

AudioLDM 2 checkpoints carry a full CLAP (text and audio towers) and CLAP's feature
extractor, so they score their own takes. AudioLDM checkpoints carry only CLAP's text tower:
they borrow ``laion/clap-htsat-unfused`` when it is in the local Hugging Face cache (never
downloaded), and otherwise ranking is off, with one sentence saying why
(:attr:`Scorer.off`). Scoring reads audio the way CLAP was trained: 48 kHz (resampled with
soxr), 10-second pieces; a longer take is scored piece by piece and its piece embeddings
averaged, so a take of any length gets one deterministic score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import soxr
import torch
import torch.nn.functional as F

from host.engine.models import Model, cached_snapshot, quiet

CLAP_CHECKPOINT = "laion/clap-htsat-unfused"
BATCH = 8  # CLAP audio pieces per forward pass


@dataclass
class Scorer:
    """A CLAP model ready to score takes, or the reason ranking is off (``off``)."""

    source: str  # where the CLAP came from, e.g. "cvssp/audioldm2" or "laion/clap-htsat-unfused@<revision>"
    clap: Any = None  # transformers ClapModel (text and audio towers)
    tokenizer: Any = None
    feature_extractor: Any = None
    device: Any = None
    dtype: Any = None
    off: Optional[str] = None  # None: ranking is on; else one line for the log

    @property
    def available(self) -> bool:
        return self.off is None


def load_scorer(model: Model, clap_checkpoint: str = CLAP_CHECKPOINT) -> Scorer:
    """The scorer for a loaded model. Costs nothing for AudioLDM 2 (it shares the model's own
    CLAP); for AudioLDM it loads the cached CLAP checkpoint once, or reports ranking off."""
    clap = model.text_encoder
    if model.feature_extractor is not None and hasattr(clap, "audio_model"):
        return Scorer(model.id, clap, model.tokenizer, model.feature_extractor, model.device, model.dtype)
    folder = cached_snapshot(clap_checkpoint, "config.json")
    off = (
        f"ranking off: {model.id} has no CLAP audio model and {clap_checkpoint} is not in the local "
        f"Hugging Face cache (`huggingface-cli download {clap_checkpoint}` turns it on)"
    )
    if folder is None:
        return Scorer(clap_checkpoint, off=off)
    try:
        from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

        with quiet():
            full = ClapModel.from_pretrained(str(folder)).to(model.device, model.dtype).eval().requires_grad_(False)
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            features = ClapFeatureExtractor.from_pretrained(str(folder))
    except Exception as err:  # noqa: BLE001 - a broken cache entry turns ranking off, it does not stop renders
        return Scorer(clap_checkpoint, off=f"ranking off: {clap_checkpoint} in the cache could not be loaded ({type(err).__name__})")
    return Scorer(f"{clap_checkpoint}@{folder.name}", full, tokenizer, features, model.device, model.dtype)


def score_takes(scorer: Scorer, prompt: str, waves: Sequence[np.ndarray], sample_rate: int = 16000) -> list[float]:
    """Each take's cosine similarity to ``prompt`` in CLAP's joint space, in [-1, 1], in the
    order given. ``waves`` are mono float waveforms at ``sample_rate`` (the engine's 16 kHz).
    Every take's pieces go through CLAP in shared batches."""
    if not scorer.available:
        raise ValueError(scorer.off)
    if not waves:
        return []
    text = _text_embedding(scorer, prompt)
    audio = _audio_embeddings(scorer, waves, sample_rate)
    scores = (audio @ text).clamp(-1.0, 1.0)
    return [float(s) for s in scores.cpu()]


def _text_embedding(scorer: Scorer, prompt: str) -> torch.Tensor:
    tok = scorer.tokenizer([prompt], padding=True, truncation=True, max_length=min(int(scorer.tokenizer.model_max_length), 512), return_tensors="pt")
    with torch.no_grad():
        pooled = scorer.clap.text_model(tok.input_ids.to(scorer.device), attention_mask=tok.attention_mask.to(scorer.device)).pooler_output
        embed = scorer.clap.text_projection(pooled)
    return F.normalize(embed.float(), dim=-1)[0]


def _audio_embeddings(scorer: Scorer, waves: Sequence[np.ndarray], sample_rate: int) -> torch.Tensor:
    fx = scorer.feature_extractor
    rate = int(fx.sampling_rate)
    piece = int(fx.nb_max_samples)  # 10 s at 48 kHz
    pieces, owner, weight = [], [], []
    for i, wave in enumerate(waves):
        wave = np.asarray(wave, dtype=np.float64).reshape(-1)
        if len(wave) == 0:
            raise ValueError(f"take {i + 1} is empty: nothing to score")
        heard = soxr.resample(wave, sample_rate, rate, quality="VHQ") if sample_rate != rate else wave
        heard = np.nan_to_num(heard.astype(np.float32))
        for start in range(0, len(heard), piece):
            chunk = heard[start : start + piece]
            pieces.append(chunk)
            owner.append(i)
            weight.append(len(chunk))
    fusion = bool(getattr(scorer.clap.config.audio_config, "enable_fusion", False))
    embeds = []
    for b in range(0, len(pieces), BATCH):
        batch = pieces[b : b + BATCH]
        # no piece exceeds CLAP's 10 s, so no random cropping happens; is_longer is set here
        # rather than by the extractor, which marks a random clip "longer" in fusion mode
        feats = fx(batch, sampling_rate=rate, truncation="fusion" if fusion else "rand_trunc", return_tensors="pt")
        is_longer = torch.zeros((len(batch), 1), dtype=torch.bool, device=scorer.device)
        with torch.no_grad():
            pooled = scorer.clap.audio_model(input_features=feats.input_features.to(scorer.device, scorer.dtype), is_longer=is_longer).pooler_output
            embeds.append(F.normalize(scorer.clap.audio_projection(pooled).float(), dim=-1))
    per_piece = torch.cat(embeds)
    owner_t = torch.tensor(owner, device=per_piece.device)
    w = torch.tensor(weight, dtype=per_piece.dtype, device=per_piece.device)[:, None]
    summed = torch.zeros((len(waves), per_piece.shape[1]), dtype=per_piece.dtype, device=per_piece.device)
    summed.index_add_(0, owner_t, per_piece * w)
    return F.normalize(summed, dim=-1)
