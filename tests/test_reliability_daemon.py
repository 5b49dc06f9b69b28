"""Reliability end to end: ``audiohost serve`` in its own process, spoken to over real UDP OSC.

Every requester hears back, refusals come at once, nothing that meets a full queue is lost,
subscriptions and failures are remembered across restarts, and a job that kills the daemon
is not retried forever.
"""

from __future__ import annotations

import time
from pathlib import Path

import soundfile as sf

from host.jobs.journal import Journal
from tests.conftest import write_tone
from tests.oscpeer import Daemon, OscPeer
from tests.test_daemon import done_or_failed, files_under, job_id_of, make_project, start_daemon


def entries(state: Path) -> list:
    journal = Journal(state / "journal.sqlite")
    try:
        return journal.entries(limit=10000)
    finally:
        journal.close()


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_every_requester_hears_back_and_a_cancel_leaves_batch_mates_rendering(tmp_path):
    project = make_project(tmp_path / "proj")
    (project / "presets" / "batchy.toml").write_text('kind = "foley"\nprompt = "a batch"\nduration = 1.0\nsteps = 30\n')
    state = tmp_path / "state"
    daemon, peer = start_daemon(project, state)
    try:
        daemon.wait_ready(peer)
        peer.send("/audiohost/foley", "proj", "slow", 3.0, 11, 1, "blocker")  # its own geometry: its own batch
        blocker = job_id_of(peer, "blocker")
        peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][0] == blocker, 120)

        # two requesters ask for the same take while the worker is busy: one job, two waiters
        peer.send("/audiohost/foley", "proj", "batchy", 1.0, 500, 1, "first")
        peer.send("/audiohost/foley", "proj", "batchy", 1.0, 500, 1, "second")
        first, second = job_id_of(peer, "first"), job_id_of(peer, "second")
        assert first == second
        # and two more compatible jobs: all three share one 30-step batch; one of them gets cancelled
        peer.send("/audiohost/foley", "proj", "batchy", 1.0, 600, 1, "keep")
        peer.send("/audiohost/foley", "proj", "batchy", 1.0, 601, 1, "drop")
        keep, drop = job_id_of(peer, "keep"), job_id_of(peer, "drop")
        peer.send("/audiohost/cancel", blocker)
        # the batch has started once its first step is reported; 29 steps are left
        peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][0] == drop, 300)
        peer.send("/audiohost/cancel", drop)

        peer.wait_for(lambda m: m[0] == "/audiohost/job/cancelled" and m[1][0] == drop, 300)
        done_first = peer.wait_for(lambda m: m[0] == "/audiohost/job/done" and m[1][0] == first and m[1][-1] == "first", 300)
        done_second = peer.wait_for(lambda m: m[0] == "/audiohost/job/done" and m[1][0] == first and m[1][-1] == "second", 30)
        assert done_first[1][1:-1] == done_second[1][1:-1] and len(done_first[1]) == 3  # the same one take, to both
        assert done_or_failed(peer, keep, 300)[0] == "/audiohost/job/done"
    finally:
        daemon.stop()
        peer.close()
    states = {e.id: e.state for e in entries(state)}
    assert states[keep] == "done" and states[drop] == "cancelled" and states[first] == "done"
    seeds = [p.read_text() for p in files_under(project / "renders", "*.json")]
    assert not any('"seed": 601' in s for s in seeds)  # nothing of the cancelled job was written
    assert sum('"seed": 600' in s for s in seeds) == 1 and sum('"seed": 500' in s for s in seeds) == 1


def test_requests_that_cannot_be_satisfied_are_refused_at_once(tmp_path):
    project = make_project(tmp_path / "proj")
    write_tone(project / "stems" / "short.wav", 1.0, 44100)
    write_tone(project / "stems" / "long.wav", 8.0, 16000)
    (project / "stems" / "notes.wav").write_text("this is not audio")
    state = tmp_path / "state"
    daemon, peer = start_daemon(project, state)
    try:
        daemon.wait_ready(peer)
        cases = [
            (("/audiohost/inpaint", "proj", "stems/short.wav", 2.0, 2.5), "outside the file"),
            (("/audiohost/inpaint", "proj", "stems/long.wav", 1.0, 6.0), "at most 4.12 s can be filled"),
            (("/audiohost/restyle", "proj", "stems/notes.wav", "a radio"), "not a readable audio file"),
            (("/audiohost/restyle", "proj", "stems/short.wav", "a radio", 0.5, 0.5, 0.8), "ends past the end of"),
            (("/audiohost/foley", "proj", "quik", 1.0), "did you mean 'quick'?"),
        ]
        for args, reason in cases:
            peer.received.clear()
            peer.send(*args)
            _, reply = peer.wait_for(lambda m: m[0] in ("/audiohost/error", "/audiohost/job/queued"), 10)
            assert reason in reply[1], (args, reply)
        assert entries(state) == []  # nothing was queued to fail minutes later
        peer.send("/audiohost/restyle", "proj", "stems/short.wav", "quick-restyle", 0.5, 0.25, 0.5, "region")
        address, args = done_or_failed(peer, job_id_of(peer, "region"))
        assert address == "/audiohost/job/done", args
        assert sf.info(args[1]).frames == 24000  # exactly the 0.5 s region, at the project's 48 kHz
    finally:
        daemon.stop()
        peer.close()


