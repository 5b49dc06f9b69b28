"""The one thread that owns the model: it takes batches from the journal and renders them.

A cancel request for a running job stops its denoising call at the next step boundary;
stopping the daemon does the same and leaves the interrupted jobs queued for next time.
"""

from __future__ import annotations

import logging
import threading
import time

from host.daemon.announce import Announcer
from host.jobs.journal import CANCELLED, DONE, FAILED, Journal
from host.runner import Runner

log = logging.getLogger(__name__)


class Worker(threading.Thread):
    def __init__(self, runner_factory, journal: Journal, announcer: Announcer, wake: threading.Event, batch_size: int):
        super().__init__(name="audiohost-worker", daemon=True)
        self.runner_factory = runner_factory  # loads the model in this thread, so start-up does not block the OSC door
        self.runner: Runner | None = None
        self.journal = journal
        self.announcer = announcer
        self.wake = wake
        self.batch_size = batch_size
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.load_error: Exception | None = None
        self._cancel_ids: set[int] = set()
        self._running: set[int] = set()
        self._lock = threading.Lock()

    # the runner checks this between denoising steps
    def is_set(self) -> bool:
        if self.stopping.is_set():
            return True
        with self._lock:
            return bool(self._cancel_ids & self._running)

    def cancel(self, job_id: int) -> None:
        with self._lock:
            self._cancel_ids.add(job_id)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        try:
            self.runner = self.runner_factory()
        except Exception as err:  # noqa: BLE001
            log.exception("the model could not be loaded")
            self.load_error = err
            self.ready.set()
            return
        self.ready.set()
        while not self.stopping.is_set():
            batch = self.journal.take_batch(self.batch_size)
            if not batch:
                self.wake.wait(0.5)
                self.wake.clear()
                continue
            self._render(batch)

    def _render(self, batch) -> None:
        by_job = {id(e.job): e for e in batch}
        with self._lock:
            self._running = {e.id for e in batch}
        last_write: dict[int, float] = {}

        def on_progress(job, fraction: float) -> None:
            entry = by_job.get(id(job))
            if entry is None:
                return
            self.announcer.progress(entry.id, fraction, entry.tag, entry.reply_to)
            now = time.monotonic()
            if now - last_write.get(entry.id, 0.0) > 0.5:
                last_write[entry.id] = now
                self.journal.set_progress(entry.id, fraction)

        names = ", ".join(f"{e.id}:{e.job.name}" for e in batch)
        log.info("rendering %s", names)
        try:
            outcomes = self.runner.run([e.job for e in batch], on_progress=on_progress, cancel=self)
        except Exception as err:  # noqa: BLE001 - the runner should not raise; if it does, fail the batch, keep serving
            log.exception("batch %s crashed", names)
            for e in batch:
                self.journal.finish(e.id, FAILED, error=f"internal error: {err}")
                self.announcer.failed(e.id, f"internal error: {err}", e.tag, e.reply_to)
            return
        finally:
            with self._lock:
                self._running = set()
        for entry, outcome in zip(batch, outcomes):
            with self._lock:
                cancelled_by_user = entry.id in self._cancel_ids
                self._cancel_ids.discard(entry.id)
            if outcome.ok:
                files = [str(f) for f in outcome.files]
                self.journal.finish(entry.id, DONE, outputs=files)
                self.announcer.done(entry.id, files, entry.tag, entry.reply_to)
                log.info("job %d %s: %s, %d takes", entry.id, entry.job.name, outcome.status, len(files))
            elif outcome.status == "cancelled" and cancelled_by_user:
                self.journal.finish(entry.id, CANCELLED)
                self.announcer.cancelled(entry.id, entry.tag, entry.reply_to)
                log.info("job %d cancelled", entry.id)
            elif outcome.status == "cancelled":
                self.journal.requeue(entry.id)  # stopped by shutdown or with a cancelled batch-mate
            else:
                self.journal.finish(entry.id, FAILED, error=outcome.error)
                self.announcer.failed(entry.id, outcome.error or "failed", entry.tag, entry.reply_to)
                log.error("job %d failed: %s", entry.id, outcome.error)
