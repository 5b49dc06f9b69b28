#!/usr/bin/env python
"""audiohost benchmarks: ``python benchmarks/run.py [--only ID ...] [--quick] [--jobs N] [--reps K]``.

Runs on the built-in random-weight ``tiny`` model, CPU only, and writes benchmarks/RESULTS.md
(or ``--out``) with the machine it ran on. Each row is one function that returns a
:class:`~harness.Row` (or a list of them); ``ROWS`` below lists them in the order they run, and
adding a row is one line there. ``--only 4 9`` runs some of them (a row measured alone starts
what it needs itself). Every ratio is measured in one run, its two sides interleaved (A-B, then
B-A) over K repetitions, and reported as the median with the min-max spread.
"""

from __future__ import annotations

import argparse
import os
import sys

# ---------------------------------------------------------------- options (before torch loads)


def _options(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", metavar="ID", help="run only these rows (e.g. 1 4 9, or 'profile'); see --list")
    p.add_argument("--list", action="store_true", help="list the rows and exit")
    p.add_argument("--quick", action="store_true", help="smoke version: small jobs, fewer repetitions")
    p.add_argument("--jobs", type=int, default=None, help="N: jobs per repetition in rows 1 and 2 (default 4, quick 2)")
    p.add_argument("--reps", type=int, default=None, help="K: repetitions per measurement (default 3, quick 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads for every process (daemon, CLI, in-process); 0 = torch's default. "
                        "Default 1: see row 7 for why")
    p.add_argument("--out", default=None, help="where to write the results (default benchmarks/RESULTS.md)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (projects, renders, daemon logs)")
    return p.parse_args(argv)


OPTS = _options() if __name__ == "__main__" else None
if OPTS is not None and OPTS.threads > 0:
    os.environ["OMP_NUM_THREADS"] = str(OPTS.threads)
    os.environ["MKL_NUM_THREADS"] = str(OPTS.threads)

import datetime  # noqa: E402
import importlib  # noqa: E402
import inspect  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import fields  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import daemon_profile  # noqa: E402
import daemon_rows  # noqa: E402
import local_rows  # noqa: E402
import stem  # noqa: E402
from bench import Bench, cpu_name, make_config, usable_cores  # noqa: E402
from harness import BenchError, Row, Summary, bench_env, kill_all, log  # noqa: E402


# ---------------------------------------------------------------- rows from other files
def external(module: str, function: str, **kwargs) -> Callable[[Bench], list[Row]]:
    """A row measured by ``benchmarks/<module>.py``'s ``function``, imported when the row runs
    (so a missing module is a row that says so, not a failed run). The function is called with
    those of ``kwargs`` it accepts (values may be callables of the Bench) and may return a Row, a
    list of Rows, a dict or a list of dicts with Row's fields, or (id, measurement, result[,
    detail]) tuples."""

    def row(bench: Bench) -> list[Row]:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            return [Row("?", f"{module}.{function}", "not available", detail=f"benchmarks/{module}.py is not in this checkout")]
        fn = getattr(mod, function)
        accepted = inspect.signature(fn).parameters
        args = {k: (v(bench) if callable(v) else v) for k, v in kwargs.items() if k in accepted}
        return as_rows(fn(**args))

    row.__name__ = f"{module}.{function}"
    return row


def as_rows(value) -> list[Row]:
    if isinstance(value, Row):
        return [value]
    if isinstance(value, dict) and "id" in value:
        names = {f.name for f in fields(Row)}
        return [Row(**{k: str(v) if k not in ("passed",) else v for k, v in value.items() if k in names})]
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return [Row(value[0], value[1], value[2], detail=value[3] if len(value) > 3 else "")]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in as_rows(v)]
    raise BenchError(f"a row function returned {type(value).__name__}, not a row")


def effects_delivery(bench: Bench) -> list[Row]:
    """Row 4: effects and delivery, measured by benchmarks/delivery.py's row_effects_delivery().

    That file is the delivery branch's work: plain-gain and limiter cases, reported separately
    (4a, 4b). Until it is merged, the row says it is not available."""
    try:
        import delivery
    except ModuleNotFoundError as err:
        if err.name != "delivery":
            raise
        return [Row("4", "Effects + delivery real-time factor", "not available", ">= 150x",
                    detail="benchmarks/delivery.py (row_effects_delivery) is not in this checkout yet")]
    fn = delivery.row_effects_delivery
    accepted = inspect.signature(fn).parameters
    args = {k: v for k, v in (("seconds", bench.cfg.effects_seconds), ("reps", bench.cfg.reps)) if k in accepted}
    bench.stop_daemons()
    try:
        result = fn(**args)
    except getattr(delivery, "BenchError", BenchError) as err:
        raise BenchError(f"row 4: {err}") from None
    if not (isinstance(result, dict) and {"plain", "limited"} <= set(result)):
        return as_rows(result)
    rows = []
    for number, kind, case in (("4a", "plain", "a static gain suffices"), ("4b", "limited", "the limiter must engage")):
        r = result[kind]
        rtf = Summary(*r["rtf"], r.get("n", 1))
        detail = delivery.describe(r) if hasattr(delivery, "describe") else ""
        rows.append(Row(number, f"Effects + delivery real-time factor ({bench.cfg.effects_seconds:g} s stereo, {case})",
                        f"{rtf.fmt(0, 'x')} real time", ">= 150x", rtf.median >= 150, detail,
                        how=(delivery.__doc__ or "").split("\n\n", 1)[-1].replace("\n", " ").strip() if number == "4a" else ""))
    return rows