def test_a_full_queue_refuses_a_cue_sheet_whole_and_folder_work_waits_for_room(tmp_path):
    cues = "".join(f'[[cue]]\nname = "c{k}"\npreset = "quick"\nseed = {k}\n\n' for k in range(5))
    project = make_project(tmp_path / "proj")
    project.joinpath("cues.toml").write_text("")
    (project / "sheet-later.toml").write_text(cues)
    config = tmp_path / "host.toml"
    config.write_text("queue_bound = 3\nsettle_seconds = 0.3\n")
    state = tmp_path / "state"
    peer = OscPeer(0)
    daemon = Daemon([project], state, peer.reply_port, config=config).start()
    peer.daemon = ("127.0.0.1", daemon.port)
    try:
        daemon.wait_ready(peer)
        peer.send("/audiohost/foley", "proj", "slow", 2.0, 1, 1, "blocker")
        blocker = job_id_of(peer, "blocker")
        peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][0] == blocker, 120)
        # a cue sheet of 5 into a queue with room for 2: refused whole, nothing queued
        (project / "cues.toml").write_text(cues)
        # (the watcher queues the same cues as folder work; wait for that to settle first)
        wait_until(lambda: len(entries(state)) >= 3, 120, "folder cues")
        before = len(entries(state))
        peer.received.clear()
        peer.send("/audiohost/render", "proj", "", "sheet")
        _, reply = peer.wait_for(lambda m: m[0] in ("/audiohost/error", "/audiohost/job/queued"), 10)
        assert reply[0] == "/audiohost/render" and "nothing was queued" in reply[1], reply
        assert len(entries(state)) == before
        # 8 stems dropped into a full queue: none is lost, all are rendered once room comes
        for k in range(8):
            write_tone(project / "restyle" / f"s{k}.wav", 0.5, 16000, freq=200 + 40 * k)
        peer.send("/audiohost/cancel", blocker)
        wait_until(lambda: len(files_under(project / "renders" / "restyle", "*.wav")) >= 8, 480, "every stem to render")
        wait_until(lambda: len(files_under(project / "renders" / "foley", "c*.wav")) >= 5, 300, "every cue to render")
    finally:
        daemon.stop()
        peer.close()
    for k in range(8):
        assert len(files_under(project / "renders" / "restyle" / f"s{k}", "*.wav")) == 1
    assert all(e.state in ("done", "cancelled") for e in entries(state))


def test_subscriptions_and_failures_are_remembered_across_a_restart(tmp_path):
    project = make_project(tmp_path / "proj")
    (project / "project.toml").write_text('inpaint_preset = "quick-inpaint"\nrestyle_preset = "quick-restyle"\n')
    write_tone(project / "inpaint" / "no-gaps.wav", 1.0, 16000)  # nothing silent to fill: fails when rendered
    state = tmp_path / "state"
    daemon, peer = start_daemon(project, state)
    try:
        daemon.wait_ready(peer)
        peer.send("/audiohost/subscribe", peer.reply_port)
        peer.wait_for(lambda m: m[0] == "/audiohost/subscribed", 5)
        failed = wait_until(lambda: [e for e in entries(state) if e.job.name == "no-gaps" and e.state == "failed"], 180, "the stem to fail")
        assert "no run of digital silence" in failed[0].error
    finally:
        assert daemon.stop() == 0
    peer.drain()
    daemon, _ = start_daemon(project, state, peer)
    try:
        daemon.wait_ready(peer)
        # the stem that failed is looked at again (it waited in the folder) and not queued again
        wait_until(lambda: b"not retried, job" in daemon.log.read_bytes()[daemon.log_start :], 120, "the failed stem to be passed over")
        # the subscription survived: folder work announces itself to this peer without a new subscribe
        (project / "cues.toml").write_text('[[cue]]\nname = "after-restart"\npreset = "quick"\nseed = 3\n')
        queued = peer.wait_for(lambda m: m[0] == "/audiohost/job/queued", 120)
        address, _ = done_or_failed(peer, queued[1][0])
        assert address == "/audiohost/job/done"
        # the stem that failed was not queued again; changing its sidecar does queue it again
        assert [e.id for e in entries(state) if e.job.name == "no-gaps"] == [failed[0].id]
        (project / "inpaint" / "no-gaps.toml").write_text("gaps = [[0.4, 0.6]]\n")
        wait_until(lambda: [e for e in entries(state) if e.job.name == "no-gaps" and e.state == "done"], 180, "the stem with its new sidecar")
    finally:
        daemon.stop()
        peer.close()


def test_a_job_that_kills_the_daemon_twice_fails_and_the_others_run(tmp_path):
    project = make_project(tmp_path / "proj")
    state = tmp_path / "state"
    peer = OscPeer(0)
    daemon = None
    try:
        for attempt in range(2):
            daemon, _ = start_daemon(project, state, peer)
            daemon.wait_ready(peer)
            if attempt == 0:
                peer.send("/audiohost/foley", "proj", "slow", 2.0, 13, 1, "poison")
                poison = job_id_of(peer, "poison")
                peer.send("/audiohost/foley", "proj", "quick", 1.0, 14, 1, "innocent")
                innocent = job_id_of(peer, "innocent")
            wait_until(lambda: {e.id: e.state for e in entries(state)}.get(poison) == "running", 180, "the poison job to run")
            daemon.kill9()  # as a segfaulting plug-in would
        daemon, _ = start_daemon(project, state, peer)
        daemon.wait_ready(peer)
        wait_until(lambda: {e.id: e.state for e in entries(state)}.get(innocent) == "done", 240, "the other job")
    finally:
        if daemon is not None:
            daemon.stop()
        peer.close()
    final = {e.id: e for e in entries(state)}
    assert final[poison].state == "failed" and final[poison].error == "interrupted twice while rendering; not retried"
    assert b"interrupted twice while rendering" in daemon.log.read_bytes()
