"""End to end: ``audiohost serve`` in its own process on free loopback ports, spoken to over
real UDP OSC as a DAW would."""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host.jobs.journal import Journal
from tests.conftest import write_tone
from tests.oscpeer import Daemon, OscPeer

QUICK = 'kind = "foley"\nprompt = "a quick test sound"\nduration = 1.0\nsteps = 3\ntakes = 1\nguidance = 2.5\n'
SLOW = 'kind = "foley"\nprompt = "a slow test sound"\nduration = 2.0\nsteps = 60\ntakes = 1\n'
QUICK_RESTYLE = 'kind = "restyle"\nprompt = "steel drum"\nsteps = 4\nstrength = 0.5\ntakes = 1\n'
QUICK_INPAINT = 'kind = "inpaint"\nprompt = "room tone"\nsteps = 4\ntakes = 1\n'


def make_project(root: Path, cues: str = "") -> Path:
    (root / "presets").mkdir(parents=True)
    (root / "project.toml").write_text('sample_rate = 48000\nbit_depth = 24\nloudness = -20.0\nrestyle_preset = "quick-restyle"\n')
    (root / "presets" / "quick.toml").write_text(QUICK)
    (root / "presets" / "slow.toml").write_text(SLOW)
    (root / "presets" / "quick-restyle.toml").write_text(QUICK_RESTYLE)
    (root / "presets" / "quick-inpaint.toml").write_text(QUICK_INPAINT)
    (root / "cues.toml").write_text(cues)
    return root


def files_under(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if p.is_file())


def start_daemon(project: Path, state: Path, peer: OscPeer = None) -> tuple[Daemon, OscPeer]:
    """A daemon serving ``project``, and a peer talking to it (a new one unless given)."""
    peer = peer or OscPeer(0)
    daemon = Daemon([project], state, peer.reply_port).start()
    peer.daemon = ("127.0.0.1", daemon.port)
    return daemon, peer


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("served")
    project = make_project(base / "proj")
    daemon, peer = start_daemon(project, base / "state")
    try:
        daemon.wait_ready(peer)
        yield daemon, peer, project, base / "state"
    finally:
        code = daemon.stop()
        peer.close()
    assert code == 0, daemon.log.read_text()[-2000:]


def job_id_of(peer: OscPeer, tag: str, timeout: float = 10.0) -> int:
    return peer.wait_for(lambda m: m[0] == "/audiohost/job/queued" and m[1][-1] == tag, timeout)[1][0]


def done_or_failed(peer: OscPeer, job_id: int, timeout: float = 90.0):
    return peer.wait_for(lambda m: m[0] in ("/audiohost/job/done", "/audiohost/job/failed") and m[1][0] == job_id, timeout)


def test_ping_answers_pong_with_the_version(served):
    import host

    _, peer, _, _ = served
    assert peer.ping() == [host.__version__]


def test_foley_request_is_queued_reports_progress_and_delivers_whole_files(served):
    _, peer, project, _ = served
    peer.send("/audiohost/foley", "proj", "quick", 1, 1234, 2, "cue-A")  # ints where Max would send them
    job_id = job_id_of(peer, "cue-A")
    address, args = done_or_failed(peer, job_id)
    assert address == "/audiohost/job/done", args
    paths = [Path(p) for p in args[1:-1]]
    assert args[-1] == "cue-A" and len(paths) == 2
    progress = [m[1] for m in peer.received if m[0] == "/audiohost/job/progress" and m[1][0] == job_id]
    assert progress and all(p[-1] == "cue-A" for p in progress)
    assert max(p[1] for p in progress) == pytest.approx(1.0)
    for path in paths:
        assert path.parent == project / "renders" / "foley" / "quick"
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (48000, 1, 48000, "PCM_24")
        assert path.with_suffix(".json").is_file()
    assert not files_under(project, "*.partial")


