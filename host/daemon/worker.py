"""The render slots: one claiming loop per model replica, sharing the journal, the finishing
thread and the cancel bookkeeping.

A slot is one model that renders: the in-process model (the default: one slot), or one replica
on a Ray cluster (``--backend ray``: one slot each). A slot's loop claims work from the journal
only when its replica is free, and no more than the replica can batch, so work goes to whichever
replica is free and OSC requests still go before folder work (the journal's order). It plans the
batch, has the replica render it, and hands each rendered job to the finishing thread, so no model
waits for effects, delivery or disk.

A cancel for a running job takes effect at the next denoising step of the replica holding it: the
job is reported cancelled at once and its batch-mates render on. Stopping the daemon stops every
render at the next step, lets finishing complete, and leaves the interrupted jobs queued for next
time. A replica lost mid-render (its process killed, its node gone) loses nothing: its jobs go
back to the queue (not counted as interrupted) and render once elsewhere. No error stops a loop
silently: a job that cannot be planned, rendered or written fails with the reason; a replica that
cannot load the model is reported in one line and the others carry on; if the journal itself
becomes unusable, or every replica is gone, the daemon is told to stop (``on_fatal``) rather than
accept work it would never do.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from typing import Callable, Optional, Sequence, Union

from host.daemon.announce import Announcer
from host.errors import InputError
from host.jobs.journal import CANCELLED, DONE, FAILED, Entry, Journal
from host.render.backend import ReplicaLost, ReplicaUnavailable
from host.runner import Finisher, Outcome, Runner

log = logging.getLogger(__name__)

JOURNAL_RETRIES = 3  # a journal call that fails this many times in a row means the journal is unusable

# what a slot is doing, as /audiohost/stats and `audiohost status` show it
LOADING, IDLE, BUSY, RESTARTING, DEAD, FAILED_TO_LOAD = "loading", "idle", "busy", "restarting", "dead", "failed"
GONE = (DEAD, FAILED_TO_LOAD)


class Slot:
    """One replica (or the in-process model) and what the daemon knows of it."""

    def __init__(self, number: int, runner: Runner):
        self.number = number
        self.runner = runner
        self.state = LOADING if self.remote else IDLE  # an in-process model is loaded before its slot exists
        self.jobs_done = 0  # jobs this replica rendered
        self.jobs: tuple[int, ...] = ()  # the jobs it holds now
        self.error: Optional[str] = None

    @property
    def remote(self) -> bool:
        return hasattr(getattr(self.runner, "backend", None), "wait_ready")

    def describe(self) -> dict:
        backend = getattr(self.runner, "backend", None)
        where = backend.describe() if hasattr(backend, "describe") else {}
        info = getattr(backend, "info", None)
        return {
            "replica": self.number,
            "node": where.get("node") or socket.gethostname(),
            "address": where.get("address", ""),
            "device": where.get("device") or (info.device if info is not None else "?"),
            "jobs_done": self.jobs_done,
            "state": self.state,
            "jobs": list(self.jobs),
            "error": self.error,
        }


RunnerFactory = Callable[[], Union[Runner, Sequence[Runner]]]


class Worker(threading.Thread):
    def __init__(
        self,
        runner_factory: RunnerFactory,
        journal: Journal,
        announcer: Announcer,
        wake: threading.Event,
        batch_size: int,
        on_fatal: Callable[[str], None] = lambda reason: None,
        on_job_end: Callable[[], None] = lambda: None,
        on_replicas: Callable[[list[dict]], None] = lambda replicas: None,
    ):
        super().__init__(name="audiohost-worker", daemon=True)
        # loads the model (or starts the replicas) in this thread, so start-up does not block the
        # OSC door; returns one Runner (one slot) or one per replica
        self.runner_factory = runner_factory
        self.runner: Runner | None = None  # the first slot's (planning and finishing are the same in every slot)
        self.slots: list[Slot] = []
        self.journal = journal
        self.announcer = announcer
        self.wake = wake
        self.batch_size = batch_size
        self.on_fatal = on_fatal
        self.on_job_end = on_job_end  # room in the queue: folder work that waited can come in
        self.on_replicas = on_replicas  # a slot changed state (for `audiohost status`)
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.load_error: Exception | None = None
        self.fatal: Optional[str] = None
        self._lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._claimed: set[int] = set()  # claimed and not yet rendered
        self._finishing: set[int] = set()  # rendered, being written: too late to cancel
        self._cancel: set[int] = set()  # asked to cancel by a user
        self._reported: set[int] = set()  # cancels already reported
        self._progress_written: dict[int, float] = {}
        self._finisher = Finisher(pending=2 * batch_size)

    # ---------------------------------------------------------------- control from other threads
    def cancel(self, job_id: int) -> bool:
        """Ask a claimed job to stop. False if it is not claimed, or is already being written."""
        with self._lock:
            if job_id in self._claimed and job_id not in self._finishing:
                self._cancel.add(job_id)
                return True
            return False

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    @property
    def denoise_calls(self) -> int:
        slots = self.slots or ([Slot(1, self.runner)] if self.runner is not None else [])
        return sum(s.runner.denoise_calls for s in slots)

    def replicas(self) -> list[dict]:
        """Every slot: node, device, jobs done, state (loading, idle, busy, restarting, dead, failed)."""
        with self._lock:
            return [s.describe() for s in self.slots]

    # ---------------------------------------------------------------- the loops
    def run(self) -> None:
        try:
            loaded = self.runner_factory()
        except Exception as err:  # noqa: BLE001
            if isinstance(err, (InputError, ReplicaUnavailable)):
                log.error("%s", err)
            else:
                log.exception("the model could not be loaded")
            self.load_error = err
            self.ready.set()
            return
        runners = list(loaded) if isinstance(loaded, (list, tuple)) else [loaded]
        self.runner = runners[0]
        self.slots = [Slot(n, r) for n, r in enumerate(runners, start=1)]
        self.ready.set()
        others = [threading.Thread(target=self._serve, args=(s,), name=f"audiohost-replica-{s.number}", daemon=True) for s in self.slots[1:]]
        try:
            for t in others:
                t.start()
            self._serve(self.slots[0])
            for t in others:
                t.join()
        finally:
            self._finisher.close(wait=True)  # what was rendered is written before the daemon stops

    def _serve(self, slot: Slot) -> None:
        """One slot's loop: bring its replica up, then claim, plan, render, hand to finishing."""
        if not self._bring_up(slot):
            return
        failures = 0
        while not self.stopping.is_set() and self.fatal is None:
            try:
                batch = self.claim(slot.runner.batch_size)
                for job_id, reason in self._drain_unreadable():
                    log.error("job %d failed: %s", job_id, reason)
                failures = 0
            except sqlite3.Error as err:
                failures += 1
                log.error("the journal could not hand out work (%d of %d): %s", failures, JOURNAL_RETRIES, err)
                if failures >= JOURNAL_RETRIES:
                    self._die(f"the journal is unusable ({type(err).__name__}: {err})")
                    break
                self.stopping.wait(1.0)
                continue
            if not batch:
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            try:
                self._render(batch, slot)
            except ReplicaLost as err:
                log.warning("%s; its work went back to the queue", err)
                lost = getattr(slot.runner.backend, "lost", None)
                if lost is not None:
                    lost()  # the next bring-up waits for its restart, or learns it is gone
                if not self._bring_up(slot, again=True):
                    break
            except sqlite3.Error as err:
                self._die(f"the journal is unusable ({type(err).__name__}: {err})")
            except Exception as err:  # noqa: BLE001 - nothing may end this loop silently
                log.exception("a batch crashed")
                for entry in batch:
                    self._conclude(entry, Outcome(entry.job, "failed", error=f"internal error: {type(err).__name__}: {err}"))

    def _bring_up(self, slot: Slot, again: bool = False) -> bool:
        """Wait until the slot's replica can render (an in-process model already can). False,
        reported in one line, when it never will."""
        if not slot.remote:
            self._set_state(slot, IDLE)
            return True
        self._set_state(slot, RESTARTING if again else LOADING)
        try:
            slot.runner.backend.wait_ready(self.stopping)
        except ReplicaUnavailable as err:
            if self.stopping.is_set():
                return False
            slot.error = str(err)
            self._set_state(slot, DEAD if again else FAILED_TO_LOAD)
            log.error("%s", err)
            self._check_any_left()
            return False
        if again:
            log.info("replica %d is back on %s", slot.number, slot.describe()["node"])
        self._set_state(slot, IDLE)
        return True

    def _check_any_left(self) -> None:
        with self._lock:
            gone = all(s.state in GONE for s in self.slots)
            reasons = "; ".join(s.error or "" for s in self.slots)
        if gone and self.fatal is None and not self.stopping.is_set():
            self._die(f"no render replica is left ({reasons})")

    def _set_state(self, slot: Slot, state: str, jobs: tuple[int, ...] = ()) -> None:
        with self._lock:
            slot.state, slot.jobs = state, jobs
            if state not in GONE:
                slot.error = None
        try:
            with self._status_lock:  # one writer at a time, and never an older picture after a newer one
                self.on_replicas(self.replicas())
        except Exception:  # noqa: BLE001 - a status file that cannot be written stops nothing
            log.exception("the replica status could not be recorded")

    def claim(self, batch_size: Optional[int] = None) -> list[Entry]:
        """The next batch from the journal (up to ``batch_size`` takes; the worker's by default),
        claimed and known to cancel() in one step, so no cancel can fall between the two."""
        with self._lock:
            batch = self.journal.take_batch(batch_size or self.batch_size)
            self._claimed |= {e.id for e in batch}
        return batch

    def _drain_unreadable(self) -> list[tuple[int, str]]:
        with self._lock:
            items, self.journal.unreadable[:] = list(self.journal.unreadable), []
        return items

    def _die(self, reason: str) -> None:
        with self._lock:
            if self.fatal is not None:
                return
            self.fatal = reason
        log.critical("%s; stopping so a supervisor can restart the daemon", reason)
        self.on_fatal(reason)

    # ---------------------------------------------------------------- one batch
    def _render(self, batch: list[Entry], slot: Optional[Slot] = None) -> None:
        slot = slot or (self.slots[0] if self.slots else Slot(1, self.runner))
        runner = slot.runner
        entries = {e.id: e for e in batch}
        names = ", ".join(f"{e.id}:{e.job.name}" for e in batch)
        log.info("rendering %s%s", names, f" on replica {slot.number}" if len(self.slots) > 1 else "")
        started = time.monotonic()
        plans = []
        planned: dict[int, float] = {}  # seconds each job spent in the plan stage
        for entry in batch:
            if self._cancelled_now(entry.id):  # cancelled between the claim and now
                self._release(entry.id)
                continue
            t0 = time.monotonic()
            try:
                plan = runner.plan(entry.job)
            except InputError as err:
                self._conclude(entry, Outcome(entry.job, "failed", error=str(err)))
                continue
            except Exception as err:  # noqa: BLE001 - this job fails, its batch-mates go on
                log.exception("planning job %d crashed", entry.id)
                self._conclude(entry, Outcome(entry.job, "failed", error=f"internal error: {type(err).__name__}: {err}"))
                continue
            if plan.todo:
                plans.append((entry.id, plan))
                planned[entry.id] = time.monotonic() - t0
            else:
                self._conclude(entry, Outcome(entry.job, "cached", runner.files(plan)))
        if not plans:
            return
        self._set_state(slot, BUSY, tuple(job_id for job_id, _ in plans))
        t0 = time.monotonic()
        try:
            rendered = runner.render(plans, progress=self._progress, cancelled=self._is_cancelled)
        except ReplicaLost:
            self._set_state(slot, RESTARTING)
            for job_id, _plan in plans:  # nothing was written: render it again, elsewhere
                if not self._cancelled_now(job_id):
                    self.journal.requeue(job_id)
                self._release(job_id)
            self.wake.set()
            raise
        except BaseException:
            self._set_state(slot, IDLE)
            raise
        render_s = time.monotonic() - t0
        with self._lock:
            slot.jobs_done += sum(1 for r in rendered if r.ok)
        self._set_state(slot, IDLE)
        for (job_id, plan), result in zip(plans, rendered):
            entry = entries[job_id]
            if result.status == "cancelled":
                if not self._cancelled_now(job_id):  # stopped by shutdown: next time
                    self.journal.requeue(job_id)
                self._release(job_id)
                continue
            with self._lock:
                self._finishing.add(job_id)
            self._finisher.submit(self._finish, entry, plan, result, started, {"plan": planned[job_id], "render": render_s}, runner)

    def _finish(self, entry: Entry, plan, rendered, started: float, stages: dict, runner: Optional[Runner] = None) -> None:
        """On the finishing thread: chain, delivery, files; then the journal and the replies."""
        try:
            outcome = (runner or self.runner).finish(plan, rendered, started, stages)
        except Exception as err:  # noqa: BLE001 - finish() should not raise; if it does, fail the job
            log.exception("finishing job %d crashed", entry.id)
            outcome = Outcome(entry.job, "failed", error=f"internal error: {type(err).__name__}: {err}")
        try:
            self._conclude(entry, outcome)
        except sqlite3.Error as err:
            self._die(f"the journal is unusable ({type(err).__name__}: {err})")

    # ---------------------------------------------------------------- ending a job
    def _conclude(self, entry: Entry, outcome: Outcome) -> None:
        job_id = entry.id
        if outcome.ok:
            files = [str(f) for f in outcome.files]
            self.journal.finish(job_id, DONE, outputs=files)
            self.announcer.done(job_id, files, self.journal.waiters(job_id))
            log.info("job %d %s: %s, %d takes%s", job_id, entry.job.name, outcome.status, len(files), stage_text(outcome.stages))
        elif outcome.status == "changed":
            self.journal.requeue(job_id)  # render it again from what the file holds now
            log.warning("job %d: %s; queued again", job_id, outcome.error)
            self.wake.set()
        elif outcome.status == "cancelled":
            self._cancelled_now(job_id)
        else:
            self.journal.finish(job_id, FAILED, error=outcome.error)
            self.announcer.failed(job_id, outcome.error or "failed", self.journal.waiters(job_id))
            log.error("job %d failed: %s", job_id, outcome.error)
        self._release(job_id)

    def _release(self, job_id: int) -> None:
        with self._lock:
            self._claimed.discard(job_id)
            self._finishing.discard(job_id)
            self._cancel.discard(job_id)
            self._reported.discard(job_id)
            self._progress_written.pop(job_id, None)
        self.on_job_end()

    # ---------------------------------------------------------------- progress and cancel
    def _progress(self, job_id: int, fraction: float) -> None:
        self.announcer.progress(job_id, fraction, lambda: self.journal.waiters(job_id))
        now = time.monotonic()
        with self._lock:
            due = now - self._progress_written.get(job_id, 0.0) > 0.5
            if due:
                self._progress_written[job_id] = now
        if due:
            self.journal.set_progress(job_id, fraction)

    def _is_cancelled(self, job_id: int) -> bool:
        """Asked at every denoising step: stopping (all) or this job cancelled (reported at once)."""
        if self.stopping.is_set():
            return True
        return self._cancelled_now(job_id)

    def _cancelled_now(self, job_id: int) -> bool:
        """True if a user cancelled this job; the first time, record and announce it."""
        with self._lock:
            if job_id not in self._cancel:
                return False
            first = job_id not in self._reported
            self._reported.add(job_id)
        if first:
            self.journal.finish(job_id, CANCELLED)
            self.announcer.cancelled(job_id, self.journal.waiters(job_id))
            log.info("job %d cancelled", job_id)
        return True


def stage_text(stages: dict[str, float]) -> str:
    """The stage times for the log line of a finished job, e.g. ' (plan 0.002 s, render 1.234 s,
    finish 0.045 s)'; empty when nothing was timed."""
    if not stages:
        return ""
    return " (" + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in stages.items()) + ")"
