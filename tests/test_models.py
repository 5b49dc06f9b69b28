"""Loading checkpoints the way a user names them: hub id, local folder, tiny."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from host.engine.tiny import tiny_path

LOAD = "from host.engine.models import load_model; m = load_model(sys.argv[1]); print(m.id, m.revision, m.sample_rate, m.hop, m.vae_scale)"


def run_load(name: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; " + LOAD, name], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_a_hub_id_loads_from_the_local_hugging_face_cache_with_its_revision(tmp_path):
    # lay the tiny model out exactly as huggingface_hub caches a downloaded checkpoint
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--cvssp--audioldm-s-full-v2"
    shutil.copytree(tiny_path(), repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    done = run_load("cvssp/audioldm-s-full-v2", HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cvssp/audioldm-s-full-v2", revision, "16000", "160", "4"]


def test_a_checkpoint_that_is_not_cached_fails_in_one_line_naming_the_fix(tmp_path):
    done = run_load("cvssp/audioldm-m-full", HF_HUB_CACHE=str(tmp_path / "empty"), HF_HUB_OFFLINE="1")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "cvssp/audioldm-m-full" in last and "huggingface-cli download" in last and "--model tiny" in last


def test_a_local_diffusers_folder_loads_and_is_fingerprinted(tmp_path):
    folder = tmp_path / "my-checkpoint"
    shutil.copytree(tiny_path(), folder)
    done = run_load(str(folder))
    assert done.returncode == 0, done.stderr
    model_id, revision, rate, hop, scale = done.stdout.split()
    assert model_id == str(folder) and revision.startswith("sha256:") and (rate, hop, scale) == ("16000", "160", "4")


def test_tiny_has_real_audioldm_geometry(tiny_model):
    m = tiny_model
    assert (m.sample_rate, m.hop, m.vae_scale) == (16000, 160, 4)
    assert m.unet.config.in_channels == 8 and m.vocoder.config.model_in_dim == 64
    assert m.window_seconds == 5.12
    assert m.tokenizer("any prompt, even émoji 🎧 and 日本語").input_ids  # byte-level: anything tokenizes
    assert m.tokenizer.unk_token_id not in m.tokenizer("émoji 🎧 日本語").input_ids
