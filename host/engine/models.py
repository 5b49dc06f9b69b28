"""Loading an AudioLDM or AudioLDM 2 checkpoint once: hub id, local diffusers folder or a tiny one.

Every component is loaded with its own class from its subfolder of the checkpoint (the layout
diffusers saves: ``model_index.json`` plus ``vae/``, ``unet/``, ``text_encoder/``, ...); no
diffusers pipeline object is built. The family is read from the folder's own configs, never
from its name. The loaded :class:`Model` is plain data: the components plus where they came
from (id and revision, recorded in every take's sidecar) and where they run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from host.errors import InputError

DEFAULT_MODEL = "cvssp/audioldm-s-full-v2"
KNOWN_CHECKPOINTS = (
    "cvssp/audioldm", "cvssp/audioldm-s-full-v2", "cvssp/audioldm-m-full", "cvssp/audioldm-l-full",
    "cvssp/audioldm2", "cvssp/audioldm2-large", "cvssp/audioldm2-music",
)
TINY_MODELS = ("tiny", "tiny-audioldm2")
FAMILIES = ("audioldm", "audioldm2")
SCHEDULERS = ("ddim", "dpm")

# What each family is made of: component -> the classes it may be (the first is the default)
_V1_PARTS = {
    "vae": ("AutoencoderKL",),
    "unet": ("UNet2DConditionModel",),
    "text_encoder": ("ClapTextModelWithProjection",),
    "tokenizer": ("tokenizer",),
    "vocoder": ("SpeechT5HifiGan",),
    "scheduler": ("scheduler",),
}
_V2_PARTS = {
    **_V1_PARTS,
    "unet": ("AudioLDM2UNet2DConditionModel",),
    "text_encoder": ("ClapModel",),
    "text_encoder_2": ("T5EncoderModel",),
    "tokenizer_2": ("tokenizer",),
    "projection_model": ("AudioLDM2ProjectionModel",),
    "language_model": ("GPT2Model", "GPT2LMHeadModel"),
    "feature_extractor": ("ClapFeatureExtractor",),
}
PARTS = {"audioldm": _V1_PARTS, "audioldm2": _V2_PARTS}

log = logging.getLogger(__name__)


@dataclass
class Model:
    """A warm AudioLDM or AudioLDM 2: components plus provenance. Load once, render many.

    ``family`` is "audioldm" or "audioldm2". Both have the VAE, UNet, CLAP text encoder and
    tokenizer, HiFi-GAN vocoder and scheduler config; AudioLDM 2 adds a T5 encoder and its
    tokenizer, the projection model, the GPT-2 language model and CLAP's feature extractor
    (its ``text_encoder`` is then a full CLAP, text and audio).
    """

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
    family: str = "audioldm"
    text_encoder_2: Any = None
    tokenizer_2: Any = None
    projection_model: Any = None
    language_model: Any = None
    feature_extractor: Any = None

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
        """The length the model was trained on, in mel frames (5.12 s for AudioLDM, 10.24 s for AudioLDM 2)."""
        return int(self.unet.config.sample_size) * self.vae_scale

    @property
    def window_seconds(self) -> float:
        return self.window_frames * self.hop / self.sample_rate

    @property
    def max_new_tokens(self) -> int:
        """AudioLDM 2: how many conditioning vectors GPT-2 generates (8 in every cvssp checkpoint)."""
        return int(getattr(self.language_model.config, "max_new_tokens", None) or 8) if self.language_model is not None else 0

    @property
    def text_length(self) -> int:
        """AudioLDM 2: the fixed length the T5 stream is padded to, so the UNet sees one shape."""
        if self.tokenizer_2 is None:
            return 0
        return max(1, min(int(self.tokenizer_2.model_max_length), 512))

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

    def modules(self) -> list:
        """The torch modules, in the order a render runs them."""
        parts = (self.text_encoder, self.text_encoder_2, self.projection_model, self.language_model, self.unet, self.vae, self.vocoder)
        return [p for p in parts if p is not None]


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
    """Load a checkpoint component by component; ``tiny`` and ``tiny-audioldm2`` are built and cached first.

    ``threads`` caps torch's CPU threads: on a small machine shared with a DAW, fewer threads
    than cores keeps renders from stalling behind the DAW's audio threads. Half precision on
    CUDA, float32 elsewhere. ``cpu_offload`` (CUDA only) keeps each component on the CPU until
    it runs; ``compile_unet`` wraps the UNet in ``torch.compile`` (see :func:`warm_up`).
    """
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    dev = pick_device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    folder, model_id = _locate(name)
    family = detect_family(folder, where=f"--model {model_id}")
    with quiet():
        parts = {sub: _load_part(folder, sub, family, dtype, model_id) for sub in PARTS[family]}
    scheduler_config = parts.pop("scheduler")
    model = Model(id=model_id, revision=_revision(folder), device=dev, dtype=dtype, family=family, scheduler_config=scheduler_config, **parts)
    for module in model.modules():
        module.eval()
        module.requires_grad_(False)
    if cpu_offload and dev.type == "cuda":
        _offload(model, dev)
    else:
        for module in model.modules():
            module.to(dev)
    if compile_unet:
        _compile_unet(model)
    return model


# --------------------------------------------------------------------------- families


def detect_family(folder: Path, where: str = "--model") -> str:
    """"audioldm" or "audioldm2", from the folder's ``model_index.json`` and its UNet's config.

    The pipeline class named in ``model_index.json`` decides when it is one of the two; a
    folder without it is judged by its components (a language and projection model, or an
    AudioLDM 2 UNet, make it AudioLDM 2). A text-to-speech AudioLDM 2 (VITS) is refused.
    """
    index = _read_json(folder / "model_index.json", where)
    unet = _read_json(folder / "unet" / "config.json", where) if (folder / "unet" / "config.json").is_file() else {}
    named = index.get("_class_name")
    parts = {k for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and len(v) == 2 and v[1]}
    unet_class = unet.get("_class_name")
    if named == "AudioLDM2Pipeline":
        family = "audioldm2"
    elif named == "AudioLDMPipeline":
        family = "audioldm"
    elif {"language_model", "projection_model"} <= parts or unet_class == "AudioLDM2UNet2DConditionModel":
        family = "audioldm2"
    elif {"vae", "unet", "text_encoder", "vocoder"} <= parts and unet_class in (None, "UNet2DConditionModel"):
        family = "audioldm"
    else:
        raise InputError(where, f"not an AudioLDM or AudioLDM 2 checkpoint (model_index.json names {named or 'no pipeline'})")
    expected_unet = PARTS[family]["unet"][0]
    if unet_class and unet_class != expected_unet:
        raise InputError(where, f"model_index.json names {named} but unet/config.json is a {unet_class}")
    encoder_2 = index.get("text_encoder_2")
    if family == "audioldm2" and isinstance(encoder_2, list) and len(encoder_2) == 2 and encoder_2[1] == "VitsModel":
        raise InputError(where, "text-to-speech AudioLDM 2 checkpoints (a VITS text encoder) are not supported")
    missing = [sub for sub in PARTS[family] if not (folder / sub).is_dir()]
    if missing:
        raise InputError(where, f"checkpoint folder lacks {', '.join(missing)}")
    return family


def _read_json(path: Path, where: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(where, f"{path.name} is missing; it is not a diffusers checkpoint folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(where, f"{path.parent.name}/{path.name} is unreadable ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise InputError(where, f"{path.parent.name}/{path.name} is not a JSON object")
    return data


def _load_part(folder: Path, sub: str, family: str, dtype, model_id: str):
    """One component from ``folder/sub`` with its own class."""
    allowed = PARTS[family][sub]
    where = f"--model {model_id}"
    try:
        if sub == "scheduler":
            from diffusers import DDIMScheduler

            return DDIMScheduler.load_config(str(folder / sub))
        if allowed == ("tokenizer",):
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(folder / sub))
        named = _read_json(folder / "model_index.json", where).get(sub)
        cls_name = named[1] if isinstance(named, list) and len(named) == 2 and named[1] in allowed else allowed[0]
        if cls_name == "ClapFeatureExtractor":
            from transformers import ClapFeatureExtractor

            return ClapFeatureExtractor.from_pretrained(str(folder / sub))
        if cls_name in ("AutoencoderKL", "UNet2DConditionModel", "AudioLDM2UNet2DConditionModel", "AudioLDM2ProjectionModel"):
            import diffusers

            return getattr(diffusers, cls_name).from_pretrained(str(folder), subfolder=sub, torch_dtype=dtype)
        import transformers

        return getattr(transformers, cls_name).from_pretrained(str(folder / sub), **{_dtype_argument(): dtype})
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - a broken component is the user's file, told in one line
        raise InputError(where, f"{sub} could not be loaded ({type(err).__name__}: {_first_line(err)})") from None


def _dtype_argument() -> str:
    """transformers renamed ``torch_dtype`` to ``dtype`` in 4.56."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 160 else line[:157] + "..."


