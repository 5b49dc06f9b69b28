"""Shared fixtures: one tiny model per test session, built into a session cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Path:
    """Every test (and every process a test starts) finds the tiny model in one cache folder.
    Nothing here can reach a model hub."""
    cache = Path(os.environ.get("AUDIOHOST_CACHE") or tmp_path_factory.mktemp("model-cache"))
    os.environ["AUDIOHOST_CACHE"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    return cache


@pytest.fixture(scope="session")
def tiny_model(model_cache):
    from host.engine.models import load_model

    return load_model("tiny", device="cpu")


def write_tone(path: Path, seconds: float, rate: int, channels: int = 1, subtype: str = "PCM_16", freq: float = 330.0) -> np.ndarray:
    """A test stem: a tone with a little noise; returns what was written, (frames, channels)."""
    rng = np.random.default_rng(7)
    t = np.arange(int(round(seconds * rate))) / rate
    base = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
    data = np.stack([base * (1 - 0.1 * c) for c in range(channels)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype)
    return data


@pytest.fixture(scope="session")
def ray_cluster(model_cache):
    """One local Ray cluster for the whole session (start-up costs seconds): 4 logical CPUs on
    this machine, token-authenticated with a token of its own (nothing written to ~/.ray), no
    usage stats. Yields its GCS address, which a daemon process can join with --ray-address.
    Stopped, with every process it started, when the session ends."""
    ray = pytest.importorskip("ray")
    import secrets
    import shutil
    import tempfile

    from host.engine.tiny import tiny_path

    tiny_path()  # built once here, not by replicas racing each other
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from ray._raylet import Config

        Config.initialize("")  # Ray read its settings when it was imported: read them again
    except (ImportError, AttributeError):  # a Ray that reads them at init
        pass
    temp = tempfile.mkdtemp(prefix="ahray-", dir="/tmp")  # short: Ray's socket paths live under it
    try:
        ray.init(num_cpus=4, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level="WARNING", _temp_dir=temp)
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(temp, ignore_errors=True)
