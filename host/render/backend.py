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

    def batch_group(self) -> Optional[tuple]:
        """Works with the same group can share one denoising call (foley only)."""
        if self.kind != "foley":
            return None
        return ("foley", round(self.duration, 6), self.steps, round(self.guidance, 6), self.scheduler, self.loop)


@dataclass
class Rendered:
    """What the model made of one work: ``waves[i]`` for ``seeds[i]``, mono float32 at the model's rate."""

    ref: Hashable
    waves: list[np.ndarray] = field(default_factory=list, repr=False)
    seconds: float = 0.0  # model time per take
    status: str = "rendered"  # rendered | cancelled | failed
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.status == "rendered"


class RenderBackend(Protocol):
    """Render prepared works; the only stage that touches a model."""

    info: ModelInfo
    batch_size: int
    denoise_calls: int  # batched denoising calls made so far (for batching checks and benchmarks)

    def render(self, works: Sequence[RenderWork], progress: Optional[Progress] = None, cancelled: Optional[IsCancelled] = None) -> list[Rendered]:
        """One Rendered per work, in order. Never raises for one work's failure: that work comes
        back failed (one line in ``error``) and the others still render. A work whose ``cancelled``
        turns true comes back cancelled within one denoising step; its batch-mates go on."""
        ...
