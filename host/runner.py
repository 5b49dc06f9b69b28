"""Jobs to takes on disk, through the three stages: plan, render, finish.

Each stage lives in its own module and hands plain values to the next:

- plan (``host.plan.takes``): which takes exist, what to render; the stem read and hashed once;
- render (``host.render``): the model only, behind a backend (in-process by default);
- finish (``host.finish.take`` for the signal, ``host.output`` for files and sidecars).

``Runner`` only sequences them: ``audiohost render`` calls :meth:`Runner.run`, the daemon's worker
calls the three steps itself so that finishing one batch overlaps rendering the next. Every job
ends in an :class:`Outcome`; a bad job never stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Optional, Sequence

from host.errors import InputError
from host.finish.chain import build_chain
from host.finish.take import Finished, deliver, fill_gaps
from host.intake.audio import MAX_STEM_BYTES, MAX_STEM_SECONDS
from host.jobs.job import Job
from host.output.files import write_audio_new
from host.output.sidecar import take_record
from host.output.takes import TakeIndex, take_folder
from host.plan.takes import Limits, TakePlan, plan_takes, render_work
from host.render.backend import ModelInfo, Rendered, RenderBackend

log = logging.getLogger(__name__)

# (job, fraction of that job done, 0..1)
OnProgress = Callable[[Job, float], None]


@dataclass
class Outcome:
    job: Job
    status: str  # rendered | cached | failed | cancelled | changed (the stem changed while it rendered)
    files: list[Path] = field(default_factory=list)
    error: Optional[str] = None
    seconds: float = 0.0
    # wall seconds per stage: "plan" (this job), "render" (its batch's model call, shared with
    # batch-mates), "finish" (this job's chain, delivery, files and sidecars)
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("rendered", "cached")


class InputChanged(Exception):
    """The stem changed after it was read: nothing rendered from the old content is published."""


class Runner:
    def __init__(
        self,
        model=None,
        batch_size: int = 8,
        max_stem_seconds: float = MAX_STEM_SECONDS,
        max_stem_bytes: int = MAX_STEM_BYTES,
        backend: Optional[RenderBackend] = None,
        index: Optional[TakeIndex] = None,
    ):
        if backend is None:
            from host.render.local import LocalBackend

            backend = LocalBackend(model, batch_size)
        self.backend = backend
        self.limits = Limits(max_stem_seconds, max_stem_bytes)
        self.index = index or TakeIndex()

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    @property
    def batch_size(self) -> int:
        return self.backend.batch_size

    @property
    def denoise_calls(self) -> int:
        return self.backend.denoise_calls

    # ------------------------------------------------------------------ the three stages
    def plan(self, job: Job, force: bool = False) -> TakePlan:
        """Stage 1. Raises InputError when the job cannot be rendered."""
        return plan_takes(job, self.info, self.index, force, self.limits)

    def render(self, plans: Sequence[tuple[Hashable, TakePlan]], progress=None, cancelled=None) -> list[Rendered]:
        """Stage 2: the model renders every plan's missing takes (batched where it can)."""
        works = [render_work(plan, ref, self.info) for ref, plan in plans]
        return self.backend.render(works, progress, cancelled)

    def finish(self, plan: TakePlan, rendered: Rendered, started: Optional[float] = None, stages: Optional[dict] = None) -> Outcome:
        """Stage 3: chain, delivery, write and sidecar for every rendered take of one plan.
        ``stages``: the times of the earlier stages, kept on the outcome with this one's."""
        t0 = time.monotonic()
        outcome = self._finish(plan, rendered, started)
        outcome.stages = {**(stages or {}), "finish": time.monotonic() - t0}
        return outcome

    def _finish(self, plan: TakePlan, rendered: Rendered, started: Optional[float]) -> Outcome:
        job = plan.job
        started = time.monotonic() if started is None else started
        if rendered.status == "cancelled":
            return Outcome(job, "cancelled", seconds=time.monotonic() - started)
        if rendered.status == "failed":
            return Outcome(job, "failed", error=rendered.error or f"{job.name}: failed", seconds=time.monotonic() - started)
        try:
            self._finish_takes(plan, rendered)
        except InputChanged:
            return Outcome(job, "changed", error=f"{job.input}: changed while it rendered; nothing from the old content was delivered", seconds=time.monotonic() - started)
        except InputError as err:
            return Outcome(job, "failed", self.files(plan), error=str(err), seconds=time.monotonic() - started)
        except Exception as err:  # noqa: BLE001 - one job's crash must not take the others down
            log.exception("finishing %s failed", job.name)
            return Outcome(job, "failed", self.files(plan), error=f"{job.name}: internal error: {type(err).__name__}: {err}", seconds=time.monotonic() - started)
        return Outcome(job, "rendered", self.files(plan), seconds=time.monotonic() - started)

    def files(self, plan: TakePlan) -> list[Path]:
        takes = self.index.takes(plan.folder, plan.job.name, plan.key)
        return [takes[i].audio for i in sorted(takes) if takes[i].complete and i < plan.job.preset.takes]

    # ------------------------------------------------------------------ all three, for a list of jobs
    def run(self, jobs: Sequence[Job], on_progress: Optional[OnProgress] = None, cancel=None, force: bool = False) -> list[Outcome]:
        """Render every job (compatible foley jobs batched); finishing a batch overlaps rendering the
        next. Outcomes come back in job order."""
        outcomes: dict[int, Outcome] = {}
        futures: dict[int, Future] = {}

        def progress(ref, fraction):
            if on_progress is not None:
                on_progress(jobs[ref], fraction)

        def cancelled(_ref) -> bool:
            return cancel is not None and cancel.is_set()

        with Finisher() as finisher:
            for batch in batches(jobs, self.batch_size):
                started = time.monotonic()
                plans: list[tuple[int, TakePlan]] = []
                planned: dict[int, float] = {}
                for i in batch:
                    t0 = time.monotonic()
                    try:
                        plan = self.plan(jobs[i], force)
                    except InputError as err:
                        outcomes[i] = Outcome(jobs[i], "failed", error=str(err), seconds=time.monotonic() - started)
                        continue
                    planned[i] = time.monotonic() - t0
                    if plan.todo:
                        plans.append((i, plan))
                    else:
                        outcomes[i] = Outcome(jobs[i], "cached", self.files(plan), seconds=time.monotonic() - started)
                if not plans:
                    continue
                t0 = time.monotonic()
                rendered = self.render(plans, progress, cancelled)
                render_s = time.monotonic() - t0
                for (i, plan), result in zip(plans, rendered):
                    futures[i] = finisher.submit(self.finish, plan, result, started, {"plan": planned[i], "render": render_s})
        for i, future in futures.items():
            outcomes[i] = future.result()
        return [outcomes[i] for i in range(len(jobs))]

    # ------------------------------------------------------------------ finishing and writing
    def _finish_takes(self, plan: TakePlan, rendered: Rendered) -> None:
        job = plan.job
        board = build_chain(list(job.preset.chain), where=f"preset {job.preset_name}", base_dir=Path(job.project))
        info = self.info
        for index, wave in zip(plan.todo, rendered.waves):
            if job.kind == "inpaint":
                done = fill_gaps(plan.stem, wave, info.sample_rate, plan.gaps, plan.windows, board, job.delivery.true_peak)
            else:
                length = None
                if job.kind == "restyle":
                    length = int(round(plan.stem.audio.shape[1] * job.delivery.sample_rate / plan.stem.rate))
                done = deliver(wave, info.sample_rate, job.delivery, board, length)
                if job.kind == "restyle":
                    done.extra["strength"] = job.preset.strength
                else:
                    done.extra["duration"] = job.preset.duration
            self._publish(plan, index, done, rendered.seconds)

    def _publish(self, plan: TakePlan, index: int, done: Finished, seconds: float) -> None:
        """Claim the take (its sidecar) and write its audio: whole or not at all."""
        if plan.source is not None and not plan.source.unchanged():
            raise InputChanged(plan.job.input)
        job, info = plan.job, self.info
        record = take_record(
            job, seed=plan.seeds[index], model_id=info.id, model_revision=info.revision, model_family=info.family,
            input_sha256=plan.input_sha256, delivery=done.delivery, levels=done.levels, duration=done.seconds,
            render_seconds=seconds, extra=done.extra,
        )
        try:
            take = self.index.claim(plan.folder, job.name, plan.key, index, done.format, record, unfinished=plan.unfinished.get(index))
        except PermissionError as err:
            raise InputError(str(plan.folder), f"cannot write takes there: {err.strerror or 'permission denied'}") from None
        try:
            write_audio_new(take.audio, done.audio, done.rate, done.bit_depth, done.format, done.subtype)
        except BaseException as err:
            self.index.release(plan.folder, job.name, plan.key, take)
            if isinstance(err, OSError) and not isinstance(err, FileExistsError):
                raise InputError(str(plan.folder), f"cannot write takes there: {err.strerror or type(err).__name__}") from None
            raise
        self.index.published(plan.folder, job.name)


