"""The Ray backend on a real local Ray cluster: two CPU replicas of the tiny model (and one that
cannot load its model) behind the daemon's real worker, journal and finishing, in this process.

The tests run in order on one set of replicas (starting them costs seconds): the replica that
could not load is reported, jobs spread over the two that did and each is delivered once, a cancel
reaches the replica holding the job, and last a replica is killed mid-render and its job is
finished by the other. The daemon over OSC with ``--backend ray`` is in ``test_ray_daemon.py``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import soundfile as sf

pytest.importorskip("ray")

from host.daemon.config import DaemonConfig  # noqa: E402
from host.daemon.service import RenderHost  # noqa: E402
from host.daemon.worker import Worker  # noqa: E402
from host.errors import InputError  # noqa: E402
from host.intake.osc import replica_fields  # noqa: E402
from host.jobs.journal import PRIORITY_OSC, Journal  # noqa: E402
from host.runner import Runner  # noqa: E402
from tests.test_reliability import Replies  # noqa: E402

QUICK = 'kind = "foley"\nprompt = "a quick test sound"\nduration = 1.0\nsteps = 12\ntakes = 1\n'


class Progress(Replies):
    """Replies that also keep the progress reported per job."""

    def __init__(self):
        super().__init__()
        self.fractions: dict[int, list[float]] = {}

    def progress(self, job_id, fraction, waiters):
        with self.lock:
            self.fractions.setdefault(job_id, []).append(fraction)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def lines(self, level=logging.ERROR) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def farm(ray_cluster, tmp_path_factory):
    """A worker over three replicas on the session's cluster: two of the tiny model, one whose
    model does not exist. Batches of at most two takes."""
    from host.render.ray import ReplicaPool, ReplicaSpec

    base = tmp_path_factory.mktemp("farm")
    project = base / "proj"
    (project / "presets").mkdir(parents=True)
    (project / "project.toml").write_text("sample_rate = 48000\nbit_depth = 24\nloudness = -20.0\n")
    (project / "presets" / "quick.toml").write_text(QUICK)
    records = Records()
    logging.getLogger("host").addHandler(records)
    journal = Journal(base / "journal.sqlite")
    replies = Progress()
    host = RenderHost(DaemonConfig(state_dir=base / "state"), journal, replies, "tiny", "unknown")
    host.add_project(project)
    good = ReplicaSpec(model="tiny", threads=1, batch_size=2)
    bad = ReplicaSpec(model=str(base / "no-such-model"), threads=1, batch_size=2)
    pool = ReplicaPool([good, good, bad])

    def start() -> list[Runner]:
        info = pool.first_ready()
        host.model_id, host.model_revision, host.window_seconds = info.id, info.revision, info.window_seconds
        return [Runner(backend=r, index=host.index) for r in pool.replicas]

    worker = Worker(start, journal, replies, host.wake, 2)
    host.worker = worker
    worker.start()
    try:
        assert worker.ready.wait(180) and worker.load_error is None, worker.load_error
        wait_until(lambda: [r["state"] for r in worker.replicas()] == ["idle", "idle", "failed"], 180, f"replicas up: {worker.replicas()}")
        yield {"host": host, "journal": journal, "replies": replies, "worker": worker, "pool": pool, "project": project, "records": records}
    finally:
        worker.stop()
        worker.join(60)
        pool.close()
        host.intake.shutdown(wait=True)
        journal.close()
        logging.getLogger("host").removeHandler(records)


def submit(farm, name: str, **overrides) -> int:
    host = farm["host"]
    project = host.projects[farm["project"].resolve()]
    job = host.job_for(project, "foley", "quick", {"prompt": f"a quick test sound {name}", **overrides}, "test")
    job = job.model_copy(update={"name": name})
    return host.submit(job, PRIORITY_OSC)


def finished(farm, ids) -> bool:
    return all(farm["journal"].get(i).state in ("done", "failed", "cancelled") for i in ids)


def takes_on_disk(project: Path) -> list[Path]:
    return sorted(p for p in (project / "renders").rglob("*") if p.is_file())


def replica_of(farm, job_id: int):
    for r in farm["worker"].replicas():
        if job_id in r["jobs"]:
            return r
    return None


# --------------------------------------------------------------------------- the tests, in order


def test_a_replica_that_cannot_load_its_model_is_reported_in_one_line_and_the_others_serve(farm):
    worker, records = farm["worker"], farm["records"]
    broken = worker.replicas()[2]
    assert broken["state"] == "failed"
    assert "replica 3" in broken["error"] and "no-such-model" in broken["error"] and "no such folder" in broken["error"]
    reports = [line for line in records.lines() if "replica 3" in line]
    assert reports == [broken["error"]] and "\n" not in reports[0]  # reported once, on one line
    # /audiohost/stats: six fields as before, then the replicas
    stats = farm["host"].stats()
    fields = replica_fields(stats["replicas"])
    assert fields[:2] == [3, 0]
    assert [fields[2 + 4 * i + 1] for i in range(3)] == ["cpu", "cpu", "cpu"]
    assert [fields[2 + 4 * i + 3] for i in range(3)] == ["idle", "idle", "failed"]
    # the two that loaded serve
    job_id = submit(farm, "first")
    wait_until(lambda: finished(farm, [job_id]), 120, "the first job")
    assert farm["journal"].get(job_id).state == "done"


def test_jobs_spread_over_both_replicas_and_each_is_delivered_once(farm):
    journal, worker, replies = farm["journal"], farm["worker"], farm["replies"]
    before = {r["replica"]: r["jobs_done"] for r in worker.replicas()}
    files_before = set(takes_on_disk(farm["project"]))
    ids = [submit(farm, f"spread-{i}") for i in range(6)]
    wait_until(lambda: finished(farm, ids), 240, "six jobs")
    after = {r["replica"]: r["jobs_done"] for r in worker.replicas()}
    rendered = {n: after[n] - before[n] for n in after}
    assert rendered[1] > 0 and rendered[2] > 0 and rendered[3] == 0  # both good replicas worked
    assert rendered[1] + rendered[2] == 6  # and each job rendered once
    new = set(takes_on_disk(farm["project"])) - files_before
    assert len([p for p in new if p.suffix == ".wav"]) == 6 and len([p for p in new if p.suffix == ".json"]) == 6
    assert not [p for p in new if p.suffix not in (".wav", ".json")]  # nothing partial
    for job_id in ids:
        entry = journal.get(job_id)
        assert entry.state == "done" and len(entry.outputs) == 1
        audio, rate = sf.read(entry.outputs[0])
        assert rate == 48000 and len(audio) == 48000  # 1 s at the project's rate, whole
        assert [a for a, args in replies.sent if a == "/audiohost/job/done" and args[0] == job_id] == ["/audiohost/job/done"]
    assert any(replies.fractions.get(i) for i in ids)  # progress came back from the replicas


def test_a_cancel_reaches_the_replica_holding_the_job_and_stops_it(farm):
    journal, replies = farm["journal"], farm["replies"]
    # 999 steps of 4 s: a minute or more of rendering; the cancel must end it within a few steps
    job_id = submit(farm, "long", duration=4.0, steps=999)
    wait_until(lambda: replies.fractions.get(job_id), 120, "progress from the replica")
    holder = replica_of(farm, job_id)
    assert holder is not None and holder["state"] == "busy"
    assert farm["host"].cancel(job_id, "/audiohost/cancel") == "running"
    cancelled_at = time.monotonic()
    # the replica is free again long before the render could have ended (it would take over 60 s)
    wait_until(lambda: next(r for r in farm["worker"].replicas() if r["replica"] == holder["replica"])["state"] == "idle", 30, "the replica to stop")
    assert time.monotonic() - cancelled_at < 30
    assert max(replies.fractions[job_id]) < 0.5
    assert journal.get(job_id).state == "cancelled"
    assert [args for a, args in replies.sent if a == "/audiohost/job/cancelled" and args[0] == job_id] == [[job_id]]
    assert not (farm["project"] / "renders" / "foley" / "long").exists() or not takes_on_disk(farm["project"] / "renders" / "foley" / "long")


def test_a_replica_killed_mid_render_loses_nothing_and_the_job_renders_once_elsewhere(farm):
    import ray

    journal, worker, pool = farm["journal"], farm["worker"], farm["pool"]
    job_id = submit(farm, "killed", steps=150)
    wait_until(lambda: farm["replies"].fractions.get(job_id), 120, "progress from the replica")
    holder = replica_of(farm, job_id)
    assert holder is not None
    ray.kill(pool.replicas[holder["replica"] - 1].actor)  # its process ends mid-render
    wait_until(lambda: finished(farm, [job_id]), 180, "the job to finish elsewhere")
    entry = journal.get(job_id)
    assert entry.state == "done" and len(entry.outputs) == 1, entry
    assert entry.attempts == 2 and entry.interrupted == 0, entry  # claimed twice, not counted as a crash
    folder = Path(entry.outputs[0]).parent
    assert sorted(p.name for p in folder.iterdir()) == ["killed_t01.json", "killed_t01.wav"], list(folder.iterdir())  # once, whole, nothing partial
    assert [a for a, args in farm["replies"].sent if a == "/audiohost/job/done" and args[0] == job_id] == ["/audiohost/job/done"]
    states = {r["replica"]: r for r in worker.replicas()}
    dead = states[holder["replica"]]
    assert dead["state"] == "dead" and "\n" not in dead["error"] and f"replica {holder['replica']}" in dead["error"]
    other = 3 - holder["replica"]
    assert states[other]["state"] == "idle"
    # and the one left goes on serving
    again = submit(farm, "after")
    wait_until(lambda: finished(farm, [again]), 120, "a job after the kill")
    assert journal.get(again).state == "done"


def test_cluster_addresses_are_checked_and_an_unreachable_one_is_one_line():
    from host.render.ray import ClusterUnreachable, _probe, split_address

    assert split_address("ray://head.example:10001") == ("head.example", 10001)
    assert split_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert split_address("[::1]:6379") == ("::1", 6379)
    for bad in ("head", "ray://head", "head:0", "head:70000", "http://head:80", ""):
        with pytest.raises(InputError, match="is not auto, local, HOST:PORT or ray://HOST:PORT"):
            split_address(bad)
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterUnreachable) as err:
        _probe(f"ray://127.0.0.1:{port}", 5)
    assert str(err.value) == f"cannot reach the Ray cluster at ray://127.0.0.1:{port} (127.0.0.1:{port}): connection refused"


def test_replicas_are_planned_from_what_the_cluster_has():
    from host.render.ray import plan_replicas

    assert plan_replicas({"CPU": 4.0}, None, None, None, None) == (4, 0.0, 1)  # CPU-only: one per CPU
    assert plan_replicas({"CPU": 8.0}, None, None, 2, None) == (4, 0.0, 2)
    assert plan_replicas({"CPU": 8.0, "GPU": 3.0}, None, None, None, None) == (3, 1.0, 1)  # one per GPU
    assert plan_replicas({"CPU": 8.0, "GPU": 2.0}, None, 0.5, None, None) == (4, 0.5, 1)  # two share a GPU
    assert plan_replicas({"CPU": 8.0, "GPU": 2.0}, 1, None, None, "cpu") == (1, 0.0, 1)  # --device cpu: CPU replicas
    with pytest.raises(InputError, match="cluster has 0"):
        plan_replicas({"CPU": 4.0}, 2, 1.0, None, None)
    with pytest.raises(InputError, match="needs 8 CPU"):
        plan_replicas({"CPU": 4.0}, None, 0, 8, None)


def test_the_replica_list_in_stats_fits_one_reply_whatever_the_cluster():
    from host.daemon.announce import build

    many = [{"node": "n" * 200, "device": "cuda:0 (GPU 7)" * 5, "jobs_done": 10**6, "state": "busy"} for _ in range(500)]
    fields = replica_fields(many)
    assert fields[:2] == [500, 500]
    assert (len(fields) - 2) % 4 == 0 and 0 < (len(fields) - 2) // 4 < 500
    assert len(build("/audiohost/stats", [1, 2, 3, 4, 5, 6] + fields)) <= 4096


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"backend": "cluster"}, "backend"),
        ({"ray_address": "head"}, "'head' is not auto, local, HOST:PORT or ray://HOST:PORT"),
        ({"ray_address": "ray://head:99999"}, "is not auto, local, HOST:PORT or ray://HOST:PORT"),
        ({"ray_address": "http://head:8265"}, "is not auto, local, HOST:PORT or ray://HOST:PORT"),
        ({"replicas": 0}, "replicas"),
        ({"gpus_per_replica": -1}, "gpus_per_replica"),
    ],
)
def test_bad_cluster_settings_are_refused_in_one_line_naming_the_setting(flags, message, tmp_path):
    from host.daemon.config import load_config

    config = tmp_path / "host.toml"
    config.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in flags.items()))
    with pytest.raises(InputError) as err:
        load_config(config, {})
    assert message in str(err.value) and str(config) in str(err.value) and "\n" not in str(err.value)


def test_cluster_settings_from_the_config_file_and_flags_win():
    from host.daemon.config import load_config

    config = load_config(None, {"backend": "ray", "ray_address": "ray://10.0.0.5:10001", "replicas": 3, "gpus_per_replica": 0.5})
    assert (config.backend, config.ray_address, config.replicas, config.gpus_per_replica) == ("ray", "ray://10.0.0.5:10001", 3, 0.5)
    assert load_config(None, {}).backend == "local"  # nothing changes for one machine
