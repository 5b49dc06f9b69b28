"""Rows measured through the product's real doors: ``audiohost serve`` over OSC, ``audiohost render``.

Each function takes the run's :class:`~bench.Bench` and returns a :class:`~harness.Row` (or a
list of them); ``run.py`` registers them. Every step checks that it ran (reply counts, files on
disk with the right rate and length, denoise-call counts) and raises instead of reporting a
number when it did not.
"""

from __future__ import annotations

import io
import math
import statistics
import struct
import time
from pathlib import Path

from bench import OUT_RATE, PROMPT, NEGATIVE, Bench, median_of
from harness import BenchError, Row, check_audio, log, percentile, run_cli, summary
from tests.oscpeer import OscPeer

ms = 1000.0


# ---------------------------------------------------------------- row 1
def host_overhead(bench: Bench) -> Row:
    """Row 1: N foley jobs over OSC to the warm batch-1 daemon vs diffusers' pipeline in a loop."""
    cfg = bench.cfg
    d = bench.daemon("bs1", 1)
    bench.baseline()
    warm, base, calls, stages, cpu_d, cpu_b = [], [], [], [], [], []
    for rep in range(cfg.overhead_reps):
        order = ("daemon", "baseline") if rep % 2 == 0 else ("baseline", "daemon")
        for which in order:
            if which == "daemon":
                seconds, logged, cpu = d.burst(bench, f"r1-{rep}", cfg.jobs)
                warm.append(seconds)
                stages += logged.values()
                cpu_d.append(cpu)
            else:
                wall, each, cpu = bench.baseline_batch(cfg.jobs)
                base.append(wall)
                calls += each
                cpu_b.append(cpu)
        log(f"row 1 rep {rep + 1}/{cfg.overhead_reps}: daemon {warm[-1]:.2f} s, diffusers {base[-1]:.2f} s for {cfg.jobs} jobs")
    ratio = summary([w / b for w, b in zip(warm, base)])
    extra = summary([(w - b) / cfg.jobs * ms for w, b in zip(warm, base)])
    cpu_ratio = summary([a / b for a, b in zip(cpu_d, cpu_b)])
    detail = (f"{cfg.jobs} jobs: daemon {summary(warm).fmt(2, ' s')}, diffusers {summary(base).fmt(2, ' s')}; "
              f"extra per job {extra.fmt(0, ' ms')}; CPU time (all threads) daemon / diffusers {cpu_ratio.fmt(3)}, "
              f"{(median_of(cpu_d) - median_of(cpu_b)) / cfg.jobs * ms:.0f} ms more CPU per job")
    if stages:
        plan, render, finish = (median_of(s[k] for s in stages) * ms for k in range(3))
        call = median_of(calls) * ms
        detail += (f"; per job, as the daemon logged it (median of {len(stages)}): plan {plan:.1f} ms, render {render:.0f} ms, "
                   f"finish {finish:.0f} ms (on the finishing thread, beside the next render); one diffusers call {call:.0f} ms")
    if stages:
        bench.notes.append(
            f"Row 1 nets two things: the host's own work per job (finishing, OSC, the journal; the profile below puts it in "
            f"threads and stages) and a render stage that is itself {abs(1 - render / call):.1%} "
            f"{'shorter' if render <= call else 'longer'} than one call of diffusers' "
            f"pipeline (median {render:.0f} against {call:.0f} ms; the host's engine encodes the prompt and the negative prompt "
            "in one text-encoder call where the pipeline makes two and builds a scheduler per render where the pipeline reuses "
            "its own, and its render shares the process with the finishing of the job before). CPU time is the steadier figure on a "
            f"shared machine: the daemon used {cpu_ratio.median:.3f}x the CPU of the diffusers loop for the same jobs.")
    return Row("1", "Host overhead: daemon over OSC / diffusers loop", ratio.fmt(3), "<= 1.05", ratio.median <= 1.05, detail, how=(
        f"A warm `audiohost serve --model tiny --batch-size 1` subprocess on free loopback ports: N={cfg.jobs} "
        "`/audiohost/foley <project> bench <duration> <seed> <tag>` requests in a burst, timed from the first send to the "
        "last `/audiohost/job/done`; every reply's file is read back with soundfile (48 kHz, exact length) and "
        "`/audiohost/stats` must show N more denoising calls. Against it, interleaved (A-B, then B-A): diffusers' own "
        "pipeline (`DiffusionPipeline.from_pretrained` on the same tiny checkpoint folder; `benchmarks/baseline.py`, no host "
        "code) called N times in a loop in the benchmark's warm process, each result written with soundfile and read back. "
        f"{cfg.overhead_reps} repetitions (more than the other ratios: the target is a few percent, the machine's noise is more). "
        "CPU time: the daemon's user + system time from /proc/<pid>/stat over the burst against this process's "
        "`time.process_time()` over the loop, a figure other work on the machine disturbs less than wall time. "
        "The per-stage times are the ones the daemon logs for each job (`job N name: rendered, 1 takes (plan .. s, render .. s, "
        "finish .. s)`)."))


