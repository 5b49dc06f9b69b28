"""Loading checkpoints the way a user names them: hub id, local folder, tiny, tiny-audioldm2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from host.engine.models import describe, detect_family, download_patterns, load_model
from host.engine.tiny import tiny_path
from host.errors import InputError

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


# --------------------------------------------------------------------------- AudioLDM 2 and families

LOAD_FAMILY = "from host.engine.models import load_model; m = load_model(sys.argv[1]); print(m.id, m.revision, m.family, m.window_seconds)"


def _cache_as_hub(tmp_path, source, repo_id: str, revision: str):
    repo = tmp_path / "hub" / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(source, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return tmp_path / "hub"


def test_an_audioldm2_hub_id_loads_offline_from_the_cache_with_its_revision(tmp_path):
    revision = "89abcdef0123456789abcdef0123456789abcdef"
    hub = _cache_as_hub(tmp_path, tiny_path("tiny-audioldm2"), "cvssp/audioldm2-music", revision)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; " + LOAD_FAMILY, "cvssp/audioldm2-music"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cvssp/audioldm2-music", revision, "audioldm2", "10.24"]


@pytest.mark.parametrize("repo_id", ["cvssp/audioldm2", "cvssp/audioldm2-large"])
def test_an_audioldm2_checkpoint_that_is_not_cached_fails_in_one_line_naming_the_fix(tmp_path, repo_id):
    done = run_load(repo_id, HF_HUB_CACHE=str(tmp_path / "empty"), HF_HUB_OFFLINE="1")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    last = lines[-1]
    assert repo_id in last and f"huggingface-cli download {repo_id}" in last and "tiny-audioldm2" in last


@pytest.mark.parametrize("source, misleading, family", [("tiny-audioldm2", "audioldm-s-full-v2", "audioldm2"), ("tiny", "audioldm2-music", "audioldm")])
def test_the_family_comes_from_the_folders_configs_not_its_name(tmp_path, source, misleading, family):
    folder = tmp_path / misleading
    shutil.copytree(tiny_path(source), folder)
    assert describe(str(folder))[2] == family
    model = load_model(str(folder), device="cpu")
    assert model.family == family and model.id == str(folder)
    # without the pipeline class in model_index.json, the components still tell
    index = json.loads((folder / "model_index.json").read_text())
    del index["_class_name"]
    (folder / "model_index.json").write_text(json.dumps(index))
    assert detect_family(folder) == family


def _broken(tmp_path, edit) -> str:
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_path("tiny-audioldm2"), folder)
    edit(folder)
    return str(folder)


def _set_index(folder, **changes):
    index = json.loads((folder / "model_index.json").read_text())
    index.update(changes)
    (folder / "model_index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda f: shutil.rmtree(f / "language_model"), "lacks language_model"),
        (lambda f: _set_index(f, text_encoder_2=["transformers", "VitsModel"]), "text-to-speech"),
        (lambda f: _set_index(f, _class_name="AudioLDMPipeline"), "unet/config.json is a AudioLDM2UNet2DConditionModel"),
        (lambda f: (f / "model_index.json").write_text("{not json"), "model_index.json is unreadable"),
        (lambda f: (f / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage"), "unet could not be loaded"),
        (lambda f: [shutil.rmtree(f / s) for s in ("language_model", "projection_model", "unet")]
         + [_set_index(f, _class_name="StableDiffusionPipeline", language_model=[None, None], projection_model=[None, None], unet=[None, None])],
         "not an AudioLDM or AudioLDM 2 checkpoint"),
    ],
    ids=["missing-part", "vits", "conflicting-class", "bad-json", "corrupt-weights", "other-pipeline"],
)
def test_a_broken_checkpoint_folder_fails_in_one_line(tmp_path, edit, reason):
    folder = _broken(tmp_path, edit)
    with pytest.raises(InputError) as err:
        load_model(folder, device="cpu")
    assert reason in str(err.value) and "\n" not in str(err.value) and folder in str(err.value)


def test_downloads_fetch_configs_and_one_set_of_weights_per_component():
    files = [
        "model_index.json", "README.md", ".gitattributes", "unet/config.json",
        "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "vocoder/config.json", "vocoder/pytorch_model.bin", "tokenizer_2/spiece.model", "tokenizer/merges.txt", "tokenizer/vocab.json",
    ]
    assert download_patterns(files) == [
        "model_index.json", "tokenizer/merges.txt", "tokenizer/vocab.json", "tokenizer_2/spiece.model", "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors", "vocoder/config.json", "vocoder/pytorch_model.bin",
    ]