class Finisher:
    """Finishing on a CPU thread beside the model, bounded: at most ``pending`` jobs wait to be
    finished (submitting more blocks the renderer), so a fast model never piles up rendered
    audio in memory."""

    def __init__(self, pending: int = 16):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audiohost-finish")
        self._room = threading.BoundedSemaphore(pending)

    def submit(self, fn, *args) -> Future:
        self._room.acquire()
        future = self._pool.submit(fn, *args)
        future.add_done_callback(lambda _f: self._room.release())
        return future

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)

    def __enter__(self) -> "Finisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def batches(jobs: Sequence[Job], batch_size: int) -> list[list[int]]:
    """Job indices in render order: foley jobs of one batch group together, up to ``batch_size``
    takes a batch; restyle and inpaint one job a batch."""
    out: list[list[int]] = []
    open_groups: dict[tuple, list[int]] = {}
    takes: dict[tuple, int] = {}
    for i, job in enumerate(jobs):
        group = job.batch_group()
        if group is None:
            out.append([i])
            continue
        if group in open_groups and takes[group] + job.preset.takes <= batch_size:
            open_groups[group].append(i)
            takes[group] += job.preset.takes
            continue
        open_groups[group] = [i]
        takes[group] = job.preset.takes
        out.append(open_groups[group])
    return out


def cached_takes(job: Job, model_id: str, model_revision: str, index: Optional[TakeIndex] = None) -> int:
    """How many of the job's takes are already on disk for this exact model and input."""
    from host.output.files import file_sha256

    input_hash = job.input_sha256
    if job.input and input_hash is None:
        if not Path(job.input).is_file():
            raise InputError(job.input, "file not found")
        input_hash = file_sha256(Path(job.input))
    key = job.key(model_id, model_revision, input_hash)
    folder = take_folder(Path(job.project), job.kind, job.name)
    found = index.takes(folder, job.name, key) if index is not None else _scan_takes(folder, job.name, key)
    return sum(1 for i, t in found.items() if t.complete and i < job.preset.takes)


def _scan_takes(folder: Path, name: str, key: str):
    from host.output.takes import takes_for_key

    return takes_for_key(folder, name, key)