# ---------------------------------------------------------------- row 2
def warm_vs_cold(bench: Bench) -> Row:
    """Row 2: N one-shot ``audiohost render --only cueI --force`` processes vs the warm daemon."""
    cfg = bench.cfg
    d = bench.daemon("bs1", 1)
    project = bench.work / "proj_cli"
    if not project.exists():
        project.mkdir(parents=True)
        cues = [f'[[cue]]\nname = "cue{i}"\nprompt = "{PROMPT}"\nnegative_prompt = "{NEGATIVE}"\n'
                f"duration = {cfg.duration}\nsteps = {cfg.steps}\nguidance = {cfg.guidance}\nseed = {100 + i}\n" for i in range(cfg.jobs)]
        (project / "cues.toml").write_text("\n".join(cues))
    warm, cold, each = [], [], []
    for rep in range(cfg.reps):
        order = ("daemon", "cold") if rep % 2 == 0 else ("cold", "daemon")
        for which in order:
            if which == "daemon":
                warm.append(d.burst(bench, f"r2-{rep}", cfg.jobs)[0])
                continue
            walls = []
            for i in range(cfg.jobs):
                folder = project / "renders" / "foley" / f"cue{i}"
                before = set(folder.glob("*.wav")) if folder.is_dir() else set()
                wall, out = run_cli(["render", str(project), "--model", "tiny", "--only", f"cue{i}", "--force"], bench.env, timeout=300)
                new = set(folder.glob("*.wav")) - before
                if len(new) != 1:
                    raise BenchError(f"audiohost render --only cue{i}: {len(new)} new takes, expected 1\n{out[-1500:]}")
                check_audio(new.pop(), cfg.frames, OUT_RATE)
                walls.append(wall)
            cold.append(sum(walls))
            each += walls
        log(f"row 2 rep {rep + 1}/{cfg.reps}: warm daemon {warm[-1]:.2f} s, cold CLI {cold[-1]:.1f} s")
    r = summary([c / w for c, w in zip(cold, warm)])
    return Row("2", "Warm vs cold: N one-shot CLI processes / warm daemon", f"{r.fmt(1, 'x')} faster warm", detail=(
        f"cold {summary(cold).fmt(1, ' s')} for {cfg.jobs} jobs ({summary(each).fmt(1, ' s')} per process) vs warm "
        f"{summary(warm).fmt(2, ' s')}"), how=(
        f"N={cfg.jobs} sequential `audiohost render PROJECT --model tiny --only cueI --force` processes (exit 0 and one new take "
        "of the right length each) against a burst of the same N jobs to the warm batch-1 daemon (as row 1), interleaved."))


# ---------------------------------------------------------------- row 3
def batching(bench: Bench) -> Row:
    """Row 3: 8 compatible jobs queued behind a blocker, daemon --batch-size 8 vs 1."""
    cfg = bench.cfg
    d1, d8 = bench.daemon("bs1", 1), bench.daemon("bs8", cfg.batch_jobs)
    b1, b8 = [], []
    for rep in range(cfg.reps):
        pair = [(d1, b1), (d8, b8)] if rep % 2 == 0 else [(d8, b8), (d1, b1)]
        for d, acc in pair:
            d.peer.received.clear()
            acc.append(_batching_round(bench, d, f"r3-{d.name}-{rep}"))
        log(f"row 3 rep {rep + 1}/{cfg.reps}: {cfg.batch_jobs} jobs at batch 1 {b1[-1]:.2f} s, at batch {cfg.batch_jobs} {b8[-1]:.2f} s")
    r = summary([a / b for a, b in zip(b1, b8)])
    n = cfg.batch_jobs
    return Row("3", f"Batching: daemon --batch-size {n} / --batch-size 1 throughput", r.fmt(2, "x"), detail=(
        f"{n} queued jobs: batch 1 {summary(b1).fmt(2, ' s')}, batch {n} {summary(b8).fmt(2, ' s')}; "
        f"denoise_calls checked: 1+{n} vs 1+1 per round"), how=(
        f"A blocker job of another duration goes first; once it reports progress, {n} compatible jobs are submitted and must all "
        f"be acknowledged before the blocker's `/job/done`; the time from the blocker's `/job/done` to the last of the {n} is the "
        f"batch time. `denoise_calls` from `/audiohost/stats` must grow by exactly 1+{n} (batch 1) and 1+1 (batch {n}), else the "
        "run fails. The two daemons alternate which goes first."))