@contextmanager
def quiet():
    """Deprecation notices and progress bars from diffusers and transformers are not the user's business."""
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    dlogging.disable_progress_bar()
    tlogging.disable_progress_bar()
    previous, previous_t = dlogging.get_verbosity(), tlogging.get_verbosity()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dlogging.set_verbosity_error()
        tlogging.set_verbosity_error()
        try:
            yield
        finally:
            dlogging.set_verbosity(previous)
            tlogging.set_verbosity(previous_t)


# --------------------------------------------------------------------------- speed (opt-in)


def _offload(model: Model, device) -> None:
    """Model CPU offload: each component waits on the CPU and moves to the GPU when it runs,
    handing the GPU on to the next. The CLAP towers are hooked separately because the engine
    calls them directly (text for prompts, audio for ranking)."""
    from accelerate import cpu_offload_with_hook

    clap = model.text_encoder
    towers = [getattr(clap, n) for n in ("text_model", "text_projection") if hasattr(clap, n)] or [clap]
    sequence = towers + [m for m in (model.text_encoder_2, model.projection_model, model.language_model, model.unet, model.vae, model.vocoder) if m is not None]
    sequence += [getattr(clap, n) for n in ("audio_model", "audio_projection") if hasattr(clap, n)]
    hook = None
    for module in sequence:
        _, hook = cpu_offload_with_hook(module, device, prev_module_hook=hook)


