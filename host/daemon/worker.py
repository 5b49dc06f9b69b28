"""The thread that owns the model: it claims batches from the journal, plans and renders them,
and hands each rendered job to a finishing thread, so the model never waits for effects,
delivery or disk.

A cancel for a running job takes effect at the next denoising step: the job is reported
cancelled at once and its batch-mates render on. Stopping the daemon stops the render at the
next step, lets finishing complete, and leaves the interrupted jobs queued for next time. No
error stops this thread: a job that cannot be planned, rendered or written fails with the
reason, and if the journal itself becomes unusable the daemon is told to stop (``on_fatal``)
rather than accept work it would never do.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import Callable, Optional

from host.daemon.announce import Announcer
from host.errors import InputError
from host.jobs.journal import CANCELLED, DONE, FAILED, Entry, Journal
from host.runner import Finisher, Outcome, Runner

log = logging.getLogger(__name__)

JOURNAL_RETRIES = 3  # a journal call that fails this many times in a row means the journal is unusable


class Worker(threading.Thread):
    def __init__(
        self,
        runner_factory: Callable[[], Runner],
        journal: Journal,
        announcer: Announcer,
        wake: threading.Event,
        batch_size: int,
        on_fatal: Callable[[str], None] = lambda reason: None,
        on_job_end: Callable[[], None] = lambda: None,
    ):
        super().__init__(name="audiohost-worker", daemon=True)
        self.runner_factory = runner_factory  # loads the model in this thread, so start-up does not block the OSC door
        self.runner: Runner | None = None
        self.journal = journal
        self.announcer = announcer
        self.wake = wake
        self.batch_size = batch_size
        self.on_fatal = on_fatal
        self.on_job_end = on_job_end  # room in the queue: folder work that waited can come in
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.load_error: Exception | None = None
        self.fatal: Optional[str] = None
        self._lock = threading.Lock()
        self._claimed: set[int] = set()  # claimed and not yet rendered
        self._finishing: set[int] = set()  # rendered, being written: too late to cancel
        self._cancel: set[int] = set()  # asked to cancel by a user
        self._reported: set[int] = set()  # cancels already reported
        self._progress_written: dict[int, float] = {}
        self._finisher = Finisher(pending=2 * batch_size)

    # ---------------------------------------------------------------- control from other threads
    def cancel(self, job_id: int) -> bool:
        """Ask a claimed job to stop. False if it is not this worker's, or is already being written."""
        with self._lock:
            if job_id in self._claimed and job_id not in self._finishing:
                self._cancel.add(job_id)
                return True
            return False

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    # ---------------------------------------------------------------- the loop
    def run(self) -> None:
        try:
            self.runner = self.runner_factory()
        except Exception as err:  # noqa: BLE001
            log.exception("the model could not be loaded")
            self.load_error = err
            self.ready.set()
            return
        self.ready.set()
        failures = 0
        try:
            while not self.stopping.is_set() and self.fatal is None:
                try:
                    batch = self.claim()
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
                    self._render(batch)
                except sqlite3.Error as err:
                    self._die(f"the journal is unusable ({type(err).__name__}: {err})")
                except Exception as err:  # noqa: BLE001 - nothing may end this thread silently
                    log.exception("a batch crashed")
                    for entry in batch:
                        self._conclude(entry, Outcome(entry.job, "failed", error=f"internal error: {type(err).__name__}: {err}"))
        finally:
            self._finisher.close(wait=True)  # what was rendered is written before the daemon stops

    def claim(self) -> list[Entry]:
        """The next batch from the journal, claimed and known to cancel() in one step, so no
        cancel can fall between the two."""
        with self._lock:
            batch = self.journal.take_batch(self.batch_size)
            self._claimed |= {e.id for e in batch}
        return batch

    def _drain_unreadable(self) -> list[tuple[int, str]]:
        items, self.journal.unreadable[:] = list(self.journal.unreadable), []
        return items

    def _die(self, reason: str) -> None:
        log.critical("%s; stopping so a supervisor can restart the daemon", reason)
        self.fatal = reason
        self.on_fatal(reason)

    # ---------------------------------------------------------------- one batch
    def _render(self, batch: list[Entry]) -> None:
        entries = {e.id: e for e in batch}
        names = ", ".join(f"{e.id}:{e.job.name}" for e in batch)
        log.info("rendering %s", names)
        started = time.monotonic()
        plans = []
        planned: dict[int, float] = {}  # seconds each job spent in the plan stage
        for entry in batch:
            if self._cancelled_now(entry.id):  # cancelled between the claim and now
                self._release(entry.id)
                continue
            t0 = time.monotonic()
            try:
                plan = self.runner.plan(entry.job)
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
                self._conclude(entry, Outcome(entry.job, "cached", self.runner.files(plan)))
        if not plans:
            return
        t0 = time.monotonic()
        rendered = self.runner.render(plans, progress=self._progress, cancelled=self._is_cancelled)
        render_s = time.monotonic() - t0
        for (job_id, plan), result in zip(plans, rendered):
            entry = entries[job_id]
            if result.status == "cancelled":
                if not self._cancelled_now(job_id):  # stopped by shutdown: next time
                    self.journal.requeue(job_id)
                self._release(job_id)
                continue
            with self._lock:
                self._finishing.add(job_id)
            self._finisher.submit(self._finish, entry, plan, result, started, {"plan": planned[job_id], "render": render_s})

    def _finish(self, entry: Entry, plan, rendered, started: float, stages: dict) -> None:
        """On the finishing thread: chain, delivery, files; then the journal and the replies."""
        try:
            outcome = self.runner.finish(plan, rendered, started, stages)
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
        if now - self._progress_written.get(job_id, 0.0) > 0.5:
            self._progress_written[job_id] = now
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