def _batching_round(bench: Bench, d, label: str) -> float:
    cfg = bench.cfg
    peer = d.peer
    n = cfg.batch_jobs
    s0 = peer.stats()
    since = peer.mark()
    btag = f"{label}-blocker"
    d.foley(bench, "blocker", btag, cfg.blocker_duration)
    peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][-1] == btag, 60, since)
    tags = [f"{label}-{i}" for i in range(n)]
    for tag in tags:
        d.foley(bench, "bench", tag, cfg.duration)
    want = set(tags)
    queued = peer.collect(lambda m: m[0] == "/audiohost/job/queued" and m[1][-1] in want, n, 30, since)
    blocker = d.wait_done([btag], 120, since, round(cfg.blocker_duration * OUT_RATE))[0]
    if max(m.t for m in queued) > blocker.t:
        raise BenchError(f"{label}: the blocker finished before all {n} jobs were queued; batching not exercised")
    msgs = d.wait_done(tags, 60 + 3 * n * cfg.duration * cfg.steps, since, cfg.frames)
    calls = peer.stats()["denoise_calls"] - s0["denoise_calls"]
    expected = 1 + math.ceil(n / d.batch_size)
    if calls != expected:
        raise BenchError(f"{label}: daemon --batch-size {d.batch_size} made {calls} denoising calls for blocker + {n} jobs, expected {expected}")
    return max(m.t for m in msgs) - blocker.t


# ---------------------------------------------------------------- row 5
def responsiveness(bench: Bench) -> list[Row]:
    """Row 5: OSC ack latency (ping, job submission) while a render runs; drop to queued."""
    cfg = bench.cfg
    d = bench.daemon("bs1", 1)
    peer = d.peer
    peer.received.clear()
    sub = OscPeer(d.daemon.port)
    try:
        m = peer.request("/audiohost/subscribe", sub.reply_port, reply="/audiohost/subscribed")
        if int(m[1][1]) != sub.reply_port:
            raise BenchError(f"/audiohost/subscribe replied {m[1]}")
        long_id = _start_long_job(bench, d, "r5-long")
        running = lambda: _check_running(d, long_id)  # noqa: E731
        running()
        pings = _pings(peer, cfg.pings)
        submits, ids = [], []
        for i in range(cfg.submits):
            tag = f"r5-sub-{i}"
            since = peer.mark()
            t0 = d.foley(bench, "bench", tag, cfg.duration)
            m = peer.wait_for(lambda m: (m[0] == "/audiohost/job/queued" and m[1][-1] == tag) or m[0] == "/audiohost/error", 10, since)
            if m[0] == "/audiohost/error":
                raise BenchError(f"submission {i} refused: {m[1]}")
            submits.append(m.t - t0)
            ids.append(int(m[1][0]))
        if len(set(ids)) != cfg.submits:
            raise BenchError(f"{cfg.submits} submissions got {len(set(ids))} distinct job ids")
        running()
        drops, drop_ids = _drops(d, sub, cfg.drops, set(ids))
        running()
        _cancel_all(d, ids + drop_ids, long_id)
    finally:
        sub.close()
    from host.daemon.config import DaemonConfig

    settle = DaemonConfig().settle_seconds
    pp = (percentile(pings, 50) * ms, percentile(pings, 99) * ms)
    sp = (percentile(submits, 50) * ms, percentile(submits, 99) * ms)
    dd = summary(drops)
    how = ("On the batch-1 daemon while a 999-step job is rendering (its state checked `running` before, between and after): "
           f"{cfg.pings} `/audiohost/ping` and {cfg.submits} `/audiohost/foley`, one at a time, each timed from send to the reply "
           "(`/pong`, `/job/queued`) as read on the benchmark's socket; then WAV files written in 16 kB pieces into the project's "
           "`restyle/`, timed from `close()` to the `/audiohost/job/queued` a `/audiohost/subscribe`d socket receives (the queued "
           "job's name checked with `/audiohost/status`). Everything queued, and the long job, is then cancelled over OSC.")
    return [
        Row("5a", f"OSC ack latency, /ping -> /pong (n={len(pings)}), render running", f"p50 {pp[0]:.2f} ms, p99 {pp[1]:.2f} ms",
            detail=f"p99/p50 = {pp[1] / pp[0]:.1f}; max {max(pings) * ms:.1f} ms", how=how),
        Row("5b", f"OSC ack latency, /foley -> /job/queued (n={len(submits)}), render running", f"p50 {sp[0]:.2f} ms, p99 {sp[1]:.2f} ms",
            detail=f"p99/p50 = {sp[1] / sp[0]:.1f}; max {max(submits) * ms:.1f} ms; all {len(submits)} got distinct ids, then were cancelled"),
        Row("5c", f"Dropped file closed -> /job/queued at a subscriber (n={len(drops)})", dd.fmt(3, " s"),
            detail=f"settle interval {settle:g} s = {settle / dd.median:.0%} of it; beyond the settle: {summary([x - settle for x in drops]).fmt(3, ' s')}"),
    ]