def test_requests_that_cannot_be_taken_get_one_error_and_change_nothing(served, tmp_path):
    _, peer, project, state = served
    journal = Journal(state / "journal.sqlite")
    before = sum(journal.counts().values())
    outside = tmp_path / "outside.wav"
    write_tone(outside, 0.5, 16000)
    (project / "restyle-link.wav").symlink_to(outside)
    cases = [
        (("/audiohost/restyle", "proj", "/etc/passwd", "metal"), "outside the project roots"),
        (("/audiohost/restyle", "proj", str(outside), "metal"), "outside the project roots"),
        (("/audiohost/restyle", "proj", "restyle-link.wav", "metal"), "outside the project roots"),  # symlink out
        (("/audiohost/restyle", "proj", "../../../etc/passwd", "metal"), "outside the project roots"),
        (("/audiohost/foley", "proj", 3), "must be text"),
        (("/audiohost/foley", "nosuchproject", "rain"), "unknown project"),
        (("/audiohost/foley", "proj", "quick", "long", "my-tag"), "must be a number"),
        (("/audiohost/foley", "proj", "quick", -2.0), "duration"),
        (("/audiohost/restyle", "proj", "missing.wav", "a prompt", 0.5), "is not a file"),
        (("/audiohost/inpaint", "proj", "missing.wav", 2.0, 1.0), "start must be"),
        (("/audiohost/launch-missiles",), "unknown address"),
        (("/audiohost/foley",), "needs"),
    ]
    for args, reason in cases:
        peer.received.clear()
        peer.send(*args)
        address, reply = peer.wait_for(lambda m: m[0] == "/audiohost/error", 5)
        assert reply[0] == args[0] and reason in reply[1], (args, reply)
        assert len(reply[1]) < 400 and "\n" not in reply[1]
    assert sum(journal.counts().values()) == before
    journal.close()


def test_garbage_and_wrong_types_leave_the_daemon_answering(served):
    _, peer, _, _ = served
    rng = random.Random(5)
    addresses = ["/audiohost/foley", "/audiohost/ping", "/audiohost/render", "/audiohost/cancel", "/audiohost/status", "/audiohost/inpaint", "/x", "/audiohost/*", "/audiohost/{foley,ping}"]
    for i in range(2200):
        kind = i % 4
        if kind == 0:  # random bytes
            peer.send_raw(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200))))
        elif kind == 1:  # a real address with a lying type tag
            peer.send_raw(b"/audiohost/foley\x00\x00\x00\x00,iii\x00\x00\x00\x00" + bytes(rng.randint(0, 6)))
        elif kind == 2:  # well-formed messages with wrong-typed or absurd arguments
            args = [rng.choice([rng.random() * 1e9, -1, "", "x" * rng.randint(0, 300), 2**31 - 1, float("nan")]) for _ in range(rng.randint(0, 7))]
            peer.send(rng.choice(addresses[2:]), *args)
        else:  # a truncated bundle
            peer.send_raw(b"#bundle\x00" + struct.pack(">Q", 1) + struct.pack(">i", 4000) + b"/audiohost/ping")
        if i % 200 == 0:
            time.sleep(0.05)  # let the socket drain, as a real network would
    # still answering: the refusals of 2200 datagrams may still be arriving (and some dropped by
    # this socket's buffer), so drain, then ask until the pong comes
    deadline = time.monotonic() + 120
    while True:
        peer.drain()
        try:
            assert peer.ping(timeout=10)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    peer.send("/audiohost/stats")
    _, stats = peer.wait_for(lambda m: m[0] == "/audiohost/stats", 5)
    assert stats[2] > 0  # malformed datagrams were counted


def test_stem_copied_slowly_into_restyle_is_rendered_once_after_it_is_complete(served, tmp_path):
    _, peer, project, state = served
    peer.send("/audiohost/subscribe", peer.reply_port)
    peer.wait_for(lambda m: m[0] == "/audiohost/subscribed", 5)
    source = tmp_path / "slow-copy.wav"
    data = write_tone(source, 2.0, 44100, channels=2)
    blob = source.read_bytes()
    target = project / "restyle" / "slow-copy.wav"
    chunks = 10
    with open(target, "wb") as out:
        for k in range(chunks):
            out.write(blob[k * len(blob) // chunks : (k + 1) * len(blob) // chunks])
            out.flush()
            time.sleep(0.2)
    copy_done = time.monotonic()
    queued = peer.wait_for(lambda m: m[0] == "/audiohost/job/queued", 20)
    assert time.monotonic() >= copy_done
    address, args = done_or_failed(peer, queued[1][0])
    assert address == "/audiohost/job/done", args
    out = Path(args[1])
    assert out.parent == project / "renders" / "restyle" / "slow-copy"
    assert sf.info(str(out)).frames == round(len(data) * 48000 / 44100)
    time.sleep(2.0)  # anything the copy's many events might have queued would show up now
    journal = Journal(state / "journal.sqlite")
    stem_jobs = [e for e in journal.entries() if e.job.name == "slow-copy"]
    journal.close()
    assert len(stem_jobs) == 1 and stem_jobs[0].state == "done"
    assert len(files_under(project / "renders" / "restyle" / "slow-copy", "*.wav")) == 1


def test_compatible_foley_jobs_share_denoising_calls(served):
    _, peer, project, _ = served
    peer.send("/audiohost/stats")
    calls_before = peer.wait_for(lambda m: m[0] == "/audiohost/stats", 5)[1][1]
    peer.received.clear()
    peer.send("/audiohost/foley", "proj", "slow", 2.0, 1, 1, "busy")  # keeps the worker busy meanwhile
    busy = job_id_of(peer, "busy")
    peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][0] == busy, 30)
    ids = []
    for k in range(4):
        peer.send("/audiohost/foley", "proj", "quick", 1.0, 100 + k, 1, f"b{k}")
        ids.append(job_id_of(peer, f"b{k}"))
    for job_id in [busy, *ids]:
        assert done_or_failed(peer, job_id, 120)[0] == "/audiohost/job/done"
    peer.received.clear()
    peer.send("/audiohost/stats")
    calls_after = peer.wait_for(lambda m: m[0] == "/audiohost/stats", 5)[1][1]
    assert calls_after - calls_before < 5  # 5 jobs, fewer model calls (2: the busy one, then one batch)


