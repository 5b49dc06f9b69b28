"""The command line: ``audiohost render``, ``presets``, ``takes``, ``recall``, ``serve``, ``status``, ``request`` and ``daw``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import host
from host.errors import InputError


def main(argv: Optional[Sequence[str]] = None) -> int:
    from host.client.request import expand_args_file

    parser = _parser()
    try:
        argv = expand_args_file(list(sys.argv[1:] if argv is None else argv))
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from host.engine.models import DEFAULT_MODEL

    parser = argparse.ArgumentParser(prog="audiohost", description="Render host for AudioLDM beside your DAW.")
    parser.add_argument("--version", action="version", version=f"audiohost {host.__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def model_options(p: argparse.ArgumentParser, default_model: Optional[str] = None) -> None:
        p.add_argument("--model", default=default_model, help=f"hub id (AudioLDM or AudioLDM 2), local diffusers folder, 'tiny' or 'tiny-audioldm2' (default: the project's model, else {DEFAULT_MODEL})")
        p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
        p.add_argument("--compile", action="store_true", help="torch.compile the UNet (slow first render, faster after)")
        p.add_argument("--cpu-offload", action="store_true", help="keep only the running component on the GPU")
        p.add_argument("--batch-size", type=int, default=8, help="takes per batched denoising call (default 8)")
        p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice; try 1 beside a busy DAW)")

    r = sub.add_parser("render", help="render a project's cue sheet and waiting stems", description="Render the cue sheet and whatever waits in restyle/, inpaint/ and superres/; exit 0 only when every job succeeded.")
    r.add_argument("project", type=Path)
    model_options(r)
    r.add_argument("--only", nargs="+", metavar="NAME", help="render only these cues or stems")
    r.add_argument("--force", action="store_true", help="render again even what is already rendered")
    r.add_argument("--dry-run", action="store_true", help="show what would render, render nothing")
    r.set_defaults(func=_render)

    p = sub.add_parser("presets", help="list, show or check presets", description="Work with presets.")
    psub = p.add_subparsers(title="actions", metavar="ACTION")
    pl = psub.add_parser("list", help="list presets", description="List built-in presets and, with --project, the project's own.")
    pl.add_argument("--project", type=Path)
    pl.set_defaults(func=_presets_list)
    ps = psub.add_parser("show", help="show one preset", description="Show one preset's file.")
    ps.add_argument("name")
    ps.add_argument("--project", type=Path)
    ps.set_defaults(func=_presets_show)
    pc = psub.add_parser("check", help="validate preset files", description="Validate a preset file or a folder of them (default: the built-ins).")
    pc.add_argument("path", nargs="?", type=Path)
    pc.set_defaults(func=_presets_check)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    s = sub.add_parser("serve", help="run the render daemon (OSC and watched folders)", description="Keep a model warm and render what arrives over OSC or in the projects' drop folders.")
    s.add_argument("--config", type=Path, help="TOML file with the same settings")
    s.add_argument("--project", type=Path, action="append", default=None, help="a project to serve and watch (repeatable)")
    s.add_argument("--root", type=Path, action="append", default=None, help="a folder OSC paths may point into and clients may create projects in (repeatable)")
    model_options(s)
    s.add_argument("--osc-host", default=None, help="address to listen on (default 127.0.0.1)")
    s.add_argument("--osc-port", type=int, default=None, help="UDP port for requests (default 9010)")
    s.add_argument("--reply-port", type=int, default=None, help="port replies go to on the sender's host (default 9011)")
    s.add_argument("--state-dir", type=Path, default=None, help="journal and logs (default ~/.local/state/audiohost)")
    s.add_argument("--damaged-journal", choices=("refuse", "start-fresh"), default=None, help="when the journal is damaged: refuse to start (default) or move it aside and start an empty queue")
    s.add_argument("--backend", choices=("local", "ray", "auto"), default=None, help="where the model runs: in this process (default), on a Ray cluster, or on one if it can be reached")
    s.add_argument("--ray-address", default=None, metavar="ADDRESS", help="the Ray cluster: auto (the one 'ray start' runs here, default), local (a private one), HOST:PORT or ray://HOST:10001")
    s.add_argument("--replicas", type=int, default=None, help="model replicas on the cluster (default: as many as it has GPUs, or CPUs on a CPU-only cluster)")
    s.add_argument("--gpus-per-replica", type=float, default=None, help="GPUs each replica reserves (default 1 on a cluster with GPUs; 0: CPU replicas)")
    s.set_defaults(func=_serve)

    st = sub.add_parser("status", help="print the job queue from the journal", description="Print the daemon's queue, whether it is running or not.")
    st.add_argument("--state-dir", type=Path, default=None)
    st.add_argument("--all", action="store_true", help="include finished jobs")
    st.set_defaults(func=_status)

    t = sub.add_parser("takes", help="list a project's takes, or reject some", description="A project's takes: list them with their state, or reject takes so they are not rendered again.")
    tsub = t.add_subparsers(title="actions", metavar="ACTION")
    tl = tsub.add_parser("list", help="every take with its state, loudness, CLAP score and seed", description="Every take of the project: kept, missing audio (rendered again on the next run) or rejected.")
    tl.add_argument("project", type=Path)
    tl.add_argument("--json", action="store_true", help="one JSON object per take, as a JSON list")
    tl.set_defaults(func=_takes_list)
    tr = tsub.add_parser(
        "reject", help="move takes to renders/.rejected/ so they are not rendered again",
        description="Move each take (its audio or its sidecar) and its sidecar to renders/.rejected/, keeping their layout, and record the rejection: "
        "the next run does not render that take again and renders a replacement with a fresh seed when the cue wants more takes than are kept. "
        "Paths are relative to the current folder, or else to the project.",
    )
    tr.add_argument("project", type=Path)
    tr.add_argument("takes", nargs="+", metavar="TAKE", help="a take's audio file or sidecar, inside the project's renders/")
    tr.add_argument("--tag", default="", help="a note kept with the rejection")
    tr.set_defaults(func=_takes_reject)
    t.set_defaults(func=lambda a: (t.print_help(), 2)[1])

    rc = sub.add_parser(
        "recall", help="render a take again from its sidecar, bit-identical on the same setup",
        description="Render the take a sidecar describes again (model and revision, prompt, seed, batch, steps, guidance, scheduler, strength, "
        "gaps, region, input, preset chain, delivery) and write it beside the original with a _recall suffix (or into --to DIR), never over a file. "
        "Where the model revision, the library versions, the device or the input differ from when the take was rendered, say which and "
        "render nothing, unless --anyway. Exit 0 when the recalled take is bit-identical to the original (or --anyway rendered it), 1 otherwise.",
    )
    rc.add_argument("sidecar", type=Path, metavar="SIDECAR.json")
    rc.add_argument("--to", type=Path, metavar="DIR", help="write the recalled take into DIR (default: beside the original)")
    rc.add_argument("--anyway", action="store_true", help="render even where something differs, and report the largest sample difference")
    rc.add_argument("--device", help="render on this device (default: the one the take was rendered on, if it is here)")
    rc.add_argument("--json", action="store_true", help="print what recall found as one JSON object")
    rc.set_defaults(func=_recall)

    from host.client.request import add_parser as add_request_parser
    from host.daw.install import add_parser as add_daw_parser

    add_request_parser(sub)
    add_daw_parser(sub)
    return parser


# ---------------------------------------------------------------------- render
def _render(args) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from host.config.project import check_renders
    from host.engine.models import DEFAULT_MODEL, fingerprint
    from host.plan.project import plan_project
    from host.locks import lock_project
    from host.output.files import remove_partials
    from host.runner import cached_takes

    console = Console(stderr=False)
    err = Console(stderr=True, soft_wrap=True)  # an error is one line, however narrow the terminal or pipe
    plan = plan_project(args.project)
    check_renders(plan.project)  # a renders/ that is a symlink or lies elsewhere: not this project's
    jobs = plan.jobs
    if args.only:
        wanted = set(args.only)
        unknown = wanted - {j.name for j in jobs}
        for name in sorted(unknown):
            plan.problems.append(InputError(f"--only {name}", "no cue or stem of that name in the project"))
        jobs = [j for j in jobs if j.name in wanted]
    for problem in plan.problems:
        err.print(f"[red]error:[/red] {escape(str(problem))}", highlight=False, markup=True)
    model_name = args.model or plan.project.settings.model or DEFAULT_MODEL

    if args.dry_run:
        model_id, revision = fingerprint(model_name)
        table = Table(title=f"{plan.project.name}: would render with {model_id}")
        for col in ("name", "kind", "preset", "takes", "state"):
            table.add_column(col)
        for job in jobs:
            try:
                have = 0 if args.force else cached_takes(job, *_job_model(job, model_id, revision))
                state = "rendered" if have >= job.delivers else ("new" if have == 0 else f"{have} of {job.delivers} done")
            except InputError as e:
                state = f"error: {e.reason}"
            table.add_row(escape(job.name), job.kind, escape(job.preset_name), str(job.preset.takes), escape(state))
        console.print(table)
        return 0 if not plan.problems else 1

    if not jobs:
        console.print("nothing to render" + (" (see the errors above)" if plan.problems else ""))
        return 0 if not plan.problems else 1

    if not args.force:
        # a project that is all rendered already needs no model at all
        model_id, revision = fingerprint(model_name)
        if revision != "unknown" and all(_fully_cached(j, model_id, revision) for j in jobs):
            console.print(f"everything in {plan.project.name} is already rendered with {model_id}; nothing to do (--force renders again)")
            return 0 if not plan.problems else 1

    # one writer per project: a daemon serving it, or another render, makes this one refuse
    with lock_project(plan.project.root, "audiohost render"):
        for leftover in remove_partials(plan.project.renders_dir):
            err.print(f"removed an unfinished temporary file: {leftover}", highlight=False, markup=False)
        return _render_locked(args, plan, jobs, model_name, console, err)


def _render_locked(args, plan, jobs, model_name, console, err) -> int:
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from host.engine.models import load_model
    from host.runner import Runner

    with console.status(f"loading {model_name}"):
        model = load_model(model_name, device=args.device, compile_unet=args.compile, cpu_offload=args.cpu_offload, threads=args.threads)
    def load_other(name: str):  # a preset that names its own checkpoint
        return load_model(name, device=args.device, compile_unet=args.compile, cpu_offload=args.cpu_offload, threads=args.threads)

    runner = Runner(model, batch_size=args.batch_size, loader=load_other)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console, transient=False) as progress:
        tasks = {id(j): progress.add_task(escape(f"{j.kind:8} {j.name}"), total=1.0) for j in jobs}
        by_key = {(j.kind, j.name): j for j in jobs}

        def on_progress(job, fraction):
            task = tasks.get(id(by_key.get((job.kind, job.name), job)))
            if task is not None:
                progress.update(task, completed=fraction)

        outcomes = runner.run(jobs, on_progress=on_progress, force=args.force)
        for outcome in outcomes:
            progress.update(tasks[id(outcome.job)], completed=1.0)

    table = Table(title=f"{plan.project.name}: {model.id}")
    for col in ("name", "kind", "status", "takes", "seconds", "detail"):
        table.add_column(col)
    for o in outcomes:
        colour = {"rendered": "green", "cached": "cyan", "failed": "red", "cancelled": "yellow", "changed": "yellow"}[o.status]
        detail = o.error or (_rel(o.files[0].parent, plan.project.root) + "/" + _best(o.files) if o.files else "")
        table.add_row(escape(o.job.name), o.job.kind, f"[{colour}]{o.status}[/{colour}]", str(len(o.files)), f"{o.seconds:.1f}", escape(detail))
    for problem in plan.problems:  # a cue or stem that could not even be planned is a failed row too
        subject = getattr(problem, "subject", None)
        if subject is not None and (not args.only or subject[1] in args.only):
            table.add_row(escape(subject[1]), subject[0], "[red]failed[/red]", "0", "-", escape(problem.reason))
    console.print(table)
    for o in outcomes:
        if o.error:
            err.print(f"error: {o.error}", highlight=False, markup=False)
    ok = all(o.ok for o in outcomes) and not plan.problems
    return 0 if ok else 1


def _best(files) -> str:
    """" best: <take> (CLAP 0.31)" when the takes were ranked (they come best first), else ""."""
    from host.output.takes import read_sidecar

    if len(files) < 2:
        return ""
    score = (read_sidecar(Path(files[0]).with_suffix(".json")) or {}).get("clap_score")
    return f" best: {Path(files[0]).name} (CLAP {score:.2f})" if isinstance(score, (int, float)) else ""


def _fully_cached(job, model_id: str, revision: str) -> bool:
    from host.runner import cached_takes

    try:
        return cached_takes(job, *_job_model(job, model_id, revision)) >= job.delivers
    except InputError:
        return False  # let the render report it


def _job_model(job, model_id: str, revision: str) -> tuple[str, str]:
    """(id, revision) of the model a job renders on: its preset's own, else the one given."""
    if not job.preset.model:
        return model_id, revision
    from host.engine.models import fingerprint

    return fingerprint(job.preset.model)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------- presets
