"""``audiohost serve``: wire the doors (OSC, watched folders) to the journal and the worker.

Start-up order: settings, the state directory's lock (one daemon per journal), the journal
checked and opened (re-queue what a crash left running), each project's renders/ checked and
the project locked (one writer per project), leftover temporaries removed from renders/, the
OSC door opens at once (ping answers while the model loads), the worker loads the model,
waiting work is picked up, folders are watched.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import signal
import sys
import threading
from pathlib import Path

import host as host_package
from host.daemon.announce import Announcer
from host.daemon.config import DaemonConfig, load_config
from host.daemon.logtext import OneLineFormatter
from host.daemon.service import RenderHost
from host.daemon.status import remove_replicas, write_replicas
from host.daemon.worker import Worker
from host.engine.models import DEFAULT_MODEL, fingerprint, load_model
from host.errors import InputError
from host.intake.osc import OscServer, RequestDispatcher
from host.intake.watch import FolderWatch
from host.jobs.journal import INTERRUPTED_TWICE, JournalDamaged, open_journal
from host.locks import lock_project, lock_state_dir
from host.output.files import remove_partials
from host.render.backend import ReplicaUnavailable
from host.runner import Runner

log = logging.getLogger("host.daemon")


def serve_from_args(args) -> int:
    overrides = {
        "projects": [str(p) for p in args.project] if args.project else None,
        "roots": [str(p) for p in args.root] if getattr(args, "root", None) else None,
        "model": args.model,
        "device": args.device,
        "compile": args.compile or None,
        "cpu_offload": args.cpu_offload or None,
        "osc_host": args.osc_host,
        "osc_port": args.osc_port,
        "reply_port": args.reply_port,
        "state_dir": str(args.state_dir) if args.state_dir else None,
        "batch_size": args.batch_size if args.batch_size != 8 else None,
        "threads": args.threads,
        "damaged_journal": getattr(args, "damaged_journal", None),
        "backend": getattr(args, "backend", None),
        "ray_address": getattr(args, "ray_address", None),
        "replicas": getattr(args, "replicas", None),
        "gpus_per_replica": getattr(args, "gpus_per_replica", None),
    }
    config = load_config(args.config, overrides)
    return serve(config)


def _setup_logging(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")  # text from outside stays on one line
    for h in list(root.handlers):
        root.removeHandler(h)
    console = logging.StreamHandler()
    console.setFormatter(fmt)
    console.addFilter(lambda record: getattr(record, "console", True))
    rotating = logging.handlers.RotatingFileHandler(state_dir / "audiohost.log", maxBytes=5_000_000, backupCount=3)
    rotating.setFormatter(fmt)
    root.addHandler(console)
    root.addHandler(rotating)
    for noisy in ("watchdog", "urllib3", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def serve(config: DaemonConfig, stop: threading.Event | None = None) -> int:
    _setup_logging(config.state_dir)
    with contextlib.ExitStack() as held:  # the locks: released when serving ends, however it ends
        return _serve(config, stop or threading.Event(), held)


def _refuse(err: Exception) -> int:
    """Start-up stops here: one line, exit code 2 (a supervisor sees a failed start)."""
    log.error("%s", err, extra={"console": False})  # into audiohost.log; the terminal gets the line below
    print(f"error: {err}", file=sys.stderr)
    return 2


def _serve(config: DaemonConfig, stop: threading.Event, held: contextlib.ExitStack) -> int:
    # 1. the state directory's lock, before anything reads or changes the queue
    try:
        held.enter_context(lock_state_dir(config.state_dir))
    except InputError as err:
        return _refuse(err)

    # 2. the journal, checked; then what a crash left running goes back in the queue
    try:
        journal, notice = open_journal(config.state_dir / "journal.sqlite", config.damaged_journal)
    except JournalDamaged as err:
        return _refuse(err)
    if notice:
        log.warning("%s", notice)
    announcer = Announcer(config.progress_per_second)
    for sub_host, sub_port, expires in journal.subscriptions():  # subscriptions survive a restart
        announcer.subscribe(sub_host, sub_port, expires)
    recovered, poisoned = journal.recover()
    if recovered:
        log.info("re-queued %d job(s) a previous run left unfinished: %s", len(recovered), recovered)
    for job_id in poisoned:
        log.error("job %d failed: %s", job_id, INTERRUPTED_TWICE)
        announcer.failed(job_id, INTERRUPTED_TWICE, journal.waiters(job_id))

    # 3. the projects: each one's renders/ must be its own, and each one locked for this daemon
    model_name = config.model
    try:
        from host.config.project import check_renders, load_project

        loaded = [load_project(p) for p in config.projects]
        for project in loaded:
            check_renders(project)
            held.enter_context(lock_project(project.root, "audiohost serve"))
    except InputError as err:
        return _refuse(err)
    # the model named by the config, else the first project's, else the default
    if model_name is None:
        model_name = next((p.settings.model for p in loaded if p.settings.model), None) or DEFAULT_MODEL
    cluster = None
    if config.backend != "local":
        cluster, problem = _join_cluster(config)
        if cluster is None and config.backend == "ray":
            log.error("--backend ray: %s", problem)  # one line, and nothing was opened
            return 2
        if cluster is None:
            log.warning("--backend auto: %s; rendering in-process on this machine instead", problem)
    try:
        model_id, revision = fingerprint(model_name)
    except InputError as err:
        if cluster is None:
            print(f"error: {err}")
            return 2
        model_id, revision = model_name, "unknown"  # the replicas' nodes may have it; they say what they loaded

    host = RenderHost(config, journal, announcer, model_id, revision)
    host.held = held  # projects served on request are locked for this daemon too
    for project in loaded:
        host.add_project(project.root)
        for leftover in remove_partials(project.renders_dir):  # under the project's lock: no live writer owns them
            log.info("removed an unfinished temporary file: %s", leftover)

    dispatcher = RequestDispatcher(host)
    host.dispatcher = dispatcher
    try:
        server = OscServer((config.osc_host, config.osc_port), dispatcher)
    except OSError as err:
        print(f"error: --osc-port {config.osc_port}: cannot listen on {config.osc_host}: {err.strerror}")
        return 2
    server.timeout = 0.5
    osc_thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="audiohost-osc", daemon=True)
    osc_thread.start()
    port = server.server_address[1]
    log.info("audiohost %s listening for OSC on %s:%d (replies to port %d)", host_package.__version__, config.osc_host, port, config.reply_port)
    (config.state_dir / "osc_port").write_text(str(port))
    if note := config.loopback_only_note():
        log.warning("%s", note)

    def make_runner() -> Runner:
        log.info("loading model %s", model_name)
        model = load_model(model_name, device=config.device, compile_unet=config.compile, cpu_offload=config.cpu_offload, threads=config.threads)
        host.model_id, host.model_revision = model.id, model.revision
        host.window_seconds = model.window_seconds
        log.info("model %s ready on %s", model.id, model.device)
        if config.compile:  # compile the shapes the presets render now, not in the middle of a user's render
            from host.engine.steps import warm_up

            shapes = [(model.frames_for(seconds), takes) for seconds, takes in host.preset_shapes(model.window_seconds, config.batch_size)]
            log.info("compiled the UNet for %d shape(s) the presets use", warm_up(model, shapes))

        def load_other(name: str):  # a preset that names its own checkpoint
            return load_model(name, device=config.device, compile_unet=config.compile, cpu_offload=config.cpu_offload, threads=config.threads)

        return Runner(model, batch_size=config.batch_size, max_stem_seconds=config.max_stem_seconds,
                      max_stem_bytes=int(config.max_stem_mb * 1e6), index=host.index, roots=lambda: host.roots, loader=load_other)

    pools = []

    def make_replicas() -> list[Runner]:
        """One Runner per replica on the cluster; returns once one has loaded the model."""
        from host.render.ray import ReplicaPool, ReplicaSpec, plan_replicas

        count, gpus, threads = plan_replicas(cluster.resources(), config.replicas, config.gpus_per_replica, config.threads, config.device)
        spec = ReplicaSpec(model=model_name, device=config.device, threads=threads, gpus=gpus, batch_size=config.batch_size,
                           compile=config.compile, cpu_offload=config.cpu_offload)
        log.info("starting %d replica(s) of %s on the Ray cluster at %s (%d node(s)), %s each", count, model_name, config.ray_address,
                 cluster.nodes(), f"{gpus:g} GPU" if gpus else f"{threads} CPU thread(s)")
        pool = ReplicaPool([spec] * count)
        pools.append(pool)
        info = pool.first_ready(stop)
        host.model_id, host.model_revision = info.id, info.revision
        host.window_seconds = info.window_seconds
        log.info("model %s ready on the cluster (%d replica(s) starting)", info.id, count)
        return [Runner(backend=replica, max_stem_seconds=config.max_stem_seconds, max_stem_bytes=int(config.max_stem_mb * 1e6), index=host.index,
                       roots=lambda: host.roots)
                for replica in pool.replicas]

    exit_code = {"value": 0}

    def fatal(reason: str) -> None:
        print(f"error: {reason}", file=sys.stderr)
        exit_code["value"] = 1
        stop.set()

    worker = Worker(make_replicas if cluster is not None else make_runner, journal, announcer, host.wake, config.batch_size,
                    on_fatal=fatal, on_job_end=host.take_backlog, on_replicas=lambda replicas: write_replicas(config.state_dir, replicas))
    host.worker = worker
    worker.start()

    watch = FolderWatch(
        config.settle_seconds,
        config.polling,
        on_stem=lambda root, path: host.enqueue_stem(host.projects[root], path),
        on_project_file=lambda root, path: _project_file_changed(host, root, path),
    )
    for project in host.projects.values():
        watch.add_project(project.root)
    host.watch = watch  # projects a client asks to serve (/audiohost/serve) are watched too
    watch.start()

    def request_stop(signum, _frame) -> None:
        log.info("signal %d: stopping after the current step", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    while not worker.ready.wait(0.5) and not stop.is_set():
        pass  # a signal while the model loads stops the daemon
    if worker.load_error is not None:
        server.shutdown()
        watch.stop()
        _leave_cluster(pools, cluster)
        if not isinstance(worker.load_error, (InputError, ReplicaUnavailable)):  # those were logged in one line already
            print(f"error: {worker.load_error}")
        return 2
    if worker.ready.is_set():  # (not when a signal came while it loaded)
        for project in host.projects.values():
            ids = host.enqueue_project(project, only_cues=True)
            if ids:
                log.info("%s: %d cue(s) waiting in the cue sheet", project.name, len(ids))
            waiting = watch.settle_existing(project.root)  # stems already there must hold still too
            if waiting:
                log.info("%s: %d stem(s) waiting in the drop folders", project.name, waiting)
        log.info("ready")

    stop.wait()
    log.info("stopping")
    watch.stop()
    worker.stop()
    worker.join(timeout=60)
    _leave_cluster(pools, cluster)
    remove_replicas(config.state_dir)
    server.shutdown()
    server.server_close()
    host.intake.shutdown(wait=True)
    journal.close()
    log.info("stopped")
    return exit_code["value"]


def _join_cluster(config: DaemonConfig):
    """(the Ray cluster joined, None) or (None, why not in one line)."""
    try:
        from host.render.ray import ClusterUnreachable, connect
    except ModuleNotFoundError as err:
        if err.name != "ray":
            raise
        return None, "Ray is not installed (pip install 'audiohost[ray]')"
    try:
        return connect(config.ray_address), None
    except (ClusterUnreachable, InputError) as err:
        return None, str(err)


def _leave_cluster(pools, cluster) -> None:
    for pool in pools:
        pool.close()
    if cluster is not None:
        cluster.close()


def _project_file_changed(host: RenderHost, root: Path, path: Path) -> None:
    try:
        project = host.reload_project(root)
    except InputError as err:
        host.report_problem(err)
        return
    host.forget_presets(project)
    ids = host.enqueue_project(project, only_cues=True)
    log.info("%s changed: %d cue(s) to render", path.name, len(ids))