def _compile_unet(model: Model) -> None:
    """torch.compile of the UNet (the guide's setting). Each new (frames, batch) shape compiles
    once; the limit on recompiles is raised so a daemon serving many shapes keeps them all."""
    import torch

    config = torch._dynamo.config
    for knob in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, knob):
            setattr(config, knob, max(64, int(getattr(config, knob))))
    model.unet = torch.compile(model.unet, mode="reduce-overhead", fullgraph=True)


# --------------------------------------------------------------------------- where a model comes from


def _locate(name: str, download: bool = True) -> tuple[Optional[Path], str]:
    """(the checkpoint folder, the id to record). A hub id is looked up in the local cache
    first, so an offline machine never waits on the network, and so its snapshot (revision)
    is known; only when that fails, and the hub may be used, is it downloaded (without
    ``download`` the folder is then None)."""
    if name in TINY_MODELS:
        from host.engine.tiny import tiny_path

        return tiny_path(name), name
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise InputError(f"--model {name}", "folder has no model_index.json; it is not a diffusers checkpoint folder")
        return path.resolve(), str(path.resolve())
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1) or not name.strip():
        raise InputError(f"--model {name}", "no such folder")
    cached = cached_snapshot(name)
    if cached is not None or not download:
        return cached, name
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise InputError(f"--model {name}", _fetch_hint(name, "is not in the local Hugging Face cache and HF_HUB_OFFLINE=1"))
    try:
        return _download(name), name
    except Exception as err:  # noqa: BLE001
        raise InputError(f"--model {name}", _fetch_hint(name, f"is neither cached nor reachable ({type(err).__name__})")) from None


