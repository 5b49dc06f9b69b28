"""The render stage's seam: what the model is asked to render and what comes back.

Everything here is a plain value. A :class:`RenderWork` holds the model's whole task for one job
(prompts, sampler settings, seeds, and for restyle and inpaint the stem as the model hears it:
mono at the model's rate); a :class:`Rendered` holds the takes the model produced, mono float32
at the model's rate, and nothing else (no chain, no delivery, no files). A backend renders a list
of works, batching what can share a denoising call, reporting progress and honouring cancel
between any two denoising steps. The in-process backend (``host.render.local``) is the default;
another backend (a cluster of model replicas) implements the same :class:`RenderBackend`.
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass, field
from typing import Callable, Hashable, Optional, Protocol, Sequence

import numpy as np

# progress(ref, fraction of that work done, 0..1)
Progress = Callable[[Hashable, float], None]
# cancelled(ref) -> True once that work should stop; checked between denoising steps
IsCancelled = Callable[[Hashable], bool]


@dataclass(frozen=True)
class ModelInfo:
    """What the stages before and after the model need to know about it, without loading it."""

    id: str
    revision: str
    family: str = "audioldm"
    sample_rate: int = 16000
    window_seconds: float = 5.12  # the length the model was trained on
    device: str = "cpu"
    threads: int = 0  # torch CPU threads the model runs with (0: not known); results depend on it


@dataclass(frozen=True)
class BatchSlot:
    """Where a take sat in the denoising call that made it: the call's takes as (prompt, negative
    prompt, seed), in order, and the take's position among them.

    A take rendered in a batch differs (by about 1e-6) from the same seed rendered alone: batched
    matrix products sum in another order. Re-rendering exactly this batch is how recall
    reproduces such a take bit for bit; a take rendered alone has no slot.
    """

    takes: tuple[tuple[str, str, int], ...]
    position: int

    def as_dict(self) -> dict:
        return {"takes": [list(t) for t in self.takes], "position": self.position}

    @classmethod
    def from_dict(cls, data: dict) -> "BatchSlot":
        takes = tuple((str(p), str(n), int(s)) for p, n, s in data["takes"])
        position = int(data["position"])
        if not 0 <= position < len(takes):
            raise ValueError(f"position {position} is outside a batch of {len(takes)}")
        return cls(takes, position)


@dataclass(frozen=True)
class RenderWork:
    """One job's render: one take per seed.

    ``audio`` is the stem (restyle, inpaint, superres) as the model hears it: mono float at the
    model's rate. ``windows`` are the context windows (seconds) the inpaint pipeline diffuses, one
    per gap. ``cutoff`` (superres) is where the stem's own band ends, in Hz, found or given when the
    job was planned; ``loop`` (foley) asks for the seam across the take's wrap point regenerated.
    """

    ref: Hashable  # whose work this is (a job id, an index): progress and cancel are keyed by it
    kind: str  # foley | restyle | inpaint | superres
    prompt: str
    negative_prompt: str
    steps: int
    guidance: float
    scheduler: str
    seeds: tuple[int, ...]
    duration: float = 0.0  # foley: seconds
    strength: float = 0.0  # restyle
    audio: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    gaps: tuple[tuple[float, float], ...] = ()  # inpaint, seconds
    windows: tuple[tuple[float, float], ...] = ()  # inpaint, seconds, one per gap
    cutoff: float = 0.0  # superres, Hz
    loop: bool = False  # foley
    model: Optional[str] = None  # the checkpoint this work asks for (a preset's `model`); None: the backend's own
    rank: bool = False  # score the takes against the prompt in CLAP's space (a job of several takes)

    def batch_group(self) -> Optional[tuple]:
        """Works with the same group can share one denoising call (foley on one model only)."""
        if self.kind != "foley":
            return None
        return ("foley", self.model, round(self.duration, 6), self.steps, round(self.guidance, 6), self.scheduler, self.loop)


@dataclass
class Rendered:
    """What the model made of one work: ``waves[i]`` for ``seeds[i]``, mono float32 at the model's rate."""

    ref: Hashable
    waves: list[np.ndarray] = field(default_factory=list, repr=False)
    seconds: float = 0.0  # model time per take
    status: str = "rendered"  # rendered | cancelled | failed
    error: Optional[str] = None
    # batches[i]: the call waves[i] came from, when it held more than that take (recall needs it);
    # a backend that leaves this empty makes batched takes that recall only to within ~1e-6
    batches: list[Optional[BatchSlot]] = field(default_factory=list, repr=False)
    # scores[i]: how well waves[i] fits its prompt (cosine in CLAP's joint space, -1..1); None when
    # the work asked for no ranking or ranking is off for this model (``ranking_off`` says why)
    scores: Optional[list[float]] = None
    ranking_off: Optional[str] = None

    def batch(self, i: int) -> Optional[BatchSlot]:
        return self.batches[i] if i < len(self.batches) else None

    @property
    def ok(self) -> bool:
        return self.status == "rendered"


# what else, besides the model and its revision, decides a render's samples bit for bit
RECORDED_LIBRARIES = ("torch", "diffusers", "transformers", "pedalboard", "numpy", "scipy", "soxr", "pyloudnorm", "soundfile")


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """The installed versions of the libraries a take's samples depend on, and audiohost's own."""
    import host

    versions = {"audiohost": host.__version__}
    for name in RECORDED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment(info: ModelInfo) -> dict:
    """Where a take was rendered, as its sidecar records it for recall: device, torch threads and
    the library versions."""
    return {"device": info.device, "threads": info.threads, "versions": dict(library_versions())}


class RenderBackend(Protocol):
    """Render prepared works; the only stage that touches a model."""

    info: ModelInfo  # the backend's own model (works that name none render on it)
    batch_size: int
    denoise_calls: int  # batched denoising calls made so far (for batching checks and benchmarks)

    def info_for(self, model: Optional[str]) -> ModelInfo:
        """The ModelInfo a work naming ``model`` renders with (None: ``info``), known before any
        render so the plan stage can key and shape the job; raises InputError when that model
        cannot be had here."""
        ...

    def render(self, works: Sequence[RenderWork], progress: Optional[Progress] = None, cancelled: Optional[IsCancelled] = None) -> list[Rendered]:
        """One Rendered per work, in order. Never raises for one work's failure: that work comes
        back failed (one line in ``error``) and the others still render. A work whose ``cancelled``
        turns true comes back cancelled within one denoising step; its batch-mates go on. Each
        take rendered in a call with others gets its :class:`BatchSlot` in ``batches``."""
        ...


class ReplicaLost(Exception):
    """The replica rendering these works went away mid-render (its process killed, its node lost).

    Nothing it rendered reaches the daemon, so nothing was written: the works' jobs go back to the
    queue and render once elsewhere. Raised by :meth:`RenderBackend.render` of a remote replica
    only; the in-process backend never raises it."""


class ReplicaUnavailable(Exception):
    """A replica that cannot render (its model did not load, it is dead for good): one line, why."""


def info_from_geometry(geometry, device: str, threads: int) -> ModelInfo:
    """A ModelInfo for a checkpoint known from its configs (``host.engine.models.Geometry``), as
    it will render on ``device`` with ``threads`` torch threads."""
    return ModelInfo(
        id=geometry.id, revision=geometry.revision, family=geometry.family, sample_rate=geometry.sample_rate,
        window_seconds=geometry.window_seconds, device=device, threads=threads,
    )