def test_cancel_stops_a_running_job_and_writes_nothing(served):
    _, peer, project, state = served
    peer.received.clear()
    peer.send("/audiohost/foley", "proj", "slow", 2.0, 77, 1, "to-cancel")
    job_id = job_id_of(peer, "to-cancel")
    peer.send("/audiohost/foley", "proj", "slow", 2.0, 78, 1, "waiting")
    waiting = job_id_of(peer, "waiting")
    peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][0] == job_id, 30)
    peer.send("/audiohost/cancel", waiting)  # still queued: cancelled at once
    peer.wait_for(lambda m: m[0] == "/audiohost/job/cancelled" and m[1][0] == waiting, 10)
    peer.send("/audiohost/cancel", job_id)  # running: stops at the next step
    peer.wait_for(lambda m: m[0] == "/audiohost/cancelling" and m[1][0] == job_id, 10)
    peer.wait_for(lambda m: m[0] == "/audiohost/job/cancelled" and m[1][0] == job_id, 10)
    time.sleep(0.3)
    for cancelled in (job_id, waiting):  # one announcement each, not two
        assert sum(1 for m in peer.received if m[0] == "/audiohost/job/cancelled" and m[1][0] == cancelled) == 1
    journal = Journal(state / "journal.sqlite")
    entry = journal.get(job_id)
    journal.close()
    assert entry.state == "cancelled" and entry.progress < 1.0
    for sidecar in files_under(project / "renders", "*.json"):
        assert '"seed": 77' not in sidecar.read_text() and '"seed": 78' not in sidecar.read_text()


def test_kill_9_mid_render_then_restart_finishes_every_job_exactly_once(tmp_path):
    cues = "".join(f'[[cue]]\nname = "cue{k}"\npreset = "slow"\nsteps = 25\ntakes = 2\nseed = {k}\n\n' for k in range(3))
    project = make_project(tmp_path / "proj", cues)
    state = tmp_path / "state"
    daemon, peer = start_daemon(project, state)
    try:
        daemon.wait_ready(peer)
        peer.send("/audiohost/foley", "proj", "quick", 1.0, 5, 3, "osc-job")
        osc_job = job_id_of(peer, "osc-job")
        peer.send("/audiohost/subscribe", peer.reply_port)
        # kill it in the middle of a render, after at least one take has been written
        deadline = time.monotonic() + 120
        while not files_under(project / "renders" / "foley", "cue*.wav") and time.monotonic() < deadline:
            time.sleep(0.05)
        peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and 0 < m[1][1] < 1, 60)
        daemon.kill9()
        journal = Journal(state / "journal.sqlite")
        assert journal.counts()["running"] >= 1  # it really died mid-job
        accepted = [e.id for e in journal.entries()]
        journal.close()

        daemon, _ = start_daemon(project, state, peer)  # same journal, same reply port, a new OSC port
        daemon.wait_ready(peer)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            journal = Journal(state / "journal.sqlite")
            entries = {e.id: e for e in journal.entries()}
            journal.close()
            if all(entries[i].state in ("done", "failed", "cancelled") for i in accepted):
                break
            time.sleep(0.5)
        assert all(entries[i].state == "done" for i in accepted), {i: entries[i].state for i in accepted}
        assert osc_job in accepted
    finally:
        daemon.stop()
        peer.close()
    for k in range(3):
        takes = files_under(project / "renders" / "foley" / f"cue{k}", "*.wav")
        assert len(takes) == 2, takes  # no duplicates, none missing
        for take in takes:
            assert sf.info(str(take)).frames == 96000
            assert take.with_suffix(".json").is_file()
    assert len(files_under(project / "renders" / "foley" / "quick", "*.wav")) == 3
    assert not files_under(project, "*.partial")
    orphans = [j for j in files_under(project / "renders", "*.json") if not any(j.with_suffix(s).exists() for s in (".wav", ".flac"))]
    assert not orphans


