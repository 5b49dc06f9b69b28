"""Ranking takes by CLAP similarity to their prompt: AudioLDM 2 scores with its own CLAP, AudioLDM
with a cached ``laion/clap-htsat-unfused`` or not at all (and says so)."""

from __future__ import annotations

import json
import shutil

import huggingface_hub.constants
import numpy as np
import pytest

from host.engine.foley import FoleyPipeline, FoleyTake
from host.engine.models import load_model
from host.engine.rank import CLAP_CHECKPOINT, load_scorer, score_takes
from host.engine.tiny import tiny_path

PROMPT = "rain on a tin roof"


@pytest.fixture(scope="module")
def model2(model_cache):
    return load_model("tiny-audioldm2", device="cpu")


@pytest.fixture(scope="module")
def takes(model2):
    return FoleyPipeline(model2)([FoleyTake(PROMPT, "", s) for s in (1, 2, 3)], 1.5, 2, 2.5)


def test_audioldm2_scores_its_takes_with_its_own_clap(model2, takes):
    scorer = load_scorer(model2)
    assert scorer.available and scorer.off is None and scorer.clap is model2.text_encoder
    scores = score_takes(scorer, PROMPT, takes)
    assert len(scores) == 3
    assert all(np.isfinite(s) and -1.0 <= s <= 1.0 for s in scores)
    assert len(set(scores)) == 3  # three takes, three scores
    assert score_takes(scorer, PROMPT, takes) == scores  # deterministic
    other = score_takes(scorer, "a choir singing in a cathedral", takes)
    assert all(abs(a - b) > 1e-6 for a, b in zip(scores, other))


def test_batched_and_one_at_a_time_scores_agree(model2, takes):
    scorer = load_scorer(model2)
    batched = score_takes(scorer, PROMPT, takes)
    alone = [score_takes(scorer, PROMPT, [w])[0] for w in takes]
    assert np.allclose(batched, alone, atol=1e-5)
    assert score_takes(scorer, PROMPT, []) == []


def test_takes_longer_than_clap_window_and_other_rates_are_scored(model2, takes):
    scorer = load_scorer(model2)
    long = np.concatenate([takes[0]] * 9)  # 13.5 s: two CLAP pieces
    [a] = score_takes(scorer, PROMPT, [long])
    assert np.isfinite(a) and score_takes(scorer, PROMPT, [long]) == [a]
    # the same audio given at 44.1 kHz scores (nearly) the same: it is resampled, not misread
    import soxr

    [at16] = score_takes(scorer, PROMPT, [takes[1]])
    [at44] = score_takes(scorer, PROMPT, [soxr.resample(takes[1], 16000, 44100, quality="VHQ")], sample_rate=44100)
    assert abs(at16 - at44) < 1e-3
    with pytest.raises(ValueError):
        score_takes(scorer, PROMPT, [np.zeros(0, dtype=np.float32)])


def test_audioldm_without_a_cached_clap_reports_ranking_off_once(tmp_path, monkeypatch, model_cache):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    scorer = load_scorer(load_model("tiny", device="cpu"))
    assert not scorer.available
    assert scorer.off.startswith("ranking off:") and CLAP_CHECKPOINT in scorer.off and "\n" not in scorer.off
    with pytest.raises(ValueError, match="ranking off"):
        score_takes(scorer, PROMPT, [np.zeros(1600, dtype=np.float32)])


def test_audioldm_borrows_a_cached_full_clap(tmp_path, monkeypatch, model_cache, takes):
    # lay a full CLAP out as huggingface_hub caches laion/clap-htsat-unfused (flat: config, weights, tokenizer, features)
    revision = "fedcba9876543210fedcba9876543210fedcba98"
    snap = tmp_path / "hub" / "models--laion--clap-htsat-unfused" / "snapshots" / revision
    src = tiny_path("tiny-audioldm2")
    shutil.copytree(src / "text_encoder", snap)
    for sub in ("tokenizer", "feature_extractor"):
        for f in (src / sub).iterdir():
            shutil.copy(f, snap / f.name)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text(revision)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    scorer = load_scorer(load_model("tiny", device="cpu"))
    assert scorer.available and scorer.source == f"{CLAP_CHECKPOINT}@{revision}"
    scores = score_takes(scorer, PROMPT, takes)
    # the same CLAP weights as tiny-audioldm2's own: the same scores
    own = score_takes(load_scorer(load_model("tiny-audioldm2", device="cpu")), PROMPT, takes)
    assert np.allclose(scores, own, atol=1e-6)
    assert json.loads((snap / "config.json").read_text())["model_type"] == "clap"
