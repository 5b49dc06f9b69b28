"""Reliability of the daemon's core, in-process: the worker never dies silently, a cancel never
falls between claim and render, and the OSC thread never waits for slow work.

These use the real journal, service, dispatcher and worker with a stand-in renderer, so each
fault can be provoked exactly (no timing); the end-to-end versions over UDP live in
``test_reliability_daemon.py``.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from pathlib import Path

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from host.config.presets import Preset, near_miss
from host.config.schema import Delivery
from host.daemon.config import DaemonConfig
from host.daemon.service import RenderHost
from host.daemon.worker import Worker
from host.errors import InputError
from host.intake.osc import RequestDispatcher
from host.jobs.job import Job
from host.jobs.journal import PRIORITY_OSC, Journal
from host.render.backend import Rendered
from host.runner import Outcome
from tests.conftest import write_tone


class Replies:
    """An Announcer stand-in that records what would go on the wire."""

    def __init__(self):
        self.sent: list[tuple[str, list]] = []
        self.lock = threading.Lock()

    def _rec(self, address, args):
        with self.lock:
            self.sent.append((address, list(args)))

    def send(self, address, args, to=None, subscribers=True):
        self._rec(address, args)

    def queued(self, job_id, tag, to):
        self._rec("/audiohost/job/queued", [job_id, tag])

    def progress(self, job_id, fraction, waiters):
        pass

    def done(self, job_id, outputs, waiters):
        self._rec("/audiohost/job/done", [job_id, *outputs])

    def failed(self, job_id, reason, waiters):
        self._rec("/audiohost/job/failed", [job_id, reason])

    def cancelled(self, job_id, waiters):
        self._rec("/audiohost/job/cancelled", [job_id])

    def error(self, request, reason, to):
        self._rec("/audiohost/error", [request, reason])

    def subscribe(self, host, port, expires=None):
        pass

    def addresses(self) -> list[str]:
        with self.lock:
            return [a for a, _ in self.sent]


def job(name: str, duration: float = 1.0) -> Job:
    return Job(kind="foley", name=name, project="/tmp/p", preset_name="p", preset_hash="h",
               preset=Preset(kind="foley", prompt=name, duration=duration, steps=2), delivery=Delivery())


class StubRunner:
    """Plans every job with one take to render; renders instantly; records what it was asked."""

    batch_size = 8
    denoise_calls = 0

    def __init__(self, fail_plan_for: str = "", crash_plan_for: str = ""):
        self.planned: list[str] = []
        self.rendered: list[int] = []
        self.fail_plan_for = fail_plan_for
        self.crash_plan_for = crash_plan_for

    def plan(self, job, force=False):
        self.planned.append(job.name)
        if job.name == self.crash_plan_for:
            raise RuntimeError("a bug in planning")
        if job.name == self.fail_plan_for:
            raise InputError(job.name, "cannot be planned")
        return type("Plan", (), {"todo": [0], "job": job})()

    def render(self, plans, progress=None, cancelled=None):
        out = []
        for ref, _plan in plans:
            if cancelled is not None and cancelled(ref):
                out.append(Rendered(ref, status="cancelled"))
            else:
                self.rendered.append(ref)
                out.append(Rendered(ref, waves=[None]))
        return out

    def finish(self, plan, rendered, started=None, stages=None):
        return Outcome(plan.job, "rendered", [Path(f"/tmp/p/renders/{plan.job.name}.wav")], stages={**(stages or {}), "finish": 0.0})

    def files(self, plan):
        return []


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def make_worker(journal, runner, replies=None, **kw) -> Worker:
    worker = Worker(lambda: runner, journal, replies or Replies(), threading.Event(), 8, **kw)
    worker.runner = runner
    return worker


# --------------------------------------------------------------------------- the worker


def test_a_job_that_crashes_the_planner_fails_with_the_reason_and_the_next_runs(journal):
    runner = StubRunner(crash_plan_for="bad")
    replies = Replies()
    bad = journal.add(job("bad"), PRIORITY_OSC)[0]
    good = journal.add(job("good"), PRIORITY_OSC)[0]  # the same batch as the bad one
    worker = make_worker(journal, runner, replies)
    worker.start()
    worker.ready.wait(5)
    try:
        for _ in range(200):
            if journal.get(good).state == "done":
                break
            threading.Event().wait(0.05)
    finally:
        worker.stop()
        worker.join(10)
    assert journal.get(bad).state == "failed" and "RuntimeError: a bug in planning" in journal.get(bad).error
    assert journal.get(good).state == "done"
    assert ("/audiohost/job/failed", [bad, journal.get(bad).error]) in replies.sent


def test_a_journal_that_stays_unusable_stops_the_daemon_instead_of_queueing_forever(journal, monkeypatch):
    reasons = []
    worker = make_worker(journal, StubRunner(), on_fatal=reasons.append)

    def broken(batch_size):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(journal, "take_batch", broken)
    worker.start()
    worker.join(30)
    assert not worker.is_alive()
    assert len(reasons) == 1 and "journal is unusable" in reasons[0] and "malformed" in reasons[0]


def test_a_cancel_between_claim_and_render_cancels_and_nothing_renders(tmp_path, journal):
    replies = Replies()
    host = RenderHost(DaemonConfig(state_dir=tmp_path / "state"), journal, replies, "tiny", "r")
    runner = StubRunner()
    worker = make_worker(journal, runner, replies)
    host.worker = worker
    a = journal.add(job("a"), PRIORITY_OSC)[0]
    b = journal.add(job("b"), PRIORITY_OSC)[0]  # same batch group: claimed together
    batch = worker.claim()
    assert {e.id for e in batch} == {a, b}
    # the cancel arrives after the claim, before the worker plans: it is running, and it stops
    assert host.cancel(a, "/audiohost/cancel") == "running"
    worker._render(batch)
    worker._finisher.close(wait=True)
    assert journal.get(a).state == "cancelled" and journal.get(b).state == "done"
    assert runner.rendered == [b]  # the batch-mate rendered, the cancelled job did not
    assert replies.addresses().count("/audiohost/job/cancelled") == 1


def test_each_finished_job_logs_where_its_time_went(journal, caplog):
    """The worker times planning and rendering for each job and logs them, with the finishing
    time, on the line that says the job is done."""
    worker = make_worker(journal, StubRunner())
    a = journal.add(job("a"), PRIORITY_OSC)[0]
    with caplog.at_level(logging.INFO, logger="host.daemon.worker"):
        worker._render(worker.claim())
        worker._finisher.close(wait=True)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"job {a} a: rendered")]
    assert re.search(r", 1 takes \(plan \d+\.\d{3} s, render \d+\.\d{3} s, finish \d+\.\d{3} s\)$", line), line


def test_a_cancel_for_a_job_being_written_says_it_is_too_late(tmp_path, journal):
    host = RenderHost(DaemonConfig(state_dir=tmp_path / "state"), journal, Replies(), "tiny", "r")
    worker = make_worker(journal, StubRunner())
    host.worker = worker
    a = journal.add(job("a"), PRIORITY_OSC)[0]
    worker.claim()
    worker._finishing.add(a)
    with pytest.raises(InputError, match="being written; it cannot be cancelled"):
        host.cancel(a, "/audiohost/cancel")
    assert journal.get(a).state == "running"


# --------------------------------------------------------------------------- the OSC door


def datagram(address: str, *args) -> bytes:
    msg = OscMessageBuilder(address=address)
    for a in args:
        msg.add_arg(a)
    return msg.build().dgram


def test_ping_is_answered_while_a_request_is_still_being_accepted(tmp_path, journal, monkeypatch):
    """Checking and hashing a large stem happens off the thread that answers ping."""
    project = tmp_path / "proj"
    write_tone(project / "stem.wav", 0.5, 16000)
    replies = Replies()
    host = RenderHost(DaemonConfig(state_dir=tmp_path / "state"), journal, replies, "tiny", "r")
    host.add_project(project)
    dispatcher = RequestDispatcher(host)
    host.dispatcher = dispatcher
    entered, release = threading.Event(), threading.Event()
    real = host.accept_input

    def slow_accept(job, where):
        entered.set()
        release.wait(30)  # a 2 GB stem being hashed
        return real(job, where)

    monkeypatch.setattr(host, "accept_input", slow_accept)
    sender = ("127.0.0.1", 40000)
    dispatcher.call_handlers_for_packet(datagram("/audiohost/restyle", "proj", "stem.wav", "a radio", "big"), sender)
    assert entered.wait(10)  # the intake thread holds the request ...
    dispatcher.call_handlers_for_packet(datagram("/audiohost/ping"), sender)
    assert "/audiohost/pong" in replies.addresses()  # ... and ping was answered meanwhile
    assert "/audiohost/job/queued" not in replies.addresses()
    release.set()
    host.intake.shutdown(wait=True)
    assert "/audiohost/job/queued" in replies.addresses()


def test_a_misspelt_preset_is_refused_with_did_you_mean_and_a_prefix_forces_a_prompt(tmp_path, journal):
    project = tmp_path / "proj"
    (project / "presets").mkdir(parents=True)
    (project / "presets" / "quick.toml").write_text('kind = "foley"\nprompt = "a quick sound"\nduration = 1.0\nsteps = 2\n')
    replies = Replies()
    host = RenderHost(DaemonConfig(state_dir=tmp_path / "state"), journal, replies, "tiny", "r")
    host.add_project(project)
    dispatcher = RequestDispatcher(host)
    host.dispatcher = dispatcher
    sender = ("127.0.0.1", 40000)
    dispatcher.call_handlers_for_packet(datagram("/audiohost/foley", "proj", "quik", 1.0), sender)
    dispatcher.call_handlers_for_packet(datagram("/audiohost/foley", "proj", "prompt:quik", 1.0), sender)
    host.intake.shutdown(wait=True)
    errors = [args for address, args in replies.sent if address == "/audiohost/error"]
    assert len(errors) == 1 and "did you mean 'quick'?" in errors[0][1] and "prompt:quik" in errors[0][1]
    [entry] = journal.entries()
    assert entry.job.preset.prompt == "quik" and entry.job.preset_name == "default"


@pytest.mark.parametrize(
    "text, names, expected",
    [
        ("quik", ["quick"], "quick"),  # a letter dropped
        ("quicck", ["quick"], "quick"),  # one added
        ("qiuck", ["quick"], "quick"),  # neighbours swapped
        ("quack", ["quick"], "quick"),  # one changed
        ("QUICK", ["quick"], "quick"),  # case
        ("rain", ["rain-on-window"], None),  # a real prompt
        ("footsteps on gravel", ["footsteps-gravel"], None),
        ("qk", ["quick"], None),
    ],
)
def test_near_miss_is_one_edit_away_and_nothing_more(text, names, expected):
    assert near_miss(text, names) == expected


def test_a_preset_that_does_not_load_is_refused_by_name_never_taken_as_a_prompt(tmp_path, journal):
    project = tmp_path / "proj"
    (project / "presets").mkdir(parents=True)
    (project / "presets" / "roomy.toml").write_text('kind = "foley"\nprompt = "a door"\n\n[[chain]]\nplugin = "Convolution"\nimpulse_response_filename = "gone.wav"\n')
    replies = Replies()
    host = RenderHost(DaemonConfig(state_dir=tmp_path / "state"), journal, replies, "tiny", "r")
    host.add_project(project)
    dispatcher = RequestDispatcher(host)
    host.dispatcher = dispatcher
    dispatcher.call_handlers_for_packet(datagram("/audiohost/foley", "proj", "roomy", 1.0), ("127.0.0.1", 40000))
    host.intake.shutdown(wait=True)
    errors = [args for address, args in replies.sent if address == "/audiohost/error"]
    assert len(errors) == 1 and "preset 'roomy' cannot be used" in errors[0][1] and "gone.wav" in errors[0][1]
    assert journal.entries() == []


def test_a_stem_that_changes_while_it_renders_publishes_nothing_stale(tmp_path, tiny_model):
    """Read, rendered, and then rewritten before its take is written: nothing from the old content
    is published, and the outcome says why (the daemon queues the job again)."""
    from host.plan.project import plan_project
    from host.runner import Runner

    root = tmp_path / "proj"
    (root / "presets").mkdir(parents=True)
    (root / "presets" / "quick-restyle.toml").write_text('kind = "restyle"\nprompt = "a radio"\nsteps = 2\nstrength = 0.5\n')
    (root / "project.toml").write_text('restyle_preset = "quick-restyle"\n')
    stem = root / "restyle" / "take.wav"
    write_tone(stem, 1.0, 16000)
    [job] = plan_project(root).jobs
    runner = Runner(tiny_model)
    plan = runner.plan(job)
    [rendered] = runner.render([(0, plan)])
    write_tone(stem, 1.5, 16000, freq=500.0)  # the DAW rendered it again meanwhile
    outcome = runner.finish(plan, rendered)
    assert outcome.status == "changed" and "changed while it rendered" in outcome.error
    assert not list((root / "renders").rglob("*.wav")) and not list((root / "renders").rglob("*.json"))
    # the next plan reads the new content and renders it
    outcome = runner.run([job])[0]
    assert outcome.status == "rendered" and len(outcome.files) == 1


def test_the_worker_queues_a_changed_job_again(journal):
    class Changing(StubRunner):
        def finish(self, plan, rendered, started=None, stages=None):
            return Outcome(plan.job, "changed", error="x.wav: changed while it rendered")

    job_id = journal.add(job("a"), PRIORITY_OSC)[0]
    worker = make_worker(journal, Changing())
    worker._render(worker.claim())
    worker._finisher.close(wait=True)
    assert journal.get(job_id).state == "queued"