def ray_scaling(bench: Bench) -> list[Row]:
    """Row 10: throughput with 2 Ray replicas against 1, and one daemon's ceiling
    (benchmarks/ray_scaling.py, which starts and stops its own local cluster)."""
    bench.stop_daemons()
    try:
        import ray_scaling as module
    except ModuleNotFoundError as err:
        if err.name != "ray_scaling":
            raise
        return [Row("10", "Scale-out on Ray", "not available", detail="ray is not installed (pip install -e '.[ray]')")]
    r = module.row_ray_scaling()
    return [Row("10", r["name"], r["result"], r.get("target", ""), None, r.get("detail", ""), how=(module.__doc__ or "").strip().split("\n\n")[0])]


def gpu_and_ranking(bench: Bench) -> list[Row]:
    """Row 11: the GPU speed ladder (fp16, compile, DPM-Solver, offload; "no GPU" on a CPU
    machine) and what CLAP ranking costs next to rendering (benchmarks/gpu.py)."""
    import gpu

    opts = gpu._options([])
    opts.reps = opts.reps or 1
    rows = []
    for rid, measurement, result in gpu.gpu_rows(opts) + gpu.ranking_rows(opts):
        rows.append(Row(f"11{rid.lower()}", measurement, result))
    return rows


# ---------------------------------------------------------------- the rows, in the order they run
# (id, function). A function takes the Bench and returns a Row or a list of Rows. Daemon rows
# come first; in-process rows stop the daemons before they measure.
ROWS: list[tuple[str, Callable]] = [
    ("1", daemon_rows.host_overhead),
    ("profile", daemon_profile.daemon_profile),
    ("2", daemon_rows.warm_vs_cold),
    ("3", daemon_rows.batching),
    ("5", daemon_rows.responsiveness),
    ("9", daemon_rows.ping_while_accepting),
    ("6", daemon_rows.memory),
    ("3b", local_rows.batching_sweep),
    ("4", effects_delivery),
    ("8", stem.long_stem),
    ("7", local_rows.threads),
    ("10", ray_scaling),
    ("11", gpu_and_ranking),
]


# ---------------------------------------------------------------- the run
def main() -> int:
    o = OPTS or _options()
    if o.list:
        for rid, fn in ROWS:
            print(f"{rid:8s} {_summary_line(fn)}")
        return 0
    known = [rid for rid, _ in ROWS]
    chosen = [(rid, fn) for rid, fn in ROWS if not o.only or rid in o.only]
    unknown = [x for x in (o.only or []) if x not in known]
    if unknown:
        raise SystemExit(f"unknown row(s) {', '.join(unknown)}; rows: {', '.join(known)}")
    cfg = make_config(o.quick, o.jobs, o.reps, o.threads)
    started = time.perf_counter()
    out_path = Path(o.out) if o.out else HERE / "RESULTS.md"
    work = Path(tempfile.mkdtemp(prefix="audiohost-bench-"))
    cache = Path(os.environ.get("AUDIOHOST_CACHE") or (Path(tempfile.gettempdir()) / "audiohost-bench-cache"))
    os.environ.update(AUDIOHOST_CACHE=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    bench = Bench(cfg, work, cache, bench_env(cache, cfg.threads))
    signal.signal(signal.SIGTERM, _interrupted)
    log(f"{'quick' if cfg.quick else 'full'} run of rows {', '.join(r for r, _ in chosen)}: N={cfg.jobs} jobs, K={cfg.reps} reps, "
        f"torch threads={cfg.threads or 'default'}; scratch {work}")
    rows: list[Row] = []
    failed: list[str] = []
    try:
        import torch

        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        t = time.perf_counter()
        tiny = bench.checkpoint()  # built once here, before any daemon could race to build it
        log(f"tiny model at {tiny} ({time.perf_counter() - t:.1f} s)")
        bench.phase("start")
        for rid, fn in chosen:
            bench.row = rid
            bench.phase(f"row {rid}")
            log(f"row {rid}: {_summary_line(fn)}")
            try:
                got = as_rows(fn(bench))
            except (BenchError, AssertionError) as err:
                failed.append(rid)
                print(f"\nROW {rid} FAILED: {err}", file=sys.stderr)
                for s in bench.served.values():
                    print(f"--- daemon {s.name} log tail ---\n{s.daemon.tail(3000)}", file=sys.stderr)
                got = [Row(rid, _summary_line(fn), "FAILED", detail=" ".join(str(err).split())[:400])]
            for r in got:
                if r.id == "?":
                    r.id = rid
            rows += got
        bench.stop_daemons()
        bench.phase("end")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        bench.kill_daemons()
        kill_all()
    elapsed = time.perf_counter() - started
    ordered_rows = sorted(rows, key=row_order)
    out_path.write_text(render_markdown(bench, ordered_rows, elapsed, [r for r, _ in chosen], o))
    print()
    print(table_text(ordered_rows))
    print(f"\nwrote {out_path} ({elapsed / 60:.1f} min)")
    if not failed and not o.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"scratch folder kept: {work}", file=sys.stderr)
    return 1 if failed else 0


