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
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Optional, Sequence

from host.errors import InputError
from host.finish.chain import build_chain
from host.finish.take import Finished, finish_take
from host.intake.audio import MAX_STEM_BYTES, MAX_STEM_SECONDS
from host.jobs.job import Job
from host.output.metadata import take_time_reference
from host.output.sidecar import take_record, write_take
from host.output.takes import TakeIndex, kept_takes, take_folder, takes_for_key
from host.plan.takes import Limits, TakePlan, plan_takes, render_work
from host.render.backend import BatchSlot, ModelInfo, Rendered, RenderBackend, environment

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
        roots=None,
        loader=None,
    ):
        """``roots``: where a job's stem may be read from, checked again when it is read: a list of
        folders, or a function giving them now (a daemon serves more projects over time); default:
        the job's own project. ``loader``: loads another checkpoint by name, for a preset that names
        its own model (without one, such a job fails in one line)."""
        if backend is None:
            from host.render.local import LocalBackend

            backend = LocalBackend(model, batch_size, loader=loader)
        self.backend = backend
        if roots is not None and not callable(roots):
            fixed = tuple(Path(r) for r in roots)
            roots = lambda: fixed  # noqa: E731
        self.limits = Limits(max_stem_seconds, max_stem_bytes, roots)
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
    def info_for(self, job: Job) -> ModelInfo:
        """The model a job renders on: the one its preset names, else the backend's own."""
        return self.backend.info_for(job.preset.model) if job.preset.model else self.info

    def plan(self, job: Job, force: bool = False) -> TakePlan:
        """Stage 1. Raises InputError when the job cannot be rendered."""
        return plan_takes(job, self.info_for(job), self.index, force, self.limits)

    def render(self, plans: Sequence[tuple[Hashable, TakePlan]], progress=None, cancelled=None) -> list[Rendered]:
        """Stage 2: the model renders every plan's missing takes (batched where it can)."""
        works = [render_work(plan, ref, plan.info or self.info) for ref, plan in plans]
        for _, plan in plans:
            plan.let_go_of_stem()
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
        """The job's takes on disk, best first where they were scored (CLAP), else in take order."""
        kept = kept_takes(self.index.lookup(plan.folder, plan.key), plan.job.preset.takes)
        return best_first([kept[i] for i in sorted(kept)])

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
        board = build_chain(list(job.preset.chain), where=f"preset {job.preset_name}")  # its paths were made absolute when it was loaded
        if plan.naming_note:
            log.warning("%s: %s", job.name, plan.naming_note)
        info = plan.info or self.info
        chosen = deliverable(plan, rendered)
        if len(chosen) < len(rendered.waves):
            dropped = [plan.seeds[plan.todo[k]] for k in range(len(rendered.waves)) if k not in chosen]
            log.info("%s: kept the %d best of %d candidates; not delivered: seeds %s", job.name, len(chosen), len(rendered.waves), dropped)
        for k, (index, wave) in enumerate(zip(plan.todo, rendered.waves)):
            if k not in chosen:
                continue  # rendered as a candidate, not among the `keep` best: not delivered
            done = finish_take(plan, wave, info.sample_rate, board)
            done.extra.update(chosen[k])
            self._publish(plan, index, done, rendered.seconds, rendered.batch(k))

    def _publish(self, plan: TakePlan, index: int, done: Finished, seconds: float, batch: Optional[BatchSlot] = None) -> None:
        """Claim the take (its sidecar) and write its audio with its metadata: whole or not at all."""
        if plan.source is not None and not plan.source.unchanged():
            raise InputChanged(plan.job.input)
        job, info = plan.job, plan.info or self.info
        offset = job.region[0] if job.region is not None else 0.0
        record = take_record(
            job, seed=plan.seeds[index], model_id=info.id, model_revision=info.revision, model_family=info.family,
            input_sha256=plan.input_sha256, delivery=done.delivery, levels=done.levels, duration=done.seconds,
            render_seconds=seconds, extra=done.extra, take_id=uuid.uuid4().hex,
            time_reference=0 if job.kind == "foley" else take_time_reference(plan.carried, done.rate, offset),
            batch=batch.as_dict() if batch is not None else None, environment=environment(info), naming_note=plan.naming_note,
        )
        try:
            take = self.index.claim(plan.folder, plan.base or job.name, plan.key, index, done.format, record, unfinished=plan.unfinished.get(index))
        except PermissionError as err:
            raise InputError(str(plan.folder), f"cannot write takes there: {err.strerror or 'permission denied'}") from None
        try:
            write_take(take.audio, done, record, take.number, plan.carried if job.kind == "inpaint" else None)
        except BaseException as err:
            self.index.release(plan.folder, plan.key, take)
            if isinstance(err, OSError) and not isinstance(err, FileExistsError):
                raise InputError(str(plan.folder), f"cannot write takes there: {err.strerror or type(err).__name__}") from None
            raise
        self.index.published(plan.folder)


def deliverable(plan: TakePlan, rendered: Rendered) -> dict[int, dict]:
    """Which of the takes rendered now are delivered (by position in ``rendered.waves``), each with
    what its sidecar records of the ranking: its CLAP score and its place among the takes scored
    together. With ``keep``, only that many, the best first (take order when ranking is off)."""
    n = len(rendered.waves)
    scores = rendered.scores if rendered.scores is not None and len(rendered.scores) == n else None
    order = sorted(range(n), key=lambda k: (-scores[k], k)) if scores else list(range(n))
    if plan.keep is not None:
        order = order[: plan.keep]
    notes: dict[int, dict] = {}
    for place, k in enumerate(order):
        note: dict = {}
        if scores:
            note = {"clap_score": round(scores[k], 6), "rank": {"place": place + 1, "of": n}}
        elif rendered.ranking_off:
            note = {"clap_score": None, "ranking": rendered.ranking_off}
        if plan.keep is not None:
            note["kept"] = {"keep": plan.job.preset.keep, "candidates": plan.job.preset.takes}
        notes[k] = note
    return notes


def best_first(takes) -> list[Path]:
    """Audio paths of ``takes`` (Take values, as the take index knows them), the highest CLAP
    score first; takes without a score keep their order, after the scored ones."""
    scored = [(-(t.score if t.score is not None else float("-inf")), position, t.audio) for position, t in enumerate(takes)]
    return [audio for _, _, audio in sorted(scored)]


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
    """How many of the job's takes are already on disk for this exact model and input (rejected
    takes do not count: a replacement is still to render)."""
    from host.output.files import file_sha256

    input_hash = job.input_sha256
    if job.input and input_hash is None:
        if not Path(job.input).is_file():
            raise InputError(job.input, "file not found")
        input_hash = file_sha256(Path(job.input))
    key = job.key(model_id, model_revision, input_hash)
    folder = take_folder(Path(job.project), job.kind, job.name)
    found = index.lookup(folder, key) if index is not None else takes_for_key(folder, key)
    return len(kept_takes(found, job.preset.takes))