def _start_long_job(bench: Bench, d, tag: str) -> int:
    """A render that certainly runs for the whole measurement (999 steps); its job id."""
    since = d.peer.mark()
    d.foley(bench, "long", tag, bench.cfg.duration)
    q = d.peer.wait_for(lambda m: m[0] == "/audiohost/job/queued" and m[1][-1] == tag, 10, since)
    d.peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][-1] == tag, 60, since)
    return int(q[1][0])


def _check_running(d, job_id: int) -> None:
    st = d.peer.request("/audiohost/status", job_id, reply="/audiohost/status")
    if st[1][1] != "running":
        raise BenchError(f"the background render is {st[1][1]}, not running: latencies would not be under load")


def _pings(peer, n: int) -> list[float]:
    out = []
    for _ in range(n):
        since = peer.mark()
        t0 = peer.send("/audiohost/ping")
        m = peer.wait_for(lambda m: m[0] == "/audiohost/pong", 5, since)
        out.append(m.t - t0)
    return out


def _drops(d, sub, count: int, known: set[int]) -> tuple[list[float], list[int]]:
    import numpy as np
    import soundfile as sf

    drops, ids = [], []
    for i in range(count):
        buf = io.BytesIO()
        sf.write(buf, np.random.default_rng(50 + i).standard_normal(48000).astype(np.float32) * 0.1, 48000, format="WAV", subtype="PCM_16")
        path = d.project / "restyle" / f"drop{i}.wav"
        since = sub.mark()
        with open(path, "wb") as f:
            data = buf.getvalue()
            for k in range(0, len(data), 16384):  # written in pieces, like a copy
                f.write(data[k:k + 16384])
        closed = time.perf_counter()
        m = sub.wait_for(lambda m: m[0] == "/audiohost/job/queued" and m[1][-1] == "" and int(m[1][0]) not in known, 15, since)
        st = d.peer.request("/audiohost/status", int(m[1][0]), reply="/audiohost/status")
        if st[1][3] != f"drop{i}":
            raise BenchError(f"drop{i}.wav: the queued job is {st[1]}")
        drops.append(m.t - closed)
        ids.append(int(m[1][0]))
        time.sleep(0.1)
    return drops, ids


def _cancel_all(d, ids: list[int], long_id: int) -> None:
    peer = d.peer
    since = peer.mark()
    for job_id in ids:
        peer.send("/audiohost/cancel", job_id)
    want = set(ids)
    seen: set[int] = set()

    def first_cancel(m) -> bool:  # each id is announced and also answered: count it once
        if m[0] != "/audiohost/job/cancelled" or int(m[1][0]) not in want or int(m[1][0]) in seen:
            return False
        seen.add(int(m[1][0]))
        return True

    if want:
        peer.collect(first_cancel, len(want), 60, since, fail=lambda m: m[0] == "/audiohost/error")
    since = peer.mark()
    peer.send("/audiohost/cancel", long_id)
    peer.wait_for(lambda m: m[0] == "/audiohost/job/cancelled" and int(m[1][0]) == long_id, 60, since)
    deadline = time.monotonic() + 30
    while peer.stats()["queued"] != 0:
        if time.monotonic() > deadline:
            raise BenchError("jobs still open after cancelling them all")
        time.sleep(0.2)


