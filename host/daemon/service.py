"""The daemon's shared state and the operations both doors (OSC, folders) use to hand in work.

Requests become Job values here and go into the journal; the worker renders them. Everything
a request names (project, preset, path) is checked before anything is queued, so a refused
request changes nothing.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import random
import re
import threading
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

from host.config.paths import confine
from host.config.presets import PresetEntry, apply_overrides, near_miss, preset_library
from host.config.project import DEFAULT_PRESET, DEFAULT_PRESET_HASH, Project, load_cues, load_project
from host.daemon.announce import Announcer, done_fits
from host.daemon.config import DaemonConfig
from host.engine.bands import nyquist_problem
from host.errors import InputError
from host.finish.chain import check_chain
from host.intake.audio import inspect_stem
from host.intake.drops import stem_from_path
from host.intake.limits import MAX_REPLY_BYTES
from host.jobs.build import job_from_cue, job_from_preset, job_from_stem
from host.jobs.job import Job
from host.jobs.journal import PRIORITY_FOLDER, PRIORITY_OSC, Journal, QueueFull
from host.output.files import file_sha256
from host.output.takes import TakeIndex, take_base, take_folder
from host.runner import cached_takes

log = logging.getLogger(__name__)

# "prompt:rain" is the prompt "rain", even where a preset of (nearly) that name exists
PROMPT_PREFIX = "prompt:"


class RenderHost:
    def __init__(self, config: DaemonConfig, journal: Journal, announcer: Announcer, model_id: str, model_revision: str):
        self.config = config
        self.journal = journal
        self.announcer = announcer
        self.model_id = model_id
        self.model_revision = model_revision
        self.projects: dict[Path, Project] = {}
        self._presets: dict[Path, dict[str, PresetEntry]] = {}
        self._broken: dict[Path, dict[Optional[str], InputError]] = {}  # preset files that did not load, by name
        self._lock = threading.RLock()
        self.wake = threading.Event()  # set when work arrives
        self.worker = None  # set by serve(); cancel() reaches the running job through it
        self.dispatcher = None
        self.refused = 0  # requests answered with /audiohost/error
        self.window_seconds: Optional[float] = None  # the model's window, once it is loaded
        self.index = TakeIndex()  # takes on disk, shared with the renderer
        self._fingerprints: dict[str, tuple[str, str]] = {}  # a preset's model -> (id, revision)
        self.backlog: deque[Job] = deque()  # folder work that met a full queue, waiting for room
        self.intake = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audiohost-intake")
        self.watch = None  # the folder watch, set by serve(); projects served on request join it
        self.held = None  # serve()'s ExitStack of locks; projects served on request are locked into it
        self._reply_ports: OrderedDict[tuple[str, int], int] = OrderedDict()  # see reply_address

    # ---------------------------------------------------------------- projects and presets
    def add_project(self, root: Path) -> Project:
        project = load_project(root)
        with self._lock:
            self.projects[project.root] = project
            self._presets.pop(project.root, None)
        for folder in (project.restyle_dir, project.inpaint_dir, project.superres_dir, project.renders_dir):
            folder.mkdir(exist_ok=True)
        return project

    def reload_project(self, root: Path) -> Project:
        return self.add_project(root)

    @property
    def roots(self) -> list[Path]:
        return list(self.projects) + [Path(r).resolve() for r in self.config.roots]

    def project(self, name_or_path: str, where: str) -> Project:
        """A served project by folder name or by path; refused (not recreated) if its folder is gone."""
        with self._lock:
            found = None
            for project in self.projects.values():
                if name_or_path == project.name or name_or_path == str(project.root):
                    found = project
            if found is None and ("/" in name_or_path or name_or_path.startswith("~")):
                root = confine(name_or_path, self.roots, where)
                found = self.projects.get(root)
            if found is not None:
                if not found.root.is_dir():
                    raise InputError(where, f"project '{found.name}' is gone: its folder {found.root} no longer exists")
                return found
        names = ", ".join(sorted(p.name for p in self.projects.values())) or "none"
        raise InputError(where, f"unknown project '{name_or_path}' (serving: {names})")

    def presets(self, project: Project) -> dict[str, PresetEntry]:
        with self._lock:
            if project.root not in self._presets:
                library, problems = preset_library(project.root, check_chain=check_chain)  # on the intake thread: a VST3 loads here
                for p in problems:
                    log.error("%s", p)
                self._presets[project.root] = library
                self._broken[project.root] = {getattr(p, "preset_name", None): p for p in problems}
            return self._presets[project.root]

    def preset_shapes(self, window_seconds: float, batch_size: int) -> list[tuple[float, int]]:
        """(seconds, takes a call) of every denoising call the served projects' presets make: a
        foley preset's duration (a long one: its windows) and takes, a stem preset's window."""
        shapes = set()
        for project in list(self.projects.values()):
            for entry in self.presets(project).values():
                p = entry.preset
                if p.kind == "foley":
                    shapes.add((min(p.duration, window_seconds), min(p.takes, batch_size)))
                else:
                    shapes.add((window_seconds, min(p.takes, batch_size)))
        return sorted(shapes)

    def broken_preset(self, project: Project, name: str) -> Optional[InputError]:
        """Why the preset file of this name could not be loaded, if one could not."""
        self.presets(project)
        with self._lock:
            return self._broken.get(project.root, {}).get(name)

    def forget_presets(self, project: Project) -> None:
        with self._lock:
            self._presets.pop(project.root, None)

    def input_path(self, path: str, project: Project, where: str) -> Path:
        resolved = confine(path, self.roots, where, base=project.root)
        if not resolved.is_file():
            raise InputError(where, f"'{path}' is not a file")
        size = resolved.stat().st_size
        if size > self.config.max_stem_mb * 1e6:
            raise InputError(where, f"'{path}' is {size / 1e6:.0f} MB; the limit is {self.config.max_stem_mb:g} MB")
        return resolved

    # ---------------------------------------------------------------- slow work off the OSC thread
    def defer(self, req, work: Callable[[], None]) -> None:
        """Run the slow part of a request (preset libraries, checking and hashing a stem, the
        journal's full-sync commit) on the intake thread, so the thread that answers ping never
        waits on it. Its refusal is answered from there; requests keep their order."""

        def run() -> None:
            try:
                work()
            except InputError as err:
                self.refuse(req, err)
            except Exception as err:  # noqa: BLE001 - nothing may end the intake thread
                log.exception("request %s failed", req.address)
                self.refuse(req, InputError(req.address, f"internal error: {type(err).__name__}"))

        self.intake.submit(run)

    # ---------------------------------------------------------------- requests into jobs
    def job_for(self, project: Project, kind: str, what: str, overrides: dict, where: str, input: Optional[Path] = None, gaps=None, region=None) -> Job:
        """A job from "prompt or preset": a preset of that name, else a prompt for the default
        preset of the kind. A text one edit away from a preset's name is refused with "did you
        mean" (``prompt:`` in front forces a prompt). A foley job without a seed gets one now, so
        a retry renders the same."""
        library = self.presets(project)
        forced = what.startswith(PROMPT_PREFIX)
        if forced:
            what = what[len(PROMPT_PREFIX):].strip()
        if what in library and not forced:
            entry = library[what]
            if entry.preset.kind != kind:
                raise InputError(where, f"preset '{what}' is a {entry.preset.kind} preset, not {kind}")
            name, preset_name, preset_hash, preset = what, what, entry.content_hash, entry.preset
        else:
            broken = None if forced else self.broken_preset(project, what)
            if broken is not None:  # a preset by that name exists but does not load: never a prompt by accident
                raise InputError(where, f"preset '{what}' cannot be used: {broken}")
            near = None if forced else near_miss(what, library)
            if near is not None:
                raise InputError(where, f"no preset '{what}'; did you mean '{near}'? (send '{PROMPT_PREFIX}{what}' to use it as a prompt)")
            default_name = None if kind == "foley" else getattr(project.settings, f"{kind}_preset")
            if default_name is None:
                preset_name, preset_hash, preset = "default", DEFAULT_PRESET_HASH, DEFAULT_PRESET
            elif default_name in library:
                preset_name, preset_hash, preset = default_name, library[default_name].content_hash, library[default_name].preset
            else:
                raise InputError(where, f"the project's default {kind} preset '{default_name}' does not exist")
            if what:
                overrides = {**overrides, "prompt": what}
            elif kind == "foley":
                close = difflib.get_close_matches(what, list(library), n=1)
                raise InputError(where, "empty prompt" + (f"; did you mean preset '{close[0]}'?" if close else ""))
            name = _slug(what) if kind == "foley" and what else (input.stem if input else preset_name)
        if input is not None:
            name = _slug(input.stem)
        if kind == "foley" and overrides.get("seed") is None and preset.seed is None:
            overrides = {**overrides, "seed": random.randrange(2**31)}
        preset = apply_overrides(preset, overrides, where) if overrides else preset
        job = job_from_preset(project, name, preset_name, preset_hash, preset, input=input, gaps=gaps, source="osc", region=region)
        return self.accept_input(job, where)

    def accept_input(self, job: Job, where: str) -> Job:
        """A job's stem checked now, so a request that cannot be satisfied is refused at once: a
        regular file inside the roots, whole (not still being written), read as audio, not too
        long, its gaps inside it, a given cutoff (superres) under its Nyquist frequency (a region
        was checked on arrival); its content hashed once, the
        hash carried on the job from here on."""
        if not job.input:
            return job
        check = inspect_stem(Path(job.input), self.roots, self.config.max_stem_seconds, int(self.config.max_stem_mb * 1e6), where)
        seconds = check.seconds
        if job.kind == "superres" and job.preset.cutoff is not None:
            problem = nyquist_problem(job.preset.cutoff, check.rate)
            if problem:
                raise InputError(f"{where} cutoff", problem)
        if job.gaps:
            for start, end in job.gaps:
                if end > seconds + 1e-9:
                    raise InputError(where, f"gap {start:g}-{end:g} s lies outside the file (0-{seconds:.3f} s)")
                if self.window_seconds and end - start > self.window_seconds - 1.0:
                    raise InputError(where, f"gap {start:g}-{end:g} s is {end - start:.2f} s long; at most {self.window_seconds - 1.0:.2f} s can be filled")
        return job.model_copy(update={"input_sha256": check.sha256})

    def submit_request(self, job: Job, req, tag: str) -> int:
        check_done_reply(job, req.address)
        reply_to = self.reply_address(req)
        job_id = self.submit(job, PRIORITY_OSC, tag, reply_to, where=req.address)
        return job_id

    def submit_cues(self, project: Project, cue: Optional[str], req, tag: str) -> list[int]:
        """The whole cue sheet (or one cue) as one commit: every cue is queued, or none is."""
        cues, problems = load_cues(project, self.presets(project), check_chain=check_chain)
        if cue is not None:
            cues = [c for c in cues if c.name == cue]
            if not cues:
                bad = [p for p in problems if f'"{cue}"' in p.where or "cue" in p.where]
                raise InputError(req.address, f"no valid cue '{cue}' in {project.name}" + (f" ({bad[0]})" if bad else ""))
            problems = []
        reply_to = self.reply_address(req)
        jobs = [job_from_cue(project, c, source="osc") for c in cues]
        for job in jobs:
            check_done_reply(job, req.address)
        try:
            added = self.journal.add_all(jobs, PRIORITY_OSC, tag, reply_to, [dedupe_value(j) for j in jobs], bound=self.config.queue_bound)
        except QueueFull as err:
            raise InputError(req.address, f"{err}; nothing was queued") from None
        for p in problems:
            self.announcer.send("/audiohost/error", [req.address, str(p)], reply_to, subscribers=False)
        for (job_id, new), job in zip(added, jobs):
            self.announcer.queued(job_id, tag, reply_to)
            if new:
                log.info("queued job %d: %s %s (%s)", job_id, job.kind, job.name, job.source)
        self.wake.set()
        return [job_id for job_id, _ in added]

    def submit(self, job: Job, priority: int, tag: str = "", reply_to=None, where: str = "queue") -> int:
        try:
            job_id, new = self.journal.add(job, priority, tag, reply_to, dedupe=dedupe_value(job), bound=self.config.queue_bound)
        except QueueFull as err:
            raise InputError(where, str(err)) from None
        self.announcer.queued(job_id, tag, reply_to)
        if new:
            log.info("queued job %d: %s %s (%s)", job_id, job.kind, job.name, job.source)
        self.wake.set()
        return job_id

    def enqueue_project(self, project: Project, only_cues: bool = False) -> list[int]:
        """Folder work: the cues and stems of a project that are not rendered yet."""
        library = self.presets(project)
        ids = []
        cues, problems = load_cues(project, library, check_chain=check_chain)
        jobs = [job_from_cue(project, c) for c in cues]
        if not only_cues:
            from host.intake.drops import scan_drops

            stems, stem_problems = scan_drops(project, library)
            problems += stem_problems
            jobs += [job_from_stem(project, s) for s in stems]
        for p in problems:
            self.report_problem(p)
        for job in jobs:
            job_id = self._submit_folder(job)
            if job_id is not None and job_id > 0:
                ids.append(job_id)
        return ids

    def enqueue_stem(self, project: Project, path: Path) -> Optional[int]:
        try:
            stem = stem_from_path(project, self.presets(project), path)
        except InputError as err:
            self.report_problem(err)
            return None
        return self._submit_folder(job_from_stem(project, stem))

    def _submit_folder(self, job: Job) -> Optional[int]:
        """Folder work into the queue, unless it is rendered already or failed before with the same
        content and settings. A full queue does not drop it: it waits for room."""
        where = job.input or f"cue {job.name}"
        try:
            job = self.accept_input(job, where)
        except InputError as err:
            self.report_problem(err)
            return None
        if not self._needs_render(job):
            return None
        dedupe = dedupe_value(job)
        failed = self.journal.failed_before(dedupe)
        if failed is not None:
            log.info("%s: not retried, job %d failed with the same content and settings (%s); change it or its sidecar to try again", where, failed[0], failed[1])
            return None
        try:
            return self.submit(job, PRIORITY_FOLDER, "", None, where=where)
        except InputError:
            with self._lock:
                if all(dedupe_value(j) != dedupe for j in self.backlog):
                    self.backlog.append(job)
                waiting = len(self.backlog)
            log.warning("queue full: %s waits for room (%d folder job(s) waiting)", where, waiting)
            return -1

    def take_backlog(self) -> None:
        """Room in the queue: folder work that met a full queue goes in now (on the intake thread)."""
        with self._lock:
            if not self.backlog:
                return

        def drain() -> None:
            while True:
                with self._lock:
                    if not self.backlog:
                        return
                    job = self.backlog[0]
                try:
                    self.submit(job, PRIORITY_FOLDER, "", None, where=job.input or f"cue {job.name}")
                except InputError:
                    return  # still full: the next finished job tries again
                with self._lock:
                    if self.backlog and self.backlog[0] is job:
                        self.backlog.popleft()

        self.intake.submit(drain)

    def _needs_render(self, job: Job) -> bool:
        try:
            model_id, revision = self._model_of(job)
            return cached_takes(job, model_id, revision, self.index) < job.delivers
        except InputError:
            return True  # let the render fail it in the journal, where the user sees it

    def _model_of(self, job: Job) -> tuple[str, str]:
        """(id, revision) of the model the job renders on: its preset's, else the daemon's."""
        if not job.preset.model:
            return self.model_id, self.model_revision
        with self._lock:
            if job.preset.model not in self._fingerprints:
                from host.engine.models import fingerprint

                self._fingerprints[job.preset.model] = fingerprint(job.preset.model)
            return self._fingerprints[job.preset.model]

    def report_problem(self, err: InputError) -> None:
        log.error("%s", err)
        self.announcer.send("/audiohost/error", ["folder", str(err)[:300]])

    # ---------------------------------------------------------------- takes
    def reject(self, project: Project, path: str, tag: str, where: str):
        """Reject a take of a served project (``path`` absolute, or relative to the project or its
        renders/): moved to renders/.rejected/, never rendered again (host.output.library)."""
        from host.output.library import reject_take, relative_base

        given = Path(path).expanduser()
        base = project.root if given.is_absolute() else relative_base(project.root, given)
        done = reject_take(project.root, given, base=base, tag=tag, via="osc", where=where)
        log.info("rejected %s -> %s (%s)", done.take, done.moved_to, where)
        return done

    # ---------------------------------------------------------------- control
    def cancel(self, job_id: int, where: str, canceller=None) -> str:
        """"cancelled" (it had not started), "running" (it stops at the next denoising step and
        /job/cancelled follows), or InputError when it is too late or there is no such job."""
        entry = self.journal.get(job_id)
        if entry is None:
            raise InputError(where, f"no job {job_id}")
        if self.journal.cancel_queued(job_id):
            waiters = self.journal.waiters(job_id)
            self.announcer.cancelled(job_id, waiters)
            if canceller is not None and self.reply_address(canceller) not in {w.reply_to for w in waiters}:
                self.reply(canceller, "/audiohost/job/cancelled", [job_id, entry.tag])  # someone else asked
            return "cancelled"
        if self.worker is not None and self.worker.cancel(job_id):
            return "running"
        entry = self.journal.get(job_id)  # its state now, not when the cancel arrived
        if entry.state == "running":
            raise InputError(where, f"job {job_id} is already rendered and being written; it cannot be cancelled any more")
        raise InputError(where, f"job {job_id} is already {entry.state}")

    def subscribe(self, host: str, port: int, seconds: float) -> float:
        """Every job event also goes to host:port until the subscription expires (kept in the
        journal, so a restart keeps it); 0 seconds ends it."""
        if seconds <= 0:
            self.journal.unsubscribe(host, port)
            self.announcer.unsubscribe(host, port)
            return 0.0
        expires = self.journal.subscribe(host, port, seconds)
        self.announcer.subscribe(host, port, expires)
        return expires

    def reply(self, req, address: str, args: list) -> None:
        self.announcer.send(address, args, self.reply_address(req), subscribers=False)

    def refuse(self, req, err: InputError) -> None:
        # the reason names the field when the error is about one ("duration: must be ...")
        with self._lock:
            self.refused += 1
        field = err.where[len(req.address):].strip() if err.where.startswith(req.address) else err.where
        reason = f"{field}: {err.reason}" if field else err.reason
        log.warning("refused %s from %s: %s", req.address, req.sender[0], reason)
        self.announcer.error(req.address, reason, self.reply_address(req))

    def stats(self) -> dict:
        counts = self.journal.counts()
        d = self.dispatcher
        return {
            "jobs_done": counts["done"],
            "denoise_calls": self.worker.denoise_calls if self.worker else 0,
            "malformed": d.malformed if d else 0,
            "refused": self.refused,
            "queued": counts["queued"] + counts["running"],
            "dropped": d.dropped if d else 0,  # appended after the others: old clients read the first six
            "replicas": self.worker.replicas() if self.worker else [],  # appended after dropped
        }


    # ---------------------------------------------------------------- DAW clients (issue 8)
    # A client (``audiohost request``, the Reaper scripts, the Max for Live device) names the
    # port its replies go to with /audiohost/replyport, so it never fights a DAW listening on
    # the default reply port. The choice belongs to the socket it sends from (host and port).
    REPLY_PORTS_KEPT = 4096

    def reply_address(self, req) -> tuple[str, int]:
        """Where replies to this request go: the port its socket chose, else the reply port."""
        with self._lock:
            port = self._reply_ports.get((req.sender[0], int(req.sender[1])))
        return (req.sender[0], port or self.config.reply_port)

    def set_reply_port(self, req, port: int) -> None:
        key = (req.sender[0], int(req.sender[1]))
        with self._lock:
            self._reply_ports[key] = int(port)
            self._reply_ports.move_to_end(key)
            while len(self._reply_ports) > self.REPLY_PORTS_KEPT:  # forget the longest-unused sockets
                self._reply_ports.popitem(last=False)

    def preset_list(self, project: Project) -> list[tuple[str, str]]:
        """(name, kind) of every preset the project can use, by kind then name."""
        library = self.presets(project)
        return sorted(((name, entry.preset.kind) for name, entry in library.items()), key=lambda p: (p[1], p[0]))

    def project_list(self) -> list[tuple[str, str]]:
        """(name, folder) of every served project, by folder."""
        with self._lock:
            return sorted(((p.name, str(p.root)) for p in self.projects.values()), key=lambda p: p[1])

    def serve_project(self, path: str, where: str) -> Project:
        """Serve a project folder a client asks for: already served, or inside a configured root
        (created if missing). Nothing outside the roots is created or served."""
        roots = [Path(r).resolve() for r in self.config.roots]
        if not path or "\x00" in path or not Path(path).expanduser().is_absolute():
            raise InputError(where, f"'{path}' is not an absolute folder path")
        with self._lock:
            for project in self.projects.values():
                if Path(path).expanduser().resolve() == project.root:
                    return project
        if not roots:
            raise InputError(where, "this host has no roots to create projects in (set roots in its config, or start it with --root)")
        folder = confine(path, roots, where)
        with self._lock:
            for root in self.projects:
                if root in folder.parents:
                    raise InputError(where, f"'{path}' is inside the served project '{root.name}'")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(where, f"cannot create '{path}': {err.strerror or err}") from None
        if confine(folder, roots, where) != folder:  # a link swapped in while it was created
            raise InputError(where, f"'{path}' is outside the project roots this host serves")
        from host.output.files import remove_partials

        from host.config.project import check_renders, load_project
        from host.locks import lock_project

        check_renders(load_project(folder))
        if self.held is not None:  # one writer per project: this daemon, from now on
            self.held.enter_context(lock_project(folder.resolve(), "audiohost serve"))
        project = self.add_project(folder)
        for leftover in remove_partials(project.renders_dir):
            log.info("removed an unfinished temporary file: %s", leftover)
        if self.watch is not None:
            self.watch.add_project(project.root)
        log.info("serving %s on request (%s)", project.root, where)
        self.enqueue_project(project)
        return project


def check_done_reply(job: Job, where: str) -> None:
    """Refuse an OSC request whose ``/audiohost/job/done`` reply could not carry every take's
    path within the reply limit (the requester would get only some of its files)."""
    try:
        base = take_base(job)[0]
    except InputError as err:
        raise InputError(where, str(err)) from None
    widest = str(take_folder(Path(job.project), job.kind, job.name) / f"{base}_t9999.flac")
    takes = job.preset.takes
    if done_fits([widest] * takes):
        return
    fits = next((n for n in range(takes - 1, 0, -1) if done_fits([widest] * n)), 0)
    raise InputError(
        f"{where} takes",
        f"{takes} takes of '{job.name}' have paths of up to {len(widest.encode())} bytes, more than one {MAX_REPLY_BYTES}-byte reply holds; at most {fits} per request here",
    )


def reply_pages(head: list, items: list[tuple[str, str]], budget: int = 3400) -> list[list[tuple[str, str]]]:
    """``items`` split into pages whose OSC reply (``head`` arguments, then the pairs) stays
    within ``budget`` bytes, leaving room under the 4 KB reply limit for the address and a tag.
    Always at least one page (an empty one when there is nothing to list)."""

    def size(text: str) -> int:  # an OSC string: UTF-8, a NUL, padded to 4 bytes, plus its type tag
        return (len(str(text).encode()) // 4 + 1) * 4 + 1

    base = sum(size(a) if isinstance(a, str) else 5 for a in head) + 8
    pages: list[list[tuple[str, str]]] = [[]]
    used = base
    for pair in items:
        cost = size(pair[0]) + size(pair[1])
        if pages[-1] and used + cost > budget:
            pages.append([])
            used = base
        pages[-1].append(pair)
        used += cost
    return pages


def dedupe_value(job: Job) -> str:
    """Same request, same content: an open job with this value is not queued twice."""
    digest = hashlib.sha256(job.model_dump_json(exclude={"source"}).encode())
    if job.input and job.input_sha256 is None and Path(job.input).is_file():  # (accepted jobs carry it)
        digest.update(file_sha256(Path(job.input)).encode())
    return digest.hexdigest()


def _slug(text: str, limit: int = 48) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text.lower()).strip("-")
    return (slug[:limit].rstrip("-") or "untitled")
