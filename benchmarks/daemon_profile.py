"""Where the daemon's time goes, per thread and per stage: py-spy samples a warm batch-1 daemon
while it renders a burst of row 1's jobs.

py-spy (``pip install py-spy``; Linux needs ptrace rights over the daemon, which a parent
process has) records every thread's Python stack 200 times a second into a Chrome trace. It
pauses the daemon for each sample (a fraction of a millisecond): without pausing
(``--nonblocking``) it reads stacks while they change and put tens of milliseconds per job in
frames that take microseconds (a ``sendto``), so the pausing mode is used. Each thread's
timeline is rebuilt from the trace and every interval is put in one category by the frames on
its stack (the first rule that matches, in the order of ``RULES``). The burst's window runs
from the worker's first batch to the finishing thread's last busy sample, so idle time before
and after the burst is not counted.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench import Bench
from harness import BenchError, Row, log, register

RATE = 200  # samples per second

# (thread, category, frames any of which puts an interval in it); first match wins
RULES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "worker": [
        ("claim the next job (journal)", ("Worker.claim",)),
        ("plan", ("Runner.plan",)),
        ("render: progress and cancel callbacks (OSC, journal)", ("Worker._progress", "Worker._is_cancelled")),
        ("render: prompt encoding", ("encode_prompts",)),
        ("render: scheduler set-up", ("Model.new_scheduler",)),
        ("render: starting noise", ("seeded_noise",)),
        ("render: denoising loop (UNet, scheduler step)", ("denoise",)),
        ("render: decode (VAE, vocoder)", ("decode",)),
        ("hand-off to the finishing thread", ("Finisher.submit",)),
        ("end a job (journal, replies)", ("Worker._conclude", "Worker._release")),
        ("waiting for work (in a burst: after the last job, while it is finished)", ("Event.wait",)),
    ],
    "finish": [
        ("deliver: resample to 48 kHz", ("resample",)),
        ("deliver: effects chain", ("apply_chain", "build_chain")),
        ("deliver: loudness and true peak", ("finish",)),
        ("claim the take (sidecar, fsync)", ("TakeIndex.claim",)),
        ("write the audio (fsync, link)", ("write_audio_new",)),
        ("journal: job done (fsync)", ("Journal.finish",)),
        ("replies (/job/done)", ("Announcer.done",)),
        ("idle", ("_worker",)),
    ],
    "intake": [
        ("accept: journal commit (fsync)", ("Journal.add_all",)),
        ("accept: check the request", ("RenderHost.job_for", "RenderHost.project")),
        ("idle", ("_worker",)),
    ],
    "osc": [
        ("idle", ("_PollLikeSelector.select", "EpollSelector.select", "PollSelector.select", "SelectSelector.select")),
        ("read and dispatch datagrams", ()),
    ],
}
THREADS = {"audiohost-worker": "worker", "audiohost-finish": "finish", "audiohost-intake": "intake", "audiohost-osc": "osc"}
BUSY_FINISH = lambda c: c != "idle"  # noqa: E731


def timelines(trace: list[dict]) -> dict[str, list[tuple[float, float, tuple[str, ...]]]]:
    """thread kind -> [(start s, end s, stack root..leaf)] from py-spy's Chrome trace (B/E events)."""
    by_tid: dict[int, list[dict]] = defaultdict(list)
    for e in trace:
        by_tid[e["tid"]].append(e)
    out = {}
    end_all = max(e["ts"] for e in trace)
    for events in by_tid.values():
        name = events[0]["name"].split(": ", 1)[-1]
        kind = next((k for prefix, k in THREADS.items() if name.startswith(prefix)), None)
        if kind is None:
            continue
        stack: list[str] = []
        spans = []
        i = 0
        while i < len(events):
            ts = events[i]["ts"]
            while i < len(events) and events[i]["ts"] == ts:
                e = events[i]
                if e["ph"] == "B":
                    stack.append(e["name"])
                elif e["ph"] == "E" and stack:
                    stack.pop()
                i += 1
            nxt = events[i]["ts"] if i < len(events) else end_all
            if nxt > ts:
                spans.append((ts / 1e6, nxt / 1e6, tuple(stack[1:])))  # stack[0] is the thread's own name
        out[kind] = spans
    return out


def category(kind: str, stack: tuple[str, ...]) -> str:
    for name, frames in RULES[kind]:
        if not frames or any(f in stack for f in frames):
            return name
    return "other"


def breakdown(trace: list[dict]) -> tuple[dict[str, dict[str, float]], float]:
    """{thread kind: {category: seconds}} within the burst's window, and the window's length."""
    lines = timelines(trace)
    if "worker" not in lines or "finish" not in lines:
        raise BenchError("the profile has no worker or finishing thread")
    starts = [a for a, _b, s in lines["worker"] if "Worker._render" in s]
    ends = [b for _a, b, s in lines["finish"] if BUSY_FINISH(category("finish", s))]
    if not starts or not ends:
        raise BenchError("the profile caught no job being claimed or finished")
    w0, w1 = min(starts), max(ends)
    out: dict[str, dict[str, float]] = {}
    for kind, spans in lines.items():
        acc: dict[str, float] = defaultdict(float)
        for a, b, stack in spans:
            a, b = max(a, w0), min(b, w1)
            if b > a:
                acc[category(kind, stack)] += b - a
        out[kind] = dict(acc)
    return out, w1 - w0


