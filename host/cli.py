"""The command line: ``audiohost render``, ``presets``, ``serve``, ``status``, ``request`` and ``daw``."""

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
    s.set_defaults(func=_serve)

    st = sub.add_parser("status", help="print the job queue from the journal", description="Print the daemon's queue, whether it is running or not.")
    st.add_argument("--state-dir", type=Path, default=None)
    st.add_argument("--all", action="store_true", help="include finished jobs")
    st.set_defaults(func=_status)

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
                have = 0 if args.force else cached_takes(job, model_id, revision)
                state = "rendered" if have >= job.preset.takes else ("new" if have == 0 else f"{have} of {job.preset.takes} done")
            except InputError as e:
                state = f"error: {e.reason}"
            table.add_row(job.name, job.kind, job.preset_name, str(job.preset.takes), state)
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
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from host.engine.models import load_model
    from host.runner import Runner

    with console.status(f"loading {model_name}"):
        model = load_model(model_name, device=args.device, compile_unet=args.compile, cpu_offload=args.cpu_offload, threads=args.threads)
    runner = Runner(model, batch_size=args.batch_size)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console, transient=False) as progress:
        tasks = {id(j): progress.add_task(f"{j.kind:8} {j.name}", total=1.0) for j in jobs}
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
        detail = o.error or (_rel(o.files[0].parent, plan.project.root) + "/" if o.files else "")
        table.add_row(o.job.name, o.job.kind, f"[{colour}]{o.status}[/{colour}]", str(len(o.files)), f"{o.seconds:.1f}", detail)
    console.print(table)
    for o in outcomes:
        if o.error:
            err.print(f"error: {o.error}", highlight=False, markup=False)
    ok = all(o.ok for o in outcomes) and not plan.problems
    return 0 if ok else 1


def _fully_cached(job, model_id: str, revision: str) -> bool:
    from host.runner import cached_takes

    try:
        return cached_takes(job, model_id, revision) >= job.preset.takes
    except InputError:
        return False  # let the render report it


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

    library, problems = preset_library(args.project.resolve() if args.project else None)
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

    problems = check_presets(args.path)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if not problems:
        print("all presets valid")
    return 0 if not problems else 1


# ---------------------------------------------------------------------- daemon
def _serve(args) -> int:
    from host.daemon.serve import serve_from_args

    return serve_from_args(args)


def _status(args) -> int:
    from host.daemon.status import print_status

    return print_status(args)