def cached_snapshot(repo_id: str, marker: str = "model_index.json") -> Optional[Path]:
    """The local Hugging Face cache's snapshot of ``repo_id`` if it holds ``marker``; never the network."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as err:  # noqa: BLE001 - any failure here means "not usable from the cache"
        log.debug("not in the local cache: %s", err)
        return None
    return folder if (folder / marker).is_file() else None


def _download(repo_id: str) -> Path:
    from huggingface_hub import HfApi, snapshot_download

    files = HfApi().list_repo_files(repo_id)
    return Path(snapshot_download(repo_id, allow_patterns=download_patterns(files)))


def download_patterns(files: Iterable[str]) -> list[str]:
    """Which files of a hub checkpoint to fetch: every config and tokenizer file, and per
    component one set of weights (safetensors over pickled .bin, full precision over fp16
    variants), as ``from_pretrained`` would pick them."""
    files = list(files)
    keep = [f for f in files if f.endswith((".json", ".txt", ".model")) and not f.startswith(".")]
    weights: dict[str, list[str]] = {}
    for f in files:
        if f.endswith((".safetensors", ".bin")):
            weights.setdefault(f.rsplit("/", 1)[0] if "/" in f else "", []).append(f)
    for group in weights.values():
        full = [f for f in group if ".fp16." not in f] or group
        safe = [f for f in full if f.endswith(".safetensors")]
        keep += safe or full
    return sorted(set(keep))


def _fetch_hint(model_id: str, what: str) -> str:
    return (
        f"checkpoint {what}; on a connected machine run `huggingface-cli download {model_id}` "
        "(or copy its folder here and pass the path), or use --model tiny (or tiny-audioldm2) for an offline test run"
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


def describe(name: str = DEFAULT_MODEL) -> tuple[str, str, str]:
    """(id, revision, family) of a model as ``load_model`` would record it, without loading
    weights. For a hub id that is not cached the revision and family are "unknown"."""
    folder, model_id = _locate(name, download=False)
    if folder is None:
        return model_id, "unknown", "unknown"
    try:
        family = detect_family(folder, where=f"--model {model_id}")
    except InputError:
        family = "unknown"
    return model_id, _revision(folder), family


@dataclass(frozen=True)
class Geometry:
    """What the host needs to know of a checkpoint to plan work for it, read from its configs
    alone (no weights load): provenance, family, rate and the window it was trained on."""

    id: str
    revision: str
    family: str
    sample_rate: int
    window_seconds: float


def geometry(name: str) -> Geometry:
    """A checkpoint's :class:`Geometry` from its folder's configs. Raises InputError when the
    checkpoint is not here (one line saying how to fetch it) or its configs do not read."""
    folder, model_id = _locate(name)
    where = f"--model {model_id}"
    family = detect_family(folder, where=where)
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        vocoder = json.loads((folder / "vocoder" / "config.json").read_text())
        rate = int(vocoder["sampling_rate"])
        hop = 1
        for r in vocoder["upsample_rates"]:
            hop *= int(r)
        vae_scale = 2 ** (len(vae["block_out_channels"]) - 1)
        window = int(unet["sample_size"]) * vae_scale * hop / rate
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(where, f"its configs cannot be read ({type(err).__name__}); is the folder whole?") from None
    return Geometry(model_id, _revision(folder), family, rate, window)


def fingerprint(name: str = DEFAULT_MODEL) -> tuple[str, str]:
    """(id, revision) of a model as ``load_model`` would record it, without loading weights.
    For a hub id that is not cached the revision is "unknown"."""
    model_id, revision, _ = describe(name)
    return model_id, revision