def _summary_line(fn) -> str:
    """The first line of a row function's docstring, without its "Row N:" prefix."""
    import re

    line = (inspect.getdoc(fn) or fn.__name__).splitlines()[0]
    return re.sub(r"^Row [0-9a-z]+( \([^)]*\))?: ", "", line)


def _interrupted(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------- output
def row_order(r: Row):
    import re

    m = re.match(r"(\d+)(.*)", r.id)
    return (int(m.group(1)), m.group(2)) if m else (10**6, r.id)


def table_text(rows: list[Row]) -> str:
    headers = ("#", "measurement", "result (median, min–max, n)", "target")
    cells = [(r.id, r.measurement, r.result, f"{r.target} {r.verdict}".strip()) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda cs: "  ".join(c.ljust(w) for c, w in zip(cs, widths))  # noqa: E731
    out = [line(headers), line(["-" * w for w in widths])] + [line(c) for c in cells] + [""]
    out += [f"{r.id}: {r.detail}" for r in rows]
    return "\n".join(out)


def machine() -> dict:
    import diffusers
    import torch
    import transformers

    return {
        "cpu": cpu_name(), "cores": f"{os.cpu_count()} logical ({usable_cores()} usable)", "python": platform.python_version(),
        "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
        "kernel": platform.release(),
    }


def render_markdown(bench: Bench, rows: list[Row], elapsed: float, ran: list[str], o) -> str:
    cfg = bench.cfg
    m = machine()
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    cmd = "python benchmarks/run.py" + (" --quick" if cfg.quick else "") + (f" --only {' '.join(o.only)}" if o.only else "")
    L = ["# audiohost benchmarks\n",
         f"Generated by `{cmd}` on {now} in {elapsed / 60:.1f} min. Model: the built-in random-weight `tiny` AudioLDM (real "
         "geometry, ~1 M-parameter UNet), CPU only. Each ratio is the median over the repetitions of this run "
         f"(K={cfg.reps}; row 1: {cfg.overhead_reps}; the sweep: {cfg.sweep_reps}), with the min–max spread and n in brackets.\n",
         "**This machine is shared**: 2 cores, used at the same time by other engineers' test runs, so absolute times are "
         "noisy (see the load averages below); the two sides of every ratio are interleaved to cancel the drift, and the "
         "spread shows what is left of it.\n",
         "## Results\n", "| # | measurement | result | target | detail |", "|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| {r.id} | {r.measurement} | {r.result} | {f'{r.target} {r.verdict}'.strip()} | {r.detail} |")
    L += ["", "## Machine and settings\n",
          f"- CPU: {m['cpu']}, {m['cores']}; Linux {m['kernel']}",
          f"- Python {m['python']}, torch {m['torch']}, diffusers {m['diffusers']}, transformers {m['transformers']}",
          f"- Date: {now}",
          f"- Job geometry (rows 1-3, 5, 6, the profile): {cfg.duration:g} s, {cfg.steps} DDIM steps, guidance {cfg.guidance:g}, 1 take; "
          "delivered by the host as 48 kHz / 24-bit WAV at -23 LUFS, -1 dBTP (the project defaults); the diffusers baseline "
          f"writes the pipeline's 16 kHz float output as is. N={cfg.jobs} jobs per repetition.",
          f"- torch intra-op threads: {cfg.threads or 'torch default'} in every process (daemons, CLI processes, this process), "
          "set with OMP_NUM_THREADS / torch.set_num_threads; row 7 shows why a fixed count of 1.",
          "- Load average (1, 5, 15 min) when each phase began: " + "; ".join(f"{p} {a}" for p, a in bench.load)
          + ". The benchmark itself keeps about one core busy; a higher load means other work shared the 2 cores.",
          "", "## How each row is measured\n"]
    for r in rows:
        if r.how:
            L.append(f"- **{r.id}**: {r.how}")
    L.append("")
    for title, text in bench.sections:
        L += [f"## {title}\n", text, ""]
    if bench.notes:
        L.append("## Notes\n")
        L += [f"- {n}" for n in bench.notes]
        L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