def daemon_profile(bench: Bench) -> list[Row]:
    """The warm batch-1 daemon profiled per thread and stage (py-spy) during a burst of row 1's jobs."""
    cfg = bench.cfg
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        bench.notes.append("The daemon profile needs py-spy (`pip install 'py-spy>=0.4,<0.5'`), which is not installed here.")
        return []
    d = bench.daemon("bs1", 1)
    out = bench.work / "daemon-profile.json"
    proc = subprocess.Popen([spy, "record", "--pid", str(d.daemon.pid), "--rate", str(RATE), "--format", "chrometrace",
                             "--output", str(out), "--threads", "--idle"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    register(proc)
    time.sleep(cfg.profile_seconds)  # attached before the burst
    n = cfg.jobs * 4
    wall, logged, _cpu = d.burst(bench, "profile", n)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise BenchError("py-spy did not stop") from None
    if not out.exists():
        bench.notes.append(f"The daemon profile could not be taken: py-spy said {err.decode(errors='replace').strip()[-300:]}")
        return []
    parts, window = breakdown(json.loads(out.read_text()))
    log(f"profile: {n} jobs in {wall:.2f} s, sampled window {window:.2f} s")
    bench.sections.append(("Profile: the daemon per thread and stage", _markdown(parts, window, wall, n, logged, cfg.jobs)))
    return []


def _markdown(parts: dict, window: float, wall: float, n: int, logged: dict, burst: int) -> str:
    L = [f"py-spy sampled a warm `audiohost serve --batch-size 1` ({RATE} samples/s) while it rendered a burst of "
         f"{n} of row 1's jobs ({wall:.2f} s from the first request to the last `/job/done`; the sampled window, from the "
         f"worker's first batch to the finishing thread's last busy sample, {window:.2f} s). Milliseconds per job, by the "
         "frames on each thread's stack (`benchmarks/daemon_profile.py`):\n",
         "| thread | stage | ms per job | share of the window |", "|---|---|---:|---:|"]
    for kind in ("worker", "finish", "intake", "osc"):
        got = parts.get(kind, {})
        for name, _frames in RULES[kind] + [("other", ())]:
            if name in got and got[name] * 1000 / n >= 0.05:
                L.append(f"| {kind} | {name} | {got[name] * 1000 / n:.1f} | {got[name] / window:.1%} |")
    worker = parts.get("worker", {})
    model = sum(v for k, v in worker.items() if k.startswith("render:") and "callbacks" not in k)
    host = sum(v for k, v in worker.items() if not k.startswith("render:") and not k.startswith("waiting for work")) + worker.get(
        "render: progress and cancel callbacks (OSC, journal)", 0.0)
    fin = sum(v for k, v in parts.get("finish", {}).items() if k != "idle")
    if logged:
        stages = list(logged.values())
        L.append("")
        L.append(f"As the daemon logged the same {len(stages)} jobs (median): plan {_med(s[0] for s in stages) * 1000:.1f} ms, "
                 f"render {_med(s[1] for s in stages) * 1000:.0f} ms, finish {_med(s[2] for s in stages) * 1000:.0f} ms.")
    L.append("")
    L.append(f"On the worker thread, the critical path of a batch-1 burst, the model's own work (prompt encoding, noise, the "
             f"denoising loop, decode) took {model * 1000 / n:.0f} ms per job and the host's own work there (claiming, planning, "
             f"progress and cancel callbacks, hand-off, other) {host * 1000 / n:.1f} ms per job "
             f"({host / max(model, 1e-9):.1%} of the model's). Finishing took {fin * 1000 / n:.0f} ms per job on its own thread, "
             "beside the next render; only the last job's finishing is on the critical path, and on a machine with no idle core "
             "it competes with the render for the CPU.")
    fparts = parts.get("finish", {})
    cpu = sum(v for k, v in fparts.items() if k.startswith("deliver:")) * 1000 / n
    waits = sum(v for k, v in fparts.items() if k != "idle" and not k.startswith("deliver:")) * 1000 / n
    sched = worker.get("render: scheduler set-up", 0.0) * 1000 / n
    per_job = model * 1000 / n
    tail = fin * 1000 / n / burst
    low = (host * 1000 / n + tail) / per_job
    L.append("")
    L.append(f"What bounds row 1 (bursts of {burst} jobs), from these figures: the host's work on the worker thread "
             f"({host * 1000 / n:.1f} ms per job), plus the last job's finishing, which nothing overlaps ({fin * 1000 / n:.0f} ms "
             f"once per burst, {tail:.0f} ms per job: delivery {cpu:.0f} ms of CPU and {waits:.0f} ms writing the sidecar and the "
             "audio and committing the journal, each with the fsync that 'whole files, fsync on finish' needs), give about "
             f"{low:.1%} over the model's own time when a core is free for the finishing thread; when none is (this machine under "
             f"other users' load), each job's {cpu:.0f} ms of delivery CPU is taken from the render as well, about "
             f"{cpu / per_job:.1%} more. The engine builds a fresh scheduler for every render ({sched:.1f} ms per job, counted as "
             "the model's here; diffusers' pipeline reuses its own).")
    return "\n".join(L)


def _med(values) -> float:
    import statistics

    return statistics.median(list(values))
