"""Several render slots (replicas) behind one worker, with stand-in replicas so every fault can be
provoked exactly: a replica lost mid-render gives its jobs back and they render once elsewhere, a
replica that comes back serves again, when none is left the daemon is told to stop, and a replica
never gets more than it can batch. No Ray needed; the real thing is in ``test_ray.py``."""

from __future__ import annotations

import threading
import time

from host.jobs.journal import PRIORITY_OSC
from host.render.backend import ModelInfo, Rendered, ReplicaLost, ReplicaUnavailable
from host.daemon.worker import Worker
from tests.test_reliability import Replies, StubRunner, job, journal  # noqa: F401 - journal is a fixture


class StandIn:
    """A remote replica's surface: wait_ready, lost, describe, render (which may lose the works)."""

    def __init__(self, number: int, batch_size: int = 2, lose_first: bool = False, comes_back: bool = True):
        self.number, self.batch_size, self.denoise_calls = number, batch_size, 0
        self.info = ModelInfo("tiny", "r")
        self.lose_first, self.comes_back = lose_first, comes_back
        self.gone = False
        self.calls: list[list] = []
        self.lock = threading.Lock()

    def wait_ready(self, stopping=None) -> None:
        if self.gone:
            raise ReplicaUnavailable(f"replica {self.number} on node-{self.number} is gone: killed")

    def lost(self) -> None:
        self.gone = not self.comes_back

    def describe(self) -> dict:
        return {"node": f"node-{self.number}", "device": "cuda:0 (GPU 3)"}

    def render(self, works, progress=None, cancelled=None):
        with self.lock:
            self.calls.append([w.ref for w in works])
            if self.lose_first:
                self.lose_first = False
                raise ReplicaLost(f"replica {self.number} on node-{self.number} was lost mid-render")
        self.denoise_calls += 1
        return [Rendered(w.ref, waves=[None]) for w in works]


class SlotRunner(StubRunner):
    """StubRunner whose render goes through a stand-in replica."""

    def __init__(self, backend: StandIn):
        super().__init__()
        self.backend = backend
        self.batch_size = backend.batch_size
        self.finished: list[str] = []

    @property
    def denoise_calls(self):
        return self.backend.denoise_calls

    def render(self, plans, progress=None, cancelled=None):
        from types import SimpleNamespace

        return self.backend.render([SimpleNamespace(ref=ref, seeds=(1,)) for ref, _ in plans], progress, cancelled)

    def finish(self, plan, rendered, started=None, stages=None):
        self.finished.append(plan.job.name)
        return super().finish(plan, rendered, started, stages)


def run_until(worker: Worker, predicate, timeout: float = 20.0):
    worker.start()
    assert worker.ready.wait(10)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out; replicas {worker.replicas()}")
    finally:
        worker.stop()
        worker.join(10)


def test_a_lost_replica_gives_its_jobs_back_and_they_render_once_on_another(journal):  # noqa: F811
    a, b = SlotRunner(StandIn(1, lose_first=True, comes_back=False)), SlotRunner(StandIn(2))
    fatal = []
    worker = Worker(lambda: [a, b], journal, Replies(), threading.Event(), 2, on_fatal=fatal.append)
    ids = [journal.add(job(f"j{i}"), PRIORITY_OSC)[0] for i in range(3)]
    run_until(worker, lambda: all(journal.get(i).state == "done" for i in ids) and worker.replicas()[0]["state"] == "dead")
    assert sorted(a.finished + b.finished) == ["j0", "j1", "j2"]  # every job finished once
    assert a.finished == []  # nothing the lost replica had was written
    lost = a.backend.calls[0]
    for job_id in lost:
        entry = journal.get(job_id)
        assert entry.attempts == 2 and entry.interrupted == 0  # back in the queue, not counted as a crash
    states = worker.replicas()
    assert [s["state"] for s in states] == ["dead", "idle"] and states[0]["error"] == "replica 1 on node-1 is gone: killed"
    assert [s["jobs_done"] for s in states] == [0, 3] and states[1]["node"] == "node-2" and states[1]["device"] == "cuda:0 (GPU 3)"
    assert fatal == []


def test_a_replica_that_comes_back_after_a_restart_serves_again(journal):  # noqa: F811
    a = SlotRunner(StandIn(1, lose_first=True, comes_back=True))
    seen = []
    worker = Worker(lambda: [a], journal, Replies(), threading.Event(), 2, on_replicas=lambda r: seen.append(r[0]["state"]))
    job_id = journal.add(job("again"), PRIORITY_OSC)[0]
    run_until(worker, lambda: journal.get(job_id).state == "done")
    assert a.finished == ["again"] and len(a.backend.calls) == 2
    assert "restarting" in seen and seen.index("restarting") < len(seen) - 1 and worker.replicas()[0]["jobs_done"] == 1


def test_when_every_replica_is_gone_the_daemon_is_told_to_stop_and_the_job_stays_queued(journal):  # noqa: F811
    a = SlotRunner(StandIn(1, lose_first=True, comes_back=False))
    fatal = []
    worker = Worker(lambda: [a], journal, Replies(), threading.Event(), 2, on_fatal=fatal.append)
    job_id = journal.add(job("orphan"), PRIORITY_OSC)[0]
    run_until(worker, lambda: fatal)
    assert len(fatal) == 1 and fatal[0].startswith("no render replica is left") and "replica 1 on node-1 is gone" in fatal[0]
    assert journal.get(job_id).state == "queued"  # nothing lost: the next start renders it


def test_a_replica_is_given_no_more_than_it_can_batch(journal):  # noqa: F811
    a, b = SlotRunner(StandIn(1, batch_size=2)), SlotRunner(StandIn(2, batch_size=3))
    worker = Worker(lambda: [a, b], journal, Replies(), threading.Event(), 8)
    ids = [journal.add(job(f"b{i}"), PRIORITY_OSC)[0] for i in range(12)]  # all one batch group
    run_until(worker, lambda: all(journal.get(i).state == "done" for i in ids))
    assert a.backend.calls and all(len(c) <= 2 for c in a.backend.calls)
    assert all(len(c) <= 3 for c in b.backend.calls)
    assert sorted(r for c in a.backend.calls + b.backend.calls for r in c) == sorted(ids)  # each once


def test_one_replica_that_cannot_load_is_reported_and_the_other_serves(journal):  # noqa: F811
    broken = StandIn(1)
    broken.gone = True
    a, b = SlotRunner(broken), SlotRunner(StandIn(2))
    fatal = []
    worker = Worker(lambda: [a, b], journal, Replies(), threading.Event(), 2, on_fatal=fatal.append)
    job_id = journal.add(job("served"), PRIORITY_OSC)[0]
    run_until(worker, lambda: journal.get(job_id).state == "done")
    assert [s["state"] for s in worker.replicas()] == ["failed", "idle"] and fatal == []
