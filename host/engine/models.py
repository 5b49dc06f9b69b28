"""Loading an AudioLDM checkpoint once: hub id, local diffusers folder or the built-in ``tiny``.

The loaded :class:`Model` is plain data: the six diffusers/transformers components plus where
they came from (id and revision, recorded in every take's sidecar) and where they run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from host.errors import InputError

DEFAULT_MODEL = "cvssp/audioldm-s-full-v2"
KNOWN_CHECKPOINTS = ("cvssp/audioldm", "cvssp/audioldm-s-full-v2", "cvssp/audioldm-m-full", "cvssp/audioldm-l-full")
SCHEDULERS = ("ddim", "dpm")

log = logging.getLogger(__name__)


@dataclass
class Model:
    """A warm AudioLDM: components plus provenance. Load once, render many."""

    id: str
    revision: str
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    vae: Any
    text_encoder: Any
    tokenizer: Any
    unet: Any
    vocoder: Any
    scheduler_config: Any

    @property
    def sample_rate(self) -> int:
        return int(self.vocoder.config.sampling_rate)

    @property
    def hop(self) -> int:
        """Audio samples per mel frame (product of the vocoder's upsampling rates)."""
        rate = 1
        for r in self.vocoder.config.upsample_rates:
            rate *= int(r)
        return rate

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def frame_multiple(self) -> int:
        """Mel frames must come in multiples of this for the VAE and UNet to round-trip."""
        return self.vae_scale * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def window_frames(self) -> int:
        """The length the model was trained on, in mel frames (5.12 s for AudioLDM)."""
        return int(self.unet.config.sample_size) * self.vae_scale

    @property
    def window_seconds(self) -> float:
        return self.window_frames * self.hop / self.sample_rate

    def frames_for(self, seconds: float) -> int:
        """Mel frames covering ``seconds``, rounded up to what the model can denoise."""
        frames = int(round(seconds * self.sample_rate / self.hop))
        m = self.frame_multiple
        return max(m, -(-frames // m) * m)

    def new_scheduler(self, name: str):
        """A fresh scheduler per render: multistep solvers keep state between steps."""
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

        if name == "ddim":
            return DDIMScheduler.from_config(self.scheduler_config)
        if name == "dpm":
            return DPMSolverMultistepScheduler.from_config(self.scheduler_config)
        raise InputError("scheduler", f"unknown scheduler '{name}' (choose {', '.join(SCHEDULERS)})")


def pick_device(requested: Optional[str] = None):
    """CUDA, then Apple MPS, then CPU, unless the user names one."""
    import torch

    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as err:
            raise InputError("--device", f"unknown device '{requested}' ({err})") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError("--device", "CUDA was requested but no CUDA device is available")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise InputError("--device", "MPS was requested but is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_model(
    name: str = DEFAULT_MODEL,
    device: Optional[str] = None,
    compile_unet: bool = False,
    cpu_offload: bool = False,
    threads: Optional[int] = None,
) -> Model:
    """Load a checkpoint through diffusers' ``from_pretrained``; ``tiny`` is built and cached first.

    ``threads`` caps torch's CPU threads: on a small machine shared with a DAW, fewer threads
    than cores keeps renders from stalling behind the DAW's audio threads.
    """
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    from diffusers import AudioLDMPipeline
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    dev = pick_device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    source, model_id = _resolve(name)
    dlogging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = dlogging.get_verbosity()
        previous_t = tlogging.get_verbosity()
        # deprecation notices from diffusers and transformers are not the user's business
        dlogging.set_verbosity_error()
        tlogging.set_verbosity_error()
        try:
            pipe, folder = _from_pretrained(AudioLDMPipeline, source, model_id, dtype)
        finally:
            dlogging.set_verbosity(previous)
            tlogging.set_verbosity(previous_t)
    if cpu_offload and dev.type == "cuda":
        pipe.enable_model_cpu_offload()
    else:
        pipe.to(dev)
    if compile_unet:
        pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)
    for module in (pipe.vae, pipe.text_encoder, pipe.unet, pipe.vocoder):
        module.eval()
        module.requires_grad_(False)
    return Model(
        id=model_id,
        revision=_revision(folder),
        device=dev,
        dtype=dtype,
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        vocoder=pipe.vocoder,
        scheduler_config=pipe.scheduler.config,
    )


def _resolve(name: str) -> tuple[str, str]:
    """(what to hand to from_pretrained, the id to record)."""
    if name == "tiny":
        from host.engine.tiny import tiny_path

        return str(tiny_path()), "tiny"
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise InputError(f"--model {name}", "folder has no model_index.json; it is not a diffusers pipeline folder")
        return str(path.resolve()), str(path.resolve())
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise InputError(f"--model {name}", "no such folder")
    return name, name


def _from_pretrained(cls, source: str, model_id: str, dtype):
    """(pipeline, the folder it was loaded from). A hub id is looked up in the local cache
    first, so an offline machine never waits on the network, and so its snapshot (revision)
    is known."""
    if Path(source).exists():
        return cls.from_pretrained(source, torch_dtype=dtype), Path(source)
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(source, local_files_only=True))
        return cls.from_pretrained(str(folder), torch_dtype=dtype), folder
    except Exception as cached_err:  # noqa: BLE001 - any failure here means "not usable from the cache"
        log.debug("not in the local cache: %s", cached_err)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise InputError(f"--model {model_id}", _fetch_hint(model_id, "is not in the local Hugging Face cache and HF_HUB_OFFLINE=1"))
    try:
        pipe = cls.from_pretrained(source, torch_dtype=dtype)
        return pipe, Path(snapshot_download(source, local_files_only=True))
    except Exception as err:  # noqa: BLE001
        raise InputError(
            f"--model {model_id}", _fetch_hint(model_id, f"is neither cached nor reachable ({type(err).__name__})")
        ) from None


def _fetch_hint(model_id: str, what: str) -> str:
    return (
        f"checkpoint {what}; on a connected machine run `huggingface-cli download {model_id}` "
        "(or copy its folder here and pass the path), or use --model tiny for an offline test run"
    )


def _revision(folder: Optional[Path]) -> str:
    """The hub commit for a cached snapshot, else a fingerprint of the folder's configs and weights."""
    if folder is None:
        return "unknown"
    if folder.parent.name == "snapshots":
        return folder.name
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            rel = file.relative_to(folder).as_posix()
            digest.update(rel.encode())
            if file.suffix == ".json" or file.suffix == ".txt":
                digest.update(file.read_bytes())
            else:
                digest.update(str(file.stat().st_size).encode())
    return "sha256:" + digest.hexdigest()[:16]


def fingerprint(name: str = DEFAULT_MODEL) -> tuple[str, str]:
    """(id, revision) of a model as ``load_model`` would record it, without loading weights.
    For a hub id that is not cached the revision is "unknown"."""
    source, model_id = _resolve(name)
    if Path(source).exists():
        return model_id, _revision(Path(source))
    try:
        from huggingface_hub import snapshot_download

        return model_id, _revision(Path(snapshot_download(source, local_files_only=True)))
    except Exception:  # noqa: BLE001 - not cached: nothing to compare against
        return model_id, "unknown"
