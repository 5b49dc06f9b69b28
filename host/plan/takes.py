"""The plan stage: for one job, which takes already exist and what the model must render.

``plan_takes`` reads the job's stem once (its content hashed from the same read, and what the
file carries besides audio: BWF chunks, its TimeReference), works out the job key, the takes
already on disk for it, the take indices still to render and their seeds (a rejected take's
index is used up: a new index, with a fresh seed, replaces it), the takes' file name, for
inpainting the gaps and the context windows around them, and for super-resolution the cutoff
(given, or found from the stem's spectrum). ``plan_recall`` plans one take again from what its
sidecar recorded. ``render_work`` turns a plan into the render stage's
:class:`~host.render.backend.RenderWork`. Nothing here touches a model.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Optional, Sequence

import numpy as np

from host import mel
from host.engine import bands
from host.engine import gaps as gapmath
from host.errors import InputError
from host.intake.audio import MAX_STEM_BYTES, MAX_STEM_SECONDS, StemAudio, cut_region, read_stem_confined
from host.jobs.job import Job
from host.output.metadata import Carried, read_carried
from host.output.takes import Take, TakeIndex, read_sidecar, take_base, take_folder, wanted_indices
from host.render.backend import ModelInfo, RenderWork

log = logging.getLogger(__name__)

# inpaint context: at least this much of the stem on each side of a gap
MIN_CONTEXT_SECONDS = 0.5
# superres keeps the stem's channels, and loudness is measured for up to 5 (L, R, C, Ls, Rs)
MAX_SUPERRES_CHANNELS = 5


@dataclass(frozen=True)
class Limits:
    max_stem_seconds: float = MAX_STEM_SECONDS
    max_stem_bytes: int = MAX_STEM_BYTES
    roots: Optional[Callable[[], Sequence[Path]]] = None  # where stems may be read from, now; None: the job's project


@dataclass(frozen=True)
class InputSnapshot:
    """The stem as it was read for this plan: content hash and the file's identity then, so a
    change while the job renders is noticed before anything is published."""

    path: str
    sha256: str
    signature: tuple  # (device, inode, size, mtime_ns)

    def unchanged(self) -> bool:
        return _file_signature(self.path) == self.signature


@dataclass
class TakePlan:
    job: Job
    key: str
    folder: Path
    done: dict[int, Take]  # take index -> take already on disk
    todo: list[int]  # take indices still to render
    seeds: dict[int, int]  # take index -> seed
    unfinished: dict[int, Take] = field(default_factory=dict)  # claimed before a crash, audio missing
    stem: Optional[StemAudio] = None  # the input (its region only, for a region restyle), exact samples
    source: Optional[InputSnapshot] = None
    gaps: tuple[gapmath.Gap, ...] = ()  # inpaint: checked, in order
    windows: tuple[tuple[float, float], ...] = ()  # inpaint: the context window (s) the model sees per gap
    base: str = ""  # the takes' file name before _tNN (host.output.takes.take_base)
    naming_note: Optional[str] = None  # why the project's UCS naming could not be used, if it could not
    wanted: tuple[int, ...] = ()  # the take indices the job keeps (rejected ones skipped)
    carried: Optional[Carried] = None  # what the input holds besides audio (its chunks, TimeReference)
    cutoff: Optional[float] = None  # superres: where the stem's own band ends (Hz) ...
    cutoff_found: bool = False  # ... found from its spectrum (True) or given (False)
    info: Optional[ModelInfo] = None  # the model the job renders on (a preset may name its own)
    _stem_length: tuple[int, int] = (0, 1)  # (frames, rate) once the stem is let go of (restyle)
    keep: Optional[int] = None  # deliver only this many of the takes rendered now: the best by CLAP score

    @property
    def stem_length(self) -> tuple[int, int]:
        """(frames, rate) of the stem (its region); known after the stem itself is let go."""
        if self.stem is not None:
            return self.stem.audio.shape[1], self.stem.rate
        return self._stem_length

    def let_go_of_stem(self) -> None:
        """After the model has its copy: a restyle is finished from the rendered take alone (only
        the stem's length is needed), so its samples need not stay in memory while it renders."""
        if self.stem is not None and self.job.kind == "restyle":
            self._stem_length = self.stem_length
            self.stem = None

    @property
    def input_sha256(self) -> Optional[str]:
        return self.source.sha256 if self.source else None


def plan_takes(job: Job, info: ModelInfo, index: TakeIndex, force: bool = False, limits: Limits = Limits()) -> TakePlan:
    """What exists and what to render for ``job`` on the model ``info`` describes. Raises InputError."""
    stem, source, carried = job_input(job, limits)
    key = job.key(info.id, info.revision, source.sha256 if source else None)
    folder = take_folder(Path(job.project), job.kind, job.name)
    found = index.lookup(folder, key)
    existing = {} if force else found.claimed
    wanted = wanted_indices(job.preset.takes, found.rejected)
    done = {i: existing[i] for i in wanted if i in existing and existing[i].complete}
    todo = [i for i in wanted if i not in done]
    keep = None
    if job.preset.keep is not None:  # `takes` candidates, `keep` delivered: the best of what renders now
        keep = max(0, job.preset.keep - len(done))
        if keep == 0:
            todo = []
    first = job.preset.seed if job.preset.seed is not None else random.randrange(2**31)
    seeds = {i: first + i for i in todo}
    unfinished = {i: existing[i] for i in todo if i in existing}
    for i, take in unfinished.items():  # a take claimed before a crash keeps the seed its sidecar recorded
        recorded = (read_sidecar(take.sidecar) or {}).get("seed")
        if isinstance(recorded, int):
            seeds[i] = recorded
    base, note = take_base(job)
    plan = TakePlan(job, key, folder, done, todo, seeds, unfinished, stem, source, base=base, naming_note=note, wanted=tuple(wanted), carried=carried)
    plan.info, plan.keep = info, keep
    if job.kind == "inpaint" and todo:
        plan.gaps, plan.windows = inpaint_gaps(job, stem, info)
    if job.kind == "superres" and todo:
        plan.cutoff, plan.cutoff_found = superres_cutoff(job, stem)
    return plan


def plan_recall(job: Job, info: ModelInfo, index: int, seed: int, limits: Limits = Limits()) -> TakePlan:
    """The plan of one take rendered before (take ``index`` with ``seed``), made again from the
    job its sidecar recorded: the input read now, the region and the gaps as then. Nothing on
    disk is consulted about existing takes. Raises InputError."""
    stem, source, carried = job_input(job, limits)
    key = job.key(info.id, info.revision, source.sha256 if source else None)
    base, note = take_base(job)
    folder = take_folder(Path(job.project), job.kind, job.name)
    plan = TakePlan(job, key, folder, {}, [index], {index: int(seed)}, {}, stem, source, base=base, naming_note=note, wanted=(index,), carried=carried)
    plan.info = info
    if job.kind == "inpaint":
        plan.gaps, plan.windows = inpaint_gaps(job, stem, info)
    return plan


def job_input(job: Job, limits: Limits) -> tuple[Optional[StemAudio], Optional[InputSnapshot], Optional[Carried]]:
    """A restyle or inpaint job's stem (its region only, for a region restyle), the snapshot of
    the file it came from and what that file carries besides audio (its chunks, from the same
    bytes as its samples); (None, None, None) for foley."""
    if job.kind == "foley":
        return None, None, None
    if not job.input:
        raise InputError(job.name, f"a {job.kind} job needs an input stem")
    roots = limits.roots() if limits.roots is not None else (Path(job.project),)
    stem, source, data = read_input(job.input, roots, limits)
    try:
        carried = read_carried(job.input, data)
    except InputError as err:  # libsndfile reads the audio but the chunks are beyond repair
        log.warning("%s: its metadata chunks cannot be read (%s); the takes will not carry them", job.input, err.reason)
        carried = Carried()
    if job.region is not None:
        stem = cut_region(stem, job.region, f"{job.input} region")
    return stem, source, carried


def render_work(plan: TakePlan, ref: Hashable, info: ModelInfo) -> RenderWork:
    """The model's part of a plan: the takes still to render, and the stem as the model hears it."""
    p = plan.job.preset
    audio = None
    if plan.stem is not None:
        audio = mel.to_model_rate(plan.stem.audio.mean(axis=0), plan.stem.rate).astype(np.float32)
        if info.sample_rate != mel.SAMPLE_RATE:  # pragma: no cover - every AudioLDM runs at 16 kHz
            raise InputError(plan.job.name, f"model rate {info.sample_rate} Hz is not AudioLDM's 16 kHz")
    return RenderWork(
        ref=ref,
        kind=plan.job.kind,
        prompt=p.prompt,
        negative_prompt=p.negative_prompt,
        steps=p.steps,
        guidance=p.guidance,
        scheduler=p.scheduler,
        seeds=tuple(plan.seeds[i] for i in plan.todo),
        duration=p.duration,
        strength=p.strength,
        audio=audio,
        gaps=tuple((g.start, g.end) for g in plan.gaps),
        windows=plan.windows,
        cutoff=plan.cutoff or 0.0,
        loop=p.loop,
        model=p.model,
        rank=p.takes > 1,  # several takes of one job: each scored against the prompt, best first
    )


# ---------------------------------------------------------------------- the input
def read_input(path: str, roots, limits: Limits) -> tuple[StemAudio, InputSnapshot, bytes]:
    """The stem's samples, a snapshot of its content and identity, and its bytes, from one read of
    one open file, confined to ``roots`` at this moment (a symlink swapped in since the request
    is refused)."""
    # taken before the read: if the file is swapped in between, the snapshot no longer matches
    # when the take is published, and the job renders again from what is there then
    signature = _file_signature(path)
    kept: list = []
    stem, digest = read_stem_confined(Path(path), roots, limits.max_stem_seconds, limits.max_stem_bytes, keep=kept)
    if signature is None:
        raise InputError(path, "file not found")
    return stem, InputSnapshot(path, digest, signature), kept[0]


def inpaint_gaps(job: Job, stem: StemAudio, info: ModelInfo) -> tuple[tuple[gapmath.Gap, ...], tuple[tuple[float, float], ...]]:
    """The gaps to fill (given, or runs of digital silence) and the window the model sees for each."""
    if job.gaps is None:
        found = gapmath.find_silent_gaps(stem.audio, stem.rate)
        if not found:
            raise InputError(job.input, "no gaps given and no run of digital silence (>= 100 ms at or below -90 dBFS) found inside the file")
    else:
        found = [gapmath.Gap(a, b) for a, b in job.gaps]
    try:
        checked = gapmath.check_gaps(found, stem.seconds, max_gap_seconds(info))
    except ValueError as err:
        raise InputError(f"{job.input} gaps", str(err)) from None
    windows = tuple(gapmath.context_window(g, stem.seconds, info.window_seconds) for g in checked)
    return tuple(checked), windows


def superres_cutoff(job: Job, stem: StemAudio) -> tuple[float, bool]:
    """(cutoff in Hz, found from the stem): the preset's cutoff checked against the stem's Nyquist
    frequency, or the frequency above which the stem's energy falls away. InputError when there is
    nothing to add (the stem already reaches the model's 8 kHz) or nothing to go by (silence)."""
    channels = stem.audio.shape[0]
    if channels > MAX_SUPERRES_CHANNELS:
        raise InputError(job.input, f"has {channels} channels; super-resolution keeps the stem's channels and delivers at most {MAX_SUPERRES_CHANNELS}")
    given = job.preset.cutoff
    if given is not None:
        problem = bands.nyquist_problem(given, stem.rate)
        if problem:
            raise InputError(f"{job.input} cutoff", problem)
        return float(given), False
    found = bands.find_cutoff(stem.audio, stem.rate)
    if found is None:
        raise InputError(job.input, "is digital silence: there is no band to keep and no cutoff to find (give one with cutoff)")
    if found >= bands.NOTHING_TO_ADD_HZ:
        raise InputError(
            job.input,
            f"has energy up to {found:.0f} Hz, and super-resolution generates only up to {bands.MODEL_TOP_HZ:.0f} Hz (the model's bandwidth): "
            "nothing to add (give a lower cutoff to regenerate the band above it)",
        )
    log.info("%s: cutoff %.0f Hz, found from the stem's spectrum", job.input, found)
    return found, True


def max_gap_seconds(info: ModelInfo) -> float:
    return info.window_seconds - 2 * MIN_CONTEXT_SECONDS


def _file_signature(path: str) -> Optional[tuple]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