def test_sigterm_leaves_the_running_job_queued_for_next_time(tmp_path):
    project = make_project(tmp_path / "proj")
    state = tmp_path / "state"
    daemon, peer = start_daemon(project, state)
    try:
        daemon.wait_ready(peer)
        peer.send("/audiohost/foley", "proj", "slow", 2.0, 9, 1, "long")
        job_id = job_id_of(peer, "long")
        peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][0] == job_id, 30)
    finally:
        code = daemon.stop()
        peer.close()
    assert code == 0
    journal = Journal(state / "journal.sqlite")
    assert journal.get(job_id).state == "queued"
    journal.close()
    assert not files_under(project / "renders", "*.wav")


def test_saving_the_cue_sheet_renders_only_the_cues_that_changed(served):
    _, peer, project, state = served
    peer.send("/audiohost/subscribe", peer.reply_port)
    peer.wait_for(lambda m: m[0] == "/audiohost/subscribed", 5)

    def sheet(second_prompt: str) -> str:
        return (
            '[[cue]]\nname = "sheet-a"\npreset = "quick"\nseed = 1\n\n'
            f'[[cue]]\nname = "sheet-b"\npreset = "quick"\nseed = 2\nprompt = "{second_prompt}"\n'
        )

    def sheet_jobs() -> list:
        journal = Journal(state / "journal.sqlite")
        found = [e for e in journal.entries() if e.job.name.startswith("sheet-")]
        journal.close()
        return found

    def wait_all_done(count: int) -> list:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = sheet_jobs()
            if len(jobs) >= count and all(e.state == "done" for e in jobs):
                return jobs
            time.sleep(0.2)
        raise AssertionError(sheet_jobs())

    (project / "cues.toml").write_text(sheet("a creaking door"))
    first = wait_all_done(2)
    assert sorted(e.job.name for e in first) == ["sheet-a", "sheet-b"]
    (project / "cues.toml").write_text(sheet("a slamming door"))
    time.sleep(1.5)
    second = wait_all_done(3)
    assert sorted(e.job.name for e in second) == ["sheet-a", "sheet-b", "sheet-b"]
    assert len(files_under(project / "renders" / "foley" / "sheet-a", "*.wav")) == 1
    assert len(files_under(project / "renders" / "foley" / "sheet-b", "*.wav")) == 2

    # asking for one cue over OSC answers with its takes and renders nothing new
    peer.received.clear()
    peer.send("/audiohost/render", "proj", "sheet-a", "again")
    job_id = job_id_of(peer, "again")
    address, args = done_or_failed(peer, job_id)
    assert address == "/audiohost/job/done" and Path(args[1]).name == "sheet-a_t01.wav"
    assert len(files_under(project / "renders" / "foley" / "sheet-a", "*.wav")) == 1
    peer.send("/audiohost/render", "proj", "no-such-cue")
    assert "no valid cue" in peer.wait_for(lambda m: m[0] == "/audiohost/error", 5)[1][1]


def test_restyle_and_inpaint_requests_over_osc(served):
    _, peer, project, _ = served
    stems = project / "stems"
    original = write_tone(stems / "take.wav", 2.5, 44100, channels=2, subtype="PCM_24")
    peer.received.clear()
    peer.send("/audiohost/restyle", "proj", "stems/take.wav", "quick-restyle", 0.7, "rs")
    address, args = done_or_failed(peer, job_id_of(peer, "rs"))
    assert address == "/audiohost/job/done", args
    assert sf.info(args[1]).frames == round(len(original) * 48000 / 44100)

    peer.send("/audiohost/inpaint", "proj", str(stems / "take.wav"), 1.0, 1.4, "quick-inpaint", "ip")
    address, args = done_or_failed(peer, job_id_of(peer, "ip"))
    assert address == "/audiohost/job/done", args
    filled, rate = sf.read(args[1], dtype="int32")
    source, _ = sf.read(str(stems / "take.wav"), dtype="int32")
    assert rate == 44100 and filled.shape == source.shape and sf.info(args[1]).subtype == "PCM_24"
    edge = int(0.01 * rate)
    a, b = round(1.0 * rate) - edge, round(1.4 * rate) + edge
    assert np.array_equal(filled[:a], source[:a]) and np.array_equal(filled[b:], source[b:])
    assert not np.array_equal(filled[a:b], source[a:b])
