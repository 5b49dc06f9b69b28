"""End to end, real daemon processes: the journal, the locks and paths confined at the moment of use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host.jobs.journal import Journal
from tests.conftest import write_tone
from tests.oscpeer import Daemon, OscPeer, free_udp_port
from tests.test_daemon import done_or_failed, files_under, job_id_of, make_project, start_daemon

LONG = 'kind = "foley"\nprompt = "a long test sound"\nduration = 2.0\nsteps = 40\ntakes = 2\n'


def run_serve(projects: list[Path], state: Path, extra: list[str] = (), timeout: float = 120) -> tuple[int, str]:
    """``audiohost serve`` that is expected to stop by itself: (exit code, what it printed)."""
    args = Daemon(projects, state, free_udp_port(), extra=list(extra)).args
    done = subprocess.run(args, capture_output=True, timeout=timeout, env=dict(os.environ))
    return done.returncode, (done.stdout + done.stderr).decode()


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def journal_entry(state: Path, job_id: int):
    journal = Journal(state / "journal.sqlite")
    try:
        return journal.get(job_id)
    finally:
        journal.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("safety")
    project = make_project(base / "proj")
    (project / "presets" / "long.toml").write_text(LONG)
    daemon, peer = start_daemon(project, base / "state")
    try:
        daemon.wait_ready(peer)
        yield daemon, peer, project, base / "state"
    finally:
        code = daemon.stop()
        peer.close()
    assert code == 0, daemon.log.read_text()[-2000:]


def test_a_second_daemon_on_the_same_state_directory_is_refused_and_touches_nothing(served):
    daemon, peer, project, state = served
    peer.received.clear()
    peer.send("/audiohost/foley", "proj", "long", 2.0, 4242, 2, "first")
    job_id = job_id_of(peer, "first")
    peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][0] == job_id, 60)
    before = journal_entry(state, job_id)
    assert before.state == "running"

    code, output = run_serve([project], state)  # the reported case: it re-queued the running job, then failed to bind
    assert code != 0
    [line] = error_lines(output)
    assert line.startswith(f"error: state directory {state}: in use by pid {daemon.proc.pid} (audiohost serve)")
    assert "Traceback" not in output
    after = journal_entry(state, job_id)
    # not re-queued behind the first daemon's back (it may have finished meanwhile)
    assert after.state in ("running", "done") and after.attempts == before.attempts and "re-queued" not in output

    address, args = done_or_failed(peer, job_id, 180)
    assert address == "/audiohost/job/done" and len(args) == 4  # id, 2 takes, tag
    assert len(files_under(project / "renders" / "foley" / "long", "*.wav")) == 2  # not 4


def test_a_second_daemon_on_the_same_project_is_refused_naming_the_first(served, tmp_path):
    daemon, peer, project, _ = served
    code, output = run_serve([project], tmp_path / "other-state")
    assert code != 0 and "Traceback" not in output
    [line] = error_lines(output)
    assert line.startswith(f"error: project {project}: in use by pid {daemon.proc.pid} (audiohost serve)")
    assert peer.ping()


def test_render_while_a_daemon_serves_the_project_is_refused_naming_the_daemon(served):
    daemon, _, project, _ = served
    (project / "cues.toml").write_text('[[cue]]\nname = "both-want-it"\npreset = "quick"\nseed = 5\n')
    done = subprocess.run([sys.executable, "-m", "host", "render", str(project), "--model", "tiny", "--force"], capture_output=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.strip().splitlines() == [err.strip()] and f"in use by pid {daemon.proc.pid} (audiohost serve)" in err


def test_an_input_swapped_for_a_symlink_or_a_fifo_after_acceptance_is_not_read(served, tmp_path):
    """The reported case: an inpaint of victim.wav swapped for ../secret.wav delivered the secret;
    a FIFO swapped in hung the worker for good."""
    _, peer, project, _ = served
    secret = project.parent / "secret.wav"
    write_tone(secret, 2.5, 44100, freq=1000.0)
    victim, piped = project / "stems" / "victim.wav", project / "stems" / "piped.wav"
    write_tone(victim, 2.5, 44100)
    write_tone(piped, 2.5, 44100)
    peer.received.clear()
    peer.send("/audiohost/foley", "proj", "long", 2.0, 99, 1, "busy")  # the worker is busy while the swaps happen
    busy = job_id_of(peer, "busy")
    peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][0] == busy, 60)
    peer.send("/audiohost/inpaint", "proj", "stems/victim.wav", 1.0, 1.4, "quick-inpaint", "swap")
    peer.send("/audiohost/inpaint", "proj", "stems/piped.wav", 1.0, 1.4, "quick-inpaint", "fifo")
    swapped, fifo = job_id_of(peer, "swap"), job_id_of(peer, "fifo")
    assert journal_entry(served[3], busy).state == "running"  # still busy: the two wait
    victim.unlink()
    victim.symlink_to(Path("..") / ".." / "secret.wav")  # out of stems/, out of the project
    piped.unlink()
    os.mkfifo(piped)

    address, args = done_or_failed(peer, swapped, 180)
    assert address == "/audiohost/job/failed" and "outside the project roots" in args[1], args
    address, args = done_or_failed(peer, fifo, 60)  # promptly: the worker is not stuck on the FIFO
    assert address == "/audiohost/job/failed" and "FIFO" in args[1], args
    assert peer.ping()
    for name in ("victim", "piped"):
        assert not files_under(project / "renders" / "inpaint" / name, "*.wav")
    assert done_or_failed(peer, busy)[0] == "/audiohost/job/done"


def test_a_stem_symlinked_into_a_drop_folder_from_outside_is_refused(served):
    _, peer, project, state = served
    peer.send("/audiohost/subscribe", peer.reply_port)
    peer.wait_for(lambda m: m[0] == "/audiohost/subscribed", 5)
    outside = project.parent / "outside.wav"
    write_tone(outside, 1.0, 16000)
    peer.received.clear()
    (project / "restyle" / "x.wav").symlink_to(outside)
    _, args = peer.wait_for(lambda m: m[0] == "/audiohost/error" and "x.wav" in m[1][1], 30)
    assert "outside the project" in args[1]
    time.sleep(1.0)
    journal = Journal(state / "journal.sqlite")
    names = [e.job.name for e in journal.entries()]
    journal.close()
    assert "x" not in names and not (project / "renders" / "restyle" / "x").exists()


@pytest.mark.parametrize("damage", ["truncated to 0 bytes", "damaged pages"])  # garbage: test_journal, status
def test_a_damaged_journal_stops_the_daemon_with_one_line_by_default(tmp_path, damage):
    project = make_project(tmp_path / "proj")
    state = tmp_path / "state"
    state.mkdir()
    journal = Journal(state / "journal.sqlite")
    for k in range(60):
        journal.add(_job(project, k), 0)
    journal.close()
    path = state / "journal.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    data = path.read_bytes()
    content = {"truncated to 0 bytes": b"", "damaged pages": data[:8192] + b"\xee" * 8192 + data[16384:]}[damage]
    path.write_bytes(content)

    code, output = run_serve([project], state)
    assert code != 0 and "Traceback" not in output
    [line] = error_lines(output)
    assert line.startswith(f"error: journal {path} ") and 'damaged_journal = "start-fresh"' in line
    assert path.read_bytes() == content
    assert "ready" not in output


def test_start_fresh_moves_a_damaged_journal_aside_and_serves(tmp_path):
    project = make_project(tmp_path / "proj")
    state = tmp_path / "state"
    state.mkdir()
    (state / "journal.sqlite").write_bytes(b"")  # the reported case: 201 queued jobs gone without a word
    peer = OscPeer(0)
    daemon = Daemon([project], state, peer.reply_port, extra=["--damaged-journal", "start-fresh"]).start()
    peer.daemon = ("127.0.0.1", daemon.port)
    try:
        daemon.wait_ready(peer)
    finally:
        code = daemon.stop()
        peer.close()
    assert code == 0
    aside = [p for p in state.iterdir() if p.name.startswith("journal.sqlite.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes() == b""
    log = daemon.log.read_text()
    assert f"moved it to {aside[0]}" in log and "no job could be read from it" in log


def test_a_project_whose_renders_folder_is_a_symlink_is_not_served(tmp_path):
    project = make_project(tmp_path / "proj")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    theirs = elsewhere / ".backup.tar.0123456789ab.partial"
    theirs.write_bytes(b"someone else's work in progress")
    (project / "renders").symlink_to(elsewhere, target_is_directory=True)
    code, output = run_serve([project], tmp_path / "state")
    assert code != 0 and "Traceback" not in output
    [line] = error_lines(output)
    assert "renders: is a symlink" in line and "will not serve this project" in line
    assert theirs.read_bytes() == b"someone else's work in progress"


def _job(project: Path, k: int):
    from host.config.presets import Preset
    from host.config.schema import Delivery
    from host.jobs.job import Job

    return Job(kind="foley", name=f"cue{k}", project=str(project), preset_name="p", preset_hash="h", preset=Preset(kind="foley", prompt=f"cue {k} " * 40, duration=1.0, steps=3), delivery=Delivery())