def _presets_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from host.config.presets import BUILTIN_DIR, preset_library
    from host.finish.chain import check_chain

    library, problems = preset_library(args.project.resolve() if args.project else None, check_chain=check_chain)
    table = Table(title="presets")
    for col in ("name", "kind", "takes", "source", "description"):
        table.add_column(col)
    for name in sorted(library, key=lambda n: (library[n].preset.kind, n)):
        entry = library[name]
        source = "built-in" if entry.path.parent.resolve() == BUILTIN_DIR else "project"
        first = entry.preset.description.strip().splitlines()[0] if entry.preset.description.strip() else ""
        table.add_row(name, entry.preset.kind, str(entry.preset.takes), source, first)
    Console().print(table)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 0 if not problems else 1


def _presets_show(args) -> int:
    import difflib

    from host.config.presets import preset_library

    library, _ = preset_library(args.project.resolve() if args.project else None)
    entry = library.get(args.name)
    if entry is None:
        close = difflib.get_close_matches(args.name, list(library), n=3)
        raise InputError(f"preset {args.name}", "unknown preset" + (f"; did you mean {', '.join(close)}?" if close else ""))
    print(f"# {entry.path}  (sha256 {entry.content_hash})")
    print(entry.path.read_text(), end="")
    return 0


def _presets_check(args) -> int:
    from host.config.presets import check_presets
    from host.finish.chain import check_chain

    problems = check_presets(args.path, check_chain=check_chain)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if not problems:
        print("all presets valid")
    return 0 if not problems else 1