# ---------------------------------------------------------------- row 6
def memory(bench: Bench) -> list[Row]:
    """Row 6: the daemons' peak RSS; RSS after 10 vs after 100 small jobs."""
    cfg = bench.cfg
    d = bench.daemon("bs1", 1)
    peer = d.peer
    frames = round(cfg.small_duration * OUT_RATE)
    done, rss, waves = 0, {}, []
    while done < cfg.small_total:
        peer.received.clear()
        n = min(10, cfg.small_total - done)
        tags = [f"r6-{done + i}" for i in range(n)]
        t0 = time.perf_counter()
        for tag in tags:
            d.foley(bench, "small", tag, cfg.small_duration)
        d.wait_done(tags, 60 + 10 * n, 0, frames)
        waves.append((time.perf_counter() - t0) / n)
        done += n
        if done in (cfg.small_first, cfg.small_total):
            time.sleep(0.3)
            rss[done] = d.memory()["VmRSS"]
    for s in bench.served.values():
        s.memory()
    a, b = rss[cfg.small_first], rss[cfg.small_total]
    others = "; ".join(f"{s.name} daemon {s.hwm_kb / 1024:.0f} MB (after rows {', '.join(s.rows)})" for s in bench.served.values() if s is not d)
    return [
        Row("6a", "Memory: daemon peak RSS (VmHWM)", f"{d.hwm_kb / 1024:.0f} MB (batch 1 daemon)",
            detail=f"after rows {', '.join(d.rows)}" + (f"; {others}" if others else ""), how=(
                "`/proc/<pid>/status` of the daemons: VmHWM (peak) after the rows each served (listed); VmRSS after "
                f"{cfg.small_first} and after {cfg.small_total} small jobs ({cfg.small_duration:g} s, {cfg.small_steps} steps) "
                "submitted in waves of 10 to the batch-1 daemon.")),
        Row("6b", f"Memory: RSS after {cfg.small_total} vs after {cfg.small_first} small jobs", f"{(b - a) / 1024:+.1f} MB",
            detail=(f"{a / 1024:.0f} MB -> {b / 1024:.0f} MB ({(b - a) / max(1, cfg.small_total - cfg.small_first):+.0f} kB/job); "
                    f"seconds per job, first wave {waves[0]:.3f} s, last wave {waves[-1]:.3f} s")),
    ]


