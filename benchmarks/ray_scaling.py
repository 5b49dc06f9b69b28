"""Benchmark row: scaling out on Ray (``serve --backend ray``), and the ceiling of one daemon.

``row_ray_scaling()`` returns one row (a dict: number, name, result, detail, target and the raw
numbers) for the benchmark table; ``python benchmarks/ray_scaling.py`` runs it alone and prints it.

What it measures, on this machine (CPU only, the tiny model, 1 torch thread per replica):

1. **2 replicas against 1**: a local Ray cluster (started here, stopped at the end) with two CPU
   replicas of the tiny model, driven by the daemon's real worker (one claiming loop per replica,
   journal, planning, the finishing thread writing 48 kHz / 24-bit takes at -23 LUFS) in this
   process. N foley jobs (2 s, 20 DDIM steps, 1 take; batch size 1, so every job is its own
   denoising call) are queued at once and timed until the last is done, with one replica serving,
   then with both; the rounds alternate (1, 2, 2, 1, ...) to cancel drift. Throughput per replica
   = jobs/s divided by the replicas serving.
2. **the daemon's own cost per job**: the same worker over replicas that render instantly
   (precomputed 16 kHz waves), so what is timed is planning, finishing (chain, resampling,
   loudness, true peak, writing the take and its sidecar) and the journal. Its jobs/s is the most
   one daemon can finish however many replicas render for it; planning, finishing and the
   journal are also timed one by one.

The machine has 2 cores that the replicas share with the daemon (and with whatever else runs), so
more than 2 replicas would only measure time-slicing: the per-replica figure at 1 and 2 is what
this machine can say; on a cluster each replica has its own GPU and the daemon's ceiling (2) is
what bounds one daemon.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as H  # noqa: E402

_SEEDS = itertools.count(1)

DURATION = 2.0
STEPS = 20
JOBS = 8  # per round of part 1
ROUNDS = 3  # per replica count (interleaved)
INSTANT_JOBS = 40  # per round of part 2
PRESET = f'kind = "foley"\nprompt = "rain on a tin roof"\nduration = {DURATION}\nsteps = {STEPS}\nguidance = 2.5\ntakes = 1\n'


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _project(root: Path) -> Path:
    (root / "presets").mkdir(parents=True)
    (root / "project.toml").write_text("sample_rate = 48000\nbit_depth = 24\nloudness = -23.0\ntrue_peak = -1.0\n")
    (root / "presets" / "bench.toml").write_text(PRESET)
    return root


class _Quiet:
    """An Announcer stand-in: nothing goes on the wire."""

    def send(self, *a, **k): pass
    def queued(self, *a, **k): pass
    def progress(self, *a, **k): pass
    def done(self, *a, **k): pass
    def failed(self, *a, **k): pass
    def cancelled(self, *a, **k): pass
    def error(self, *a, **k): pass


def _round(runners_for, root: Path, jobs: int, batch_size: int, model_id: str, revision: str) -> float:
    """Seconds from queueing ``jobs`` foley jobs to the last delivered, through a real Worker whose
    slots are ``runners_for(index)``; every take checked (48 kHz, exact length)."""
    import soundfile as sf

    from host.daemon.config import DaemonConfig
    from host.daemon.service import RenderHost
    from host.daemon.worker import Worker
    from host.jobs.journal import PRIORITY_OSC, Journal

    project = _project(root / "proj")
    journal = Journal(root / "journal.sqlite")
    host = RenderHost(DaemonConfig(state_dir=root / "state"), journal, _Quiet(), model_id, revision)
    host.add_project(project)
    worker = Worker(lambda: runners_for(host.index), journal, _Quiet(), host.wake, batch_size)
    host.worker = worker
    worker.start()
    try:
        if not worker.ready.wait(300) or worker.load_error is not None:
            raise H.BenchError(f"the worker did not start: {worker.load_error}")
        deadline = time.monotonic() + 120
        while any(r["state"] != "idle" for r in worker.replicas()):
            if time.monotonic() > deadline:
                raise H.BenchError(f"replicas not ready: {worker.replicas()}")
            time.sleep(0.05)
        lib = host.projects[project.resolve()]
        queued = [host.job_for(lib, "foley", "bench", {"seed": next(_SEEDS)}, "bench") for _ in range(jobs)]
        queued = [j.model_copy(update={"name": f"bench-{i}"}) for i, j in enumerate(queued)]
        t0 = time.monotonic()
        ids = [host.submit(j, PRIORITY_OSC) for j in queued]
        deadline = t0 + 600
        while not all(journal.get(i).state in ("done", "failed", "cancelled") for i in ids):
            if time.monotonic() > deadline:
                raise H.BenchError("jobs did not finish within 600 s")
            time.sleep(0.02)
        seconds = time.monotonic() - t0
        for i in ids:
            entry = journal.get(i)
            if entry.state != "done" or len(entry.outputs) != 1:
                raise H.BenchError(f"job {i} {entry.state}: {entry.error}")
            info = sf.info(entry.outputs[0])
            if info.samplerate != 48000 or info.frames != int(DURATION * 48000):
                raise H.BenchError(f"job {i}: {info.samplerate} Hz, {info.frames} frames")
        return seconds
    finally:
        worker.stop()
        worker.join(60)
        host.intake.shutdown(wait=True)
        journal.close()


class _Instant:
    """A replica that renders instantly: precomputed noise at 16 kHz (what the daemon receives)."""

    def __init__(self, info, batch_size: int):
        import numpy as np

        from host.render.backend import Rendered

        self.info, self.batch_size, self.denoise_calls = info, batch_size, 0
        rng = np.random.default_rng(1)
        self._wave = (0.1 * rng.standard_normal(int(DURATION * info.sample_rate))).astype("float32")
        self._rendered = Rendered

    def render(self, works, progress=None, cancelled=None):
        self.denoise_calls += 1
        return [self._rendered(w.ref, waves=[self._wave.copy() for _ in w.seeds]) for w in works]


def _stage_costs(info, root: Path, n: int = 10) -> dict:
    """Milliseconds per job for planning, finishing and the journal, each alone (median of n)."""
    from host.daemon.config import DaemonConfig
    from host.daemon.service import RenderHost
    from host.jobs.journal import DONE, PRIORITY_OSC, Journal
    from host.runner import Runner

    project = _project(root / "proj")
    journal = Journal(root / "journal.sqlite")
    host = RenderHost(DaemonConfig(state_dir=root / "state"), journal, _Quiet(), info.id, info.revision)
    host.add_project(project)
    lib = host.projects[project.resolve()]
    backend = _Instant(info, 1)
    runner = Runner(backend=backend, index=host.index)
    plan_ms, finish_ms, journal_ms = [], [], []
    try:
        for i in range(n):
            job = host.job_for(lib, "foley", "bench", {"seed": 1000 + i}, "bench").model_copy(update={"name": f"stage-{i}"})
            t0 = time.perf_counter()
            job_id = journal.add(job, PRIORITY_OSC)[0]
            [entry] = journal.take_batch(1)
            t1 = time.perf_counter()
            plan = runner.plan(entry.job)
            t2 = time.perf_counter()
            [rendered] = runner.render([(job_id, plan)])
            t3 = time.perf_counter()
            outcome = runner.finish(plan, rendered, t3)
            t4 = time.perf_counter()
            journal.finish(job_id, DONE, outputs=[str(f) for f in outcome.files])
            t5 = time.perf_counter()
            if not outcome.ok:
                raise H.BenchError(f"finishing failed: {outcome.error}")
            journal_ms.append(1000 * ((t1 - t0) + (t5 - t4)))
            plan_ms.append(1000 * (t2 - t1))
            finish_ms.append(1000 * (t4 - t3))
    finally:
        host.intake.shutdown(wait=True)
        journal.close()
    return {"plan_ms": H.summary(plan_ms), "finish_ms": H.summary(finish_ms), "journal_ms": H.summary(journal_ms)}


def row_ray_scaling() -> dict:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)})
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    import ray

    try:
        from ray._raylet import Config

        Config.initialize("")  # the auth settings above, read again
    except (ImportError, AttributeError):
        pass
    import torch

    torch.set_num_threads(1)
    from host.engine.tiny import tiny_path
    from host.render.ray import ReplicaPool, ReplicaSpec
    from host.runner import Runner

    tiny_path()
    work = Path(tempfile.mkdtemp(prefix="ahbench-ray-"))
    try:
        return _measure(work, ray, ReplicaPool, ReplicaSpec, Runner)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(work: Path, ray, ReplicaPool, ReplicaSpec, Runner) -> dict:  # noqa: N803 - the classes, imported once
    temp = tempfile.mkdtemp(prefix="ahray-", dir="/tmp")
    load = {"start": _loadavg()}
    _log("ray scaling: starting a local Ray cluster and 2 CPU replicas of tiny")
    pool = None
    try:
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level="WARNING", _temp_dir=temp)
        pool = ReplicaPool([ReplicaSpec(model="tiny", threads=1, batch_size=1)] * 2)
        t0 = time.monotonic()
        info = pool.first_ready()
        for r in pool.replicas:
            r.wait_ready()
        load_seconds = time.monotonic() - t0
        times: dict[int, list[float]] = {1: [], 2: []}
        order = [1, 2, 2, 1, 1, 2][: 2 * ROUNDS]
        for k, count in enumerate(order):
            _log(f"ray scaling: round {k + 1}/{len(order)}, {count} replica(s), {JOBS} jobs")
            chosen = pool.replicas[:count]
            times[count].append(_round(lambda index: [Runner(backend=r, index=index) for r in chosen], work / f"r{k}", JOBS, 1, info.id, info.revision))
        load["replicas"] = _loadavg()
        thr = {n: H.summary([JOBS / t for t in times[n]]) for n in times}
        ratio = H.summary([a / b for a, b in zip(times[1], times[2])])  # the k-th round of each (interleaved)
        per_replica = {n: H.summary([JOBS / t / n for t in times[n]]) for n in times}
        holds = ratio.median / 2  # each of 2 replicas, against 1 alone (from the same interleaved pairs as the ratio)
    finally:
        if pool is not None:
            pool.close()
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    # the daemon's own cost: the same worker over instant replicas
    _log("ray scaling: the daemon's own cost per job (instant replicas)")
    instant_times = []
    for k in range(ROUNDS):
        instant_times.append(_round(lambda index: [Runner(backend=_Instant(info, 1), index=index) for _ in range(4)], work / f"i{k}", INSTANT_JOBS, 1, info.id, info.revision))
    ceiling = H.summary([INSTANT_JOBS / t for t in instant_times])
    stages = _stage_costs(info, work / "stages")
    load["end"] = _loadavg()
    replicas_to_fill = ceiling.median / per_replica[1].median
    return {
        "number": "8",
        "name": "Scale-out on Ray: 2 CPU replicas / 1 (tiny, 1 torch thread each), and one daemon's ceiling",
        "result": f"{ratio.fmt(2, 'x')} throughput; per replica {holds:.0%} of one; daemon ceiling {ceiling.fmt(1, ' jobs/s')}",
        "target": "",
        "detail": (
            f"{JOBS} jobs of {DURATION:g} s, {STEPS} steps, batch 1, through the daemon's worker: 1 replica {thr[1].fmt(2, ' jobs/s')}, "
            f"2 replicas {thr[2].fmt(2, ' jobs/s')}; per replica {per_replica[1].fmt(2)} -> {per_replica[2].fmt(2)} jobs/s "
            f"(2 cores shared by both replicas and the daemon: more replicas here would only time-slice); "
            f"replicas loaded in {load_seconds:.0f} s. Daemon alone (4 instant replicas, {INSTANT_JOBS} jobs): {ceiling.fmt(1, ' jobs/s')} finished; "
            f"per job planning {stages['plan_ms'].fmt(1, ' ms')}, finishing (48 kHz/24-bit, -23 LUFS) {stages['finish_ms'].fmt(1, ' ms')}, "
            f"journal {stages['journal_ms'].fmt(1, ' ms')}: one daemon keeps about {replicas_to_fill:.0f} replicas of this speed busy. "
            f"Load average: start {load['start']}, after the replica rounds {load['replicas']}, end {load['end']}"
        ),
        "numbers": {
            "jobs_per_second": {n: thr[n].median for n in thr},
            "ratio_2_over_1": ratio.median,
            "per_replica": {n: per_replica[n].median for n in per_replica},
            "daemon_jobs_per_second": ceiling.median,
            "plan_ms": stages["plan_ms"].median,
            "finish_ms": stages["finish_ms"].median,
            "journal_ms": stages["journal_ms"].median,
        },
    }


if __name__ == "__main__":
    row = row_ray_scaling()
    print(f"| {row['number']} | {row['name']} | {row['result']} | {row['target']} | {row['detail']} |")