# ---------------------------------------------------------------------- takes and recall
def _project_root(path: Path) -> Path:
    from host.config.project import load_project

    return load_project(path).root


def _takes_list(args) -> int:
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from host.output.library import list_takes

    root = _project_root(args.project)
    rows = list_takes(root)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print(f"{root.name} has no takes yet")
        return 0
    table = Table(title=f"{root.name}: {sum(r.state == 'kept' for r in rows)} kept, {sum(r.state == 'rejected' for r in rows)} rejected, {sum(r.state == 'missing audio' for r in rows)} missing audio")
    table.add_column("take (in renders/)", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("preset", overflow="fold")
    for col in ("seed", "LUFS", "dBTP", "CLAP"):
        table.add_column(col, justify="right", no_wrap=True)
    colours = {"kept": "green", "rejected": "red", "missing audio": "yellow"}
    for r in rows:
        table.add_row(
            escape(r.path.removeprefix("renders/")), f"[{colours[r.state]}]{r.state}[/{colours[r.state]}]", escape(r.preset or ""),
            "" if r.seed is None else str(r.seed), _num(r.loudness, "{:.1f}"), _num(r.true_peak, "{:.1f}"), _num(r.clap_score, "{:.3f}"),
        )
    Console().print(table)
    return 0


def _num(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _takes_reject(args) -> int:
    from host.output.library import reject_take, relative_base

    root = _project_root(args.project)
    failed = 0
    for text in args.takes:
        given = Path(text).expanduser()
        # a path as the shell completed it (from here), else relative to the project, else to its
        # renders/ (as `takes list` shows them)
        base = Path.cwd() if given.is_absolute() or os.path.lexists(given) else relative_base(root, given)
        try:
            done = reject_take(root, text, base=base, tag=args.tag, via="cli", where=text or "take")
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"rejected {_rel(done.take, root)} -> {_rel(done.moved_to, root)}")
    return 0 if not failed else 1


def _recall(args) -> int:
    import json

    from host.recall import recall

    report = recall(args.sidecar, to=args.to, anyway=args.anyway, device=args.device)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    for line in report.differences:
        print(f"differs: {line}", file=sys.stderr)
    if not report.rendered:
        print("not rendered: with these differences the recalled take may not be bit-identical; --anyway renders it and reports the largest sample difference", file=sys.stderr)
        return 1
    if not args.json:
        print(f"recalled {report.path}")
        for note in report.notes:
            print(f"note: {note}")
        if report.max_difference is not None:
            if report.identical:
                print(f"bit-identical to {report.original.name}")
            else:
                print(f"largest sample difference against {report.original.name}: {_dbfs(report.max_difference)}"
                      + (f"; {report.length_difference:+d} frames" if report.length_difference else ""))
    if report.identical is False and not report.differences:
        print("error: nothing differs from when the take was rendered, yet the recalled take is not bit-identical", file=sys.stderr)
        return 1
    return 0


def _dbfs(value: float) -> str:
    import math

    return f"{value:.3g} ({20 * math.log10(value):.1f} dBFS)" if value > 0 else "0"


# ---------------------------------------------------------------------- daemon
def _serve(args) -> int:
    from host.daemon.serve import serve_from_args

    return serve_from_args(args)


def _status(args) -> int:
    from host.daemon.status import print_status

    return print_status(args)