# ---------------------------------------------------------------- row 9
def ping_while_accepting(bench: Bench) -> Row:
    """Row 9 (issue 7 item 8): ping latency while a large stem is checked and hashed on intake."""
    cfg = bench.cfg
    config = bench.work / "accept.toml"
    config.write_text("max_stem_seconds = 36000\nmax_stem_mb = 8192\n")
    d = bench.daemon("accept", 1, extra=("--config", str(config)))
    stem = d.project / "stems" / "big.wav"
    size = _large_wav(stem, int(cfg.accept_gb * 1e9))
    seconds = (size - 44) / (48000 * 2 * 2)
    peer = d.peer
    long_id = _start_long_job(bench, d, "r9-long")  # keeps the worker busy: the restyle stays queued, never read whole
    _pings(peer, 20)  # warm
    lat, rounds, accepted, control = [], [], [], []
    for rep in range(cfg.reps):
        # the control: as many pings with the same render running and nothing being accepted
        control += _pings(peer, rounds[-1] if rounds else 1000)
        # a different prompt each round: a different job, so the stem is checked and hashed again
        tag = f"r9-{rep}"
        since = peer.mark()
        t0 = peer.send("/audiohost/restyle", d.project.name, str(stem), f"bench restyle {rep}", 0.5, tag)
        these = []
        while True:  # one ping at a time, each waiting for its own pong, until the job is queued
            ping_since = peer.mark()
            p0 = peer.send("/audiohost/ping")
            these.append(peer.wait_for(lambda m: m[0] == "/audiohost/pong", 10, ping_since).t - p0)
            q = next((m for m in peer.received[since:] if m[1] and m[1][-1] == tag), None)
            if q is not None:
                break
            if time.perf_counter() - t0 > 300:
                raise BenchError("the large stem was not accepted within 300 s")
        if q[0] != "/audiohost/job/queued":
            raise BenchError(f"the restyle of the large stem was answered {q[0]} {q[1]}")
        accepted.append(q.t - t0)
        rounds.append(len(these))
        lat += these
        job_id = int(q[1][0])
        peer.request("/audiohost/cancel", job_id, reply="/audiohost/job/cancelled")
        log(f"row 9 round {rep + 1}/{cfg.reps}: {size / 1e9:.2f} GB accepted in {accepted[-1]:.2f} s; {len(these)} pings, "
            f"p99 {percentile(these, 99) * ms:.2f} ms")
    _cancel_all(d, [], long_id)
    stem.unlink()
    if len(lat) < 50:
        raise BenchError(f"only {len(lat)} pings during acceptance: too few for a p99")
    p50, p99, top = percentile(lat, 50) * ms, percentile(lat, 99) * ms, max(lat) * ms
    c50, c99, ctop = percentile(control, 50) * ms, percentile(control, 99) * ms, max(control) * ms
    acc = summary(accepted)
    if p99 >= 5.0:
        bench.notes.append(
            f"Row 9: accepting the stem raised ping p99 from {c99:.1f} ms (the same render, nothing accepted) to {p99:.1f} ms. "
            "The intake thread that checks and hashes it (at about a core's worth of reading and SHA-256) competes with the "
            "rendering thread and the OSC thread for the GIL and for this machine's 2 shared cores. Tried on this branch, each "
            "alternating with the current code in one run: a 16, 64 or 256 MiB hashing buffer instead of 1 MiB reads, a 1 ms GIL "
            "switch interval, and the lowest CPU priority for the intake thread; none brought p99 under 5 ms here (the larger "
            "buffers and the lower priority made it worse), so the code is unchanged.")
    return Row("9", f"Ping latency while a {size / 1e9:.1f} GB stem is accepted (n={len(lat)}), render running",
               f"p50 {p50:.2f} ms, p99 {p99:.2f} ms", "p99 < 5 ms", p99 < 5.0, detail=(
                   f"max {top:.1f} ms; control, the same render and nothing accepted (n={len(control)}, interleaved): "
                   f"p50 {c50:.2f} ms, p99 {c99:.2f} ms, max {ctop:.1f} ms; acceptance (request sent -> /job/queued) {acc.fmt(2, ' s')} "
                   f"({size / 1e9 / acc.median:.2f} GB/s), {statistics.median(rounds):.0f} pings per acceptance; "
                   f"the stem: a {seconds / 60:.0f}-minute 48 kHz stereo 16-bit WAV of {size / 1e9:.2f} GB"), how=(
                   f"A daemon of its own (`max_stem_seconds = 36000`, `max_stem_mb = 8192` in its config) with a 999-step job "
                   f"rendering, so the worker is busy (as in row 5) and the restyle stays queued. A {cfg.accept_gb:g} GB 16-bit WAV "
                   "(a 16 MiB block of noise repeated) is written into the project and flushed to disk just before, so it sits in the "
                   "page cache as a stem a DAW has just written would (the costliest case for the CPU: reading is a memory copy) "
                   "without its writeback running during the measurement; "
                   "`/audiohost/restyle <project> <path> <prompt> 0.5 <tag>` is sent and, until its `/job/queued` arrives (the "
                   "intake thread has probed and hashed the stem and the journal has committed the job), `/audiohost/ping` is "
                   f"sent one at a time and each timed from send to `/pong`. {cfg.reps} rounds, each with a new prompt (a new job, "
                   "hashed again); each accepted job is cancelled while queued, so the stem is never read whole. Before each "
                   "round, the control: as many pings to the same daemon with the same render running and nothing accepted."))


def _large_wav(path: Path, size: int) -> int:
    """A 48 kHz stereo 16-bit WAV of about ``size`` bytes: one 16 MiB block of noise repeated (a
    real file, left in the page cache as a stem a DAW just wrote would be)."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    frame = 4
    data = (size - 44) // frame * frame
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 48000, 48000 * frame, frame, 16)
    header += b"data" + struct.pack("<I", data)
    block = os.urandom(16 << 20)
    with open(path, "wb") as f:
        f.write(header)
        left = data
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
        f.flush()
        os.fsync(f.fileno())  # on disk before the measurement (still in the page cache): no writeback in the way
    return 44 + data
