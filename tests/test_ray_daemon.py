"""``audiohost serve --backend ray`` end to end: a daemon process joins the session's local Ray
cluster, starts two CPU replicas of the tiny model and serves OSC as it always does; and a
cluster that cannot be reached at start is one line and a non-zero exit (``auto`` falls back to
rendering in-process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("ray")

from tests.oscpeer import Daemon, OscPeer  # noqa: E402
from tests.test_daemon import done_or_failed, job_id_of, make_project  # noqa: E402


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_daemon_renders_on_two_ray_replicas_over_osc(ray_cluster, tmp_path):
    import ray

    project = make_project(tmp_path / "proj")
    state = tmp_path / "state"
    peer = OscPeer(0)
    daemon = Daemon([project], state, peer.reply_port,
                    extra=["--backend", "ray", "--ray-address", ray_cluster, "--replicas", "2", "--threads", "1", "--batch-size", "1"]).start()
    peer.daemon = ("127.0.0.1", daemon.port)
    try:
        daemon.wait_ready(peer, timeout=180)
        log = daemon.log.read_text()
        assert "starting 2 replica(s) of tiny on the Ray cluster" in log
        # one slow job (progress must come back from its replica) and four quick ones
        peer.send("/audiohost/foley", "proj", "slow", 2.0, 7, 1, "slow")
        for i in range(4):
            peer.send("/audiohost/foley", "proj", "quick", 1.0, 100 + i, 1, f"q{i}")
        ids = {tag: job_id_of(peer, tag, 30) for tag in ["slow", "q0", "q1", "q2", "q3"]}
        paths = []
        for tag, job_id in ids.items():
            address, args = done_or_failed(peer, job_id, 180)
            assert address == "/audiohost/job/done", args
            paths += [a for a in args[1:-1]]
        assert len(paths) == 5 and all(os.path.getsize(p) > 1000 for p in paths)
        time.sleep(0.5)  # any duplicate reply would have arrived by now
        peer.poll(0.2)
        for job_id in ids.values():
            assert sum(1 for a, args in peer.received if a == "/audiohost/job/done" and args[0] == job_id) == 1
        assert any(a == "/audiohost/job/progress" and args[0] == ids["slow"] and 0 < args[1] < 1 for a, args in peer.received)
        # every take once on disk, nothing partial
        on_disk = sorted(p.name for p in (project / "renders").rglob("*") if p.is_file())
        assert len([n for n in on_disk if n.endswith(".wav")]) == 5 and len(on_disk) == 10

        # /audiohost/stats: the six fields, then 2 replicas, then node, device, jobs done, state for each
        peer.send("/audiohost/stats")
        _, stats = peer.wait_for(lambda m: m[0] == "/audiohost/stats", 10)
        assert stats[0] == 5 and stats[6:8] == [2, 0]
        replicas = [stats[8 + 4 * i: 12 + 4 * i] for i in range(2)]
        assert len(stats) == 16
        assert [r[1] for r in replicas] == ["cpu", "cpu"] and [r[3] for r in replicas] == ["idle", "idle"]
        assert sum(r[2] for r in replicas) == 5 and all(r[2] > 0 for r in replicas)  # both rendered
        assert replicas[0][0] == socket.gethostname()

        # audiohost status shows them too
        env = dict(os.environ, COLUMNS="200")
        out = subprocess.run([sys.executable, "-m", "host", "status", "--state-dir", str(state)], capture_output=True, text=True, env=env, timeout=60).stdout
        rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if "idle" in line and socket.gethostname() in line]
        assert "replicas" in out and len(rows) == 2, out
        assert [r[:3] for r in rows] == [["1", socket.gethostname(), "cpu"], ["2", socket.gethostname(), "cpu"]], out
        assert sum(int(r[3]) for r in rows) == 5, out  # jobs done, as the stats reply says
    finally:
        code = daemon.stop()
        peer.close()
    assert code == 0, daemon.log.read_text()[-3000:]
    assert "Traceback" not in daemon.log.read_text()
    assert not (state / "replicas.json").exists()
    # its replicas ended with it: the cluster has every CPU free again
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("CPU", 0) == ray.cluster_resources()["CPU"]


def test_an_unreachable_cluster_at_start_is_one_line_and_a_non_zero_exit(tmp_path):
    project = make_project(tmp_path / "proj")
    port = closed_port()
    args = [sys.executable, "-m", "host", "serve", "--model", "tiny", "--project", str(project), "--state-dir", str(tmp_path / "state"),
            "--osc-port", "0", "--backend", "ray", "--ray-address", f"ray://127.0.0.1:{port}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2
    assert len(lines) == 1, lines
    assert lines[0].endswith(f"--backend ray: cannot reach the Ray cluster at ray://127.0.0.1:{port} (127.0.0.1:{port}): connection refused")
    assert not (tmp_path / "state" / "osc_port").exists()  # it never opened the OSC door


def test_auto_falls_back_to_rendering_in_process_when_no_cluster_is_reachable(tmp_path):
    project = make_project(tmp_path / "proj")
    port = closed_port()
    peer = OscPeer(0)
    daemon = Daemon([project], tmp_path / "state", peer.reply_port, extra=["--backend", "auto", "--ray-address", f"127.0.0.1:{port}"]).start()
    peer.daemon = ("127.0.0.1", daemon.port)
    try:
        daemon.wait_ready(peer, timeout=180)
        warnings = [line for line in daemon.log.read_text().splitlines() if "WARNING" in line and "--backend auto" in line]
        assert len(warnings) == 1 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in warnings[0] and "rendering in-process on this machine instead" in warnings[0]
        peer.send("/audiohost/foley", "proj", "quick", 1.0, 5, 1, "local")
        job_id = job_id_of(peer, "local")
        address, args = done_or_failed(peer, job_id, 120)
        assert address == "/audiohost/job/done" and os.path.getsize(args[1]) > 1000
        peer.send("/audiohost/stats")
        _, stats = peer.wait_for(lambda m: m[0] == "/audiohost/stats", 10)
        assert stats[6:] == [1, 0, socket.gethostname(), "cpu", 1, "idle"]  # one in-process replica
    finally:
        code = daemon.stop()
        peer.close()
    assert code == 0
