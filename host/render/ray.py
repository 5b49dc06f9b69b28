"""The Ray render backend: the model as replicas on a Ray cluster, every take still rendered once.

Imported only for ``audiohost serve --backend ray|auto``, so the default install needs no Ray.

What runs where:

1. **the daemon** (a Ray *driver*) keeps the journal, the OSC door, the watched folders, planning
   and finishing; one claiming loop per replica (``host.daemon.worker``) hands a replica work only
   when it is free, and no more than it can batch;
2. **a replica** (:class:`Replica`, a Ray actor: one GPU, or ``threads`` CPUs on a CPU-only
   cluster) loads the model once on its own device and renders :class:`RenderWork` values into
   :class:`Rendered` ones (mono takes at the model's 16 kHz) with the in-process backend. It
   writes nothing and keeps no state that matters: no shared filesystem between machines.

Progress and cancel: an actor cannot call back into the daemon, so a replica renders on one of
its threads (``max_concurrency`` > 1) and the daemon polls it a few times a second: each poll
carries the works the daemon wants stopped and brings back every work's progress. A stopped work
ends at its next denoising step, its batch-mates render on.

Faults: a replica whose process dies, or whose node is lost, fails its pending render with an
actor error; :meth:`RemoteReplica.render` turns that into :class:`ReplicaLost` and the daemon puts
the jobs back in the queue (another replica renders them; nothing was written). Ray restarts the
actor (``max_restarts``), on another node if its own is gone; a replica that is dead for good
(``ray.kill``, restarts used up) or cannot load the model is reported in one line
(:class:`ReplicaUnavailable`) and the others carry on.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Hashable, Optional, Sequence

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before Ray is imported: nothing phones home

import ray  # noqa: E402
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError  # noqa: E402

import host as host_package  # noqa: E402
from host.errors import InputError  # noqa: E402
from host.render.backend import IsCancelled, ModelInfo, Progress, Rendered, RenderWork, ReplicaLost, ReplicaUnavailable  # noqa: E402

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # how often the daemon asks a busy replica for progress (and passes cancels)
RESTARTS = 3  # times Ray brings a replica back after its process or node died
CONNECT_SECONDS = 5.0  # a cluster address that does not answer in this long is unreachable
ACTOR_THREADS = 4  # the render, and polls served beside it


class ClusterUnreachable(Exception):
    """The Ray cluster cannot be joined; ``str()`` is one line naming the address and why."""


# ---------------------------------------------------------------------------------- the cluster
class RayCluster:
    """This process's membership of a Ray cluster (a driver)."""

    def __init__(self, address: str, owned: bool):
        self.address = address
        self.owned = owned  # we called ray.init, so we call ray.shutdown

    def resources(self) -> dict[str, float]:
        return dict(ray.cluster_resources())

    def nodes(self) -> int:
        return sum(1 for n in ray.nodes() if n.get("Alive"))

    def close(self) -> None:
        if self.owned and ray.is_initialized():
            ray.shutdown()


def connect(address: str = "auto", timeout: float = CONNECT_SECONDS) -> RayCluster:
    """Join the cluster at ``address``: ``auto`` (the cluster ``ray start`` runs on this machine,
    or ``RAY_ADDRESS``), ``HOST:PORT`` (its GCS), ``ray://HOST:10001`` (Ray Client), or ``local``
    (start a private Ray on this machine). Raises :class:`ClusterUnreachable`."""
    if ray.is_initialized():  # this process is a driver already (a test session's cluster)
        return RayCluster(address, owned=False)
    if address != "local":
        _probe(address, timeout)
    kwargs = dict(log_to_driver=False, logging_level=logging.WARNING)
    if address == "local":
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=None if address == "local" else address, **kwargs)
    except Exception as err:  # noqa: BLE001 - ConnectionError, auth errors, bad addresses: one line
        raise ClusterUnreachable(f"cannot join the Ray cluster at {address}: {_reason(err)}") from None
    return RayCluster(address, owned=True)


def _probe(address: str, timeout: float) -> None:
    """Fail fast (one line) when nothing answers at the cluster's address; Ray itself would retry
    for minutes before giving up."""
    target = address
    if address == "auto":
        none = "no Ray cluster runs on this machine (start one with 'ray start --head', or pass --ray-address HOST:PORT or ray://HOST:10001)"
        try:
            from ray._private.services import canonicalize_bootstrap_address

            target = canonicalize_bootstrap_address("auto")  # RAY_ADDRESS, else the cluster 'ray start' recorded
        except ConnectionError:
            raise ClusterUnreachable(none) from None
        except Exception as err:  # noqa: BLE001
            raise ClusterUnreachable(f"{none}: {_reason(err)}") from None
        if not target:
            raise ClusterUnreachable(none)
    host, port = split_address(target)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        why = "timed out" if isinstance(err, TimeoutError) else (err.strerror or type(err).__name__).lower()
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {address} ({host}:{port}): {why}") from None


def split_address(address: str) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` or ``ray://HOST:PORT``; InputError when it is neither."""
    m = re.fullmatch(r"(?:ray://)?(\[[0-9a-fA-F:]+\]|[^:/\s]+):(\d{1,5})", address.strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        raise InputError("ray_address", f"'{address}' is not auto, local, HOST:PORT or ray://HOST:PORT")
    return m.group(1).strip("[]"), int(m.group(2))


# ---------------------------------------------------------------------------------- a replica (in the cluster)
@dataclass(frozen=True)
class ReplicaSpec:
    """What a replica loads and what it asks the cluster for: picklable, sent to the actor."""

    model: str
    device: Optional[str] = None  # None: cuda when the replica has a GPU, else cpu
    threads: int = 1  # torch CPU threads (and the CPUs a CPU replica reserves)
    gpus: float = 0.0  # GPUs a replica reserves (0: a CPU replica)
    batch_size: int = 8
    compile: bool = False
    cpu_offload: bool = False


class Replica:
    """A model replica: a Ray actor on some node. Loads the model once, renders, writes nothing.

    ``render`` runs on one of the actor's threads; ``poll`` (served beside it) passes cancels in
    and progress out."""

    def __init__(self, spec: ReplicaSpec):
        self._lock = threading.Lock()
        self._progress: dict[Hashable, float] = {}
        self._active: set = set()
        self._cancel: set = set()
        self.backend = None
        self.error: Optional[str] = None
        self.node = socket.gethostname()
        try:
            self.address = ray.util.get_node_ip_address()
        except Exception:  # noqa: BLE001
            self.address = ""
        gpu_ids = [str(g) for g in ray.get_gpu_ids()] if spec.gpus else []
        try:
            from host.engine.models import fingerprint, load_model

            fingerprint(spec.model)  # a model that is not on this node fails here, before torch is imported
            import torch

            from host.render.local import LocalBackend

            # Ray sets OMP_NUM_THREADS to the CPUs an actor reserved; the thread count is set
            # here explicitly so a replica uses what it reserved, no more
            torch.set_num_threads(max(1, int(spec.threads)))
            device = spec.device or ("cuda" if spec.gpus else "cpu")
            model = load_model(spec.model, device=device, compile_unet=spec.compile, cpu_offload=spec.cpu_offload, threads=spec.threads)

            def load_other(name: str):  # a preset that names another checkpoint: loaded here on first use
                return load_model(name, device=device, compile_unet=spec.compile, cpu_offload=spec.cpu_offload, threads=spec.threads)

            self.backend = LocalBackend(model, spec.batch_size, loader=load_other)
            self.device = str(model.device) + (f" (GPU {','.join(gpu_ids)})" if gpu_ids else "")
        except InputError as err:
            self.error = str(err)
            self.device = spec.device or ("cuda" if spec.gpus else "cpu")
        except Exception as err:  # noqa: BLE001 - reported to the daemon in one line
            self.error = f"the model could not be loaded: {_reason(err)}"
            self.device = spec.device or ("cuda" if spec.gpus else "cpu")

    def hello(self) -> dict:
        return {
            "error": self.error,
            "info": self.backend.info if self.backend is not None else None,
            "node": self.node,
            "address": self.address,
            "device": self.device,
            "pid": os.getpid(),
            "version": host_package.__version__,
        }

    def render(self, works: Sequence[RenderWork]) -> tuple[list[Rendered], int]:
        """The works rendered (batched as the in-process backend batches), and the denoising
        calls that took."""
        refs = [w.ref for w in works]
        with self._lock:
            self._active.update(refs)
        before = self.backend.denoise_calls
        try:
            results = self.backend.render(works, progress=self._on_progress, cancelled=self._is_cancelled)
        finally:
            with self._lock:
                for ref in refs:
                    self._active.discard(ref)
                    self._cancel.discard(ref)
                    self._progress.pop(ref, None)
        return results, self.backend.denoise_calls - before

    def poll(self, cancel: Sequence[Hashable] = ()) -> dict:
        """Stop these works at their next step; the progress of every work rendering now."""
        with self._lock:
            self._cancel.update(r for r in cancel if r in self._active)
            return dict(self._progress)

    def _on_progress(self, ref: Hashable, fraction: float) -> None:
        with self._lock:
            self._progress[ref] = fraction

    def _is_cancelled(self, ref: Hashable) -> bool:
        with self._lock:
            return ref in self._cancel


# ---------------------------------------------------------------------------------- a replica (seen from the daemon)
class RemoteReplica:
    """The daemon's handle on one replica: a :class:`~host.render.backend.RenderBackend` whose
    ``render`` runs remotely and blocks (like the in-process one) until the works come back."""

    def __init__(self, pool: "ReplicaPool", number: int, spec: ReplicaSpec, actor):
        self.pool = pool
        self.number = number
        self.name = f"replica {number}"
        self.spec = spec
        self.actor = actor
        self.batch_size = spec.batch_size
        self.denoise_calls = 0
        self._infos: dict[str, ModelInfo] = {}
        self.info: Optional[ModelInfo] = None
        self.node = "?"
        self.address = ""
        self.device = spec.device or ("cuda" if spec.gpus else "cpu")
        self.pid: Optional[int] = None
        self._lock = threading.Lock()
        self._hello = actor.hello.remote()  # answered once the model is loaded
        self._failed: Optional[str] = None

    # ------------------------------------------------------------ readiness
    def info_for(self, name: Optional[str]) -> ModelInfo:
        """The ModelInfo of a checkpoint a preset names, from its configs here (the replica loads it
        on first use); None: the replica's own model."""
        if name is None or self.info is None or name == self.info.id:
            return self.info
        if name not in self._infos:
            from host.engine.models import geometry
            from host.render.backend import info_from_geometry

            self._infos[name] = info_from_geometry(geometry(name), self.info.device, self.info.threads)
        return self._infos[name]

    def check(self, timeout: float = 0.0) -> bool:
        """True once the replica is ready, False while it loads (or Ray restarts it); raises
        ReplicaUnavailable when it never will be."""
        with self._lock:
            if self._failed is not None:
                raise ReplicaUnavailable(self._failed)
            if self._hello is None:
                return True
            ready, _ = ray.wait([self._hello], timeout=timeout)
            if not ready:
                return False
            try:
                hello = ray.get(self._hello)
            except ActorDiedError as err:
                self._failed = self._why_dead(err)
                raise ReplicaUnavailable(self._failed) from None
            except RayActorError:  # restarting: ask again once it is back
                self._hello = self.actor.hello.remote()
                return False
            self.node, self.address, self.device, self.pid = hello["node"], hello["address"], hello["device"], hello["pid"]
            where = f"{self.name} on {self.node}"
            if hello["error"]:
                self._failed = f"{where} cannot render: {hello['error']}"
            elif hello["version"] != host_package.__version__:
                self._failed = f"{where} runs audiohost {hello['version']}, this daemon {host_package.__version__}; install the same version on every node"
            else:
                self._failed = self.pool.agree(hello["info"], where)
            if self._failed is not None:
                raise ReplicaUnavailable(self._failed)
            self.info = hello["info"]
            self._hello = None
            return True

    def wait_ready(self, stopping: Optional[threading.Event] = None) -> None:
        """Until the replica can render (or ``stopping`` is set: ReplicaUnavailable)."""
        while not self.check(timeout=0.5):
            if stopping is not None and stopping.is_set():
                raise ReplicaUnavailable(f"{self.name}: stopped before it was ready")

    def lost(self) -> None:
        """After ReplicaLost: the next wait_ready waits for Ray's restart (or learns it is dead)."""
        with self._lock:
            if self._failed is None:
                self._hello = self.actor.hello.remote()

    def describe(self) -> dict:
        return {"node": self.node, "address": self.address, "device": self.device, "pid": self.pid}

    def _why_dead(self, err: BaseException) -> str:
        text = str(err)
        if "No module named" in text:
            missing = re.search(r"No module named '([^']+)'", text)
            return f"{self.name} cannot start on its node: audiohost is not installed there ({missing.group(0) if missing else 'an import failed'}); install the same audiohost on every node"
        if "ray.kill" in text or "killed by" in text.lower():
            return f"{self.name} on {self.node} was stopped (ray.kill); the others carry on"
        return f"{self.name} on {self.node} is gone: {_reason(err)}"

    # ------------------------------------------------------------ rendering
    def render(self, works: Sequence[RenderWork], progress: Optional[Progress] = None, cancelled: Optional[IsCancelled] = None) -> list[Rendered]:
        refs = [w.ref for w in works]
        pending = self.actor.render.remote(list(works))
        while True:
            ready, _ = ray.wait([pending], timeout=POLL_SECONDS)
            if ready:
                break
            stop = [r for r in refs if cancelled is not None and cancelled(r)]
            try:
                fractions = ray.get(self.actor.poll.remote(stop), timeout=10.0)
            except GetTimeoutError:
                continue  # a slow answer: ask again, the render result decides
            except RayActorError:
                continue  # the replica died: the pending render says so
            if progress is not None:
                for ref, fraction in fractions.items():
                    if ref in refs:
                        progress(ref, fraction)
        try:
            results, calls = ray.get(pending)
        except ActorDiedError as err:
            raise ReplicaLost(f"{self.name} on {self.node} died mid-render ({_reason(err)})") from None
        except RayActorError:  # ActorUnavailableError: its process ended or its node is unreachable
            raise ReplicaLost(f"{self.name} on {self.node} was lost mid-render (its process ended or its node is unreachable; Ray restarts it)") from None
        self.denoise_calls += calls
        return results


# ---------------------------------------------------------------------------------- the replicas
class ReplicaPool:
    """The replicas this daemon started. They must agree on the model (id, revision, rate):
    a take's sidecar records one model, whichever replica rendered it."""

    def __init__(self, specs: Sequence[ReplicaSpec], restarts: int = RESTARTS):
        self.reference: Optional[ModelInfo] = None
        self._lock = threading.Lock()
        actor_class = ray.remote(Replica)
        self.replicas: list[RemoteReplica] = []
        for number, spec in enumerate(specs, start=1):
            actor = actor_class.options(
                num_cpus=spec.threads if not spec.gpus else 1,
                num_gpus=spec.gpus,
                max_concurrency=ACTOR_THREADS,
                max_restarts=restarts,
                max_task_retries=0,  # a render lost with its replica is re-queued by the daemon, not retried blind
                scheduling_strategy="SPREAD",  # one replica per node before two on one
            ).remote(spec)
            self.replicas.append(RemoteReplica(self, number, spec, actor))

    def agree(self, info: ModelInfo, where: str) -> Optional[str]:
        """None if this replica's model is the pool's; else why it cannot be used."""
        with self._lock:
            if self.reference is None:
                self.reference = info
                return None
            ref = self.reference
        if (info.id, info.revision, info.sample_rate) != (ref.id, ref.revision, ref.sample_rate):
            return f"{where} has model {info.id} revision {info.revision}, the others {ref.id} revision {ref.revision}; not used"
        return None

    def first_ready(self, stopping: Optional[threading.Event] = None, report_every: float = 30.0) -> ModelInfo:
        """Wait until one replica is ready and return the model it loaded; raise
        ReplicaUnavailable (every reason, one line) when none can be."""
        reasons: dict[int, str] = {}
        started = last_report = time.monotonic()
        while True:
            for replica in self.replicas:
                if replica.number in reasons:
                    continue
                try:
                    if replica.check(timeout=0.0):
                        return replica.info
                except ReplicaUnavailable as err:
                    reasons[replica.number] = str(err)
            if len(reasons) == len(self.replicas):
                raise ReplicaUnavailable("; ".join(reasons[n] for n in sorted(reasons)))
            if stopping is not None and stopping.is_set():
                raise ReplicaUnavailable("stopped before any replica was ready")
            if time.monotonic() - last_report > report_every:
                last_report = time.monotonic()
                log.info("waiting for replicas to load the model (%.0f s so far; a replica waits while the cluster has no room for it)", last_report - started)
            time.sleep(0.2)

    def close(self) -> None:
        for replica in self.replicas:
            try:
                ray.kill(replica.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - gone already
                pass


def plan_replicas(resources: dict[str, float], replicas: Optional[int], gpus_per_replica: Optional[float], threads: Optional[int], device: Optional[str]) -> tuple[int, float, int]:
    """(replicas, GPUs each, CPU threads each) for this cluster. GPUs when the cluster has them
    (one each unless told), else CPU replicas of ``threads`` CPUs; as many as the cluster holds
    unless told. InputError when asked for what the cluster cannot have."""
    gpus_total = float(resources.get("GPU", 0.0))
    cpus_total = float(resources.get("CPU", 0.0))
    threads = max(1, int(threads or 1))
    if gpus_per_replica is None:
        gpus_per_replica = 1.0 if gpus_total >= 1 and (device or "cuda").startswith("cuda") else 0.0
    if gpus_per_replica > 0 and gpus_total < gpus_per_replica:
        raise InputError("gpus_per_replica", f"each replica needs {gpus_per_replica:g} GPU(s) but the cluster has {gpus_total:g}; use --gpus-per-replica 0 for CPU replicas")
    if gpus_per_replica == 0 and cpus_total < threads:
        raise InputError("threads", f"each CPU replica needs {threads} CPU(s) but the cluster has {cpus_total:g}")
    if replicas is None:
        replicas = int(gpus_total // gpus_per_replica) if gpus_per_replica else int(cpus_total // threads)
    return max(1, replicas), float(gpus_per_replica), threads


def _reason(err: BaseException) -> str:
    """One line from an exception (Ray's carry tracebacks): the last 'SomeError: text' line, or
    the first line."""
    text = str(err).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b.*:", line)]
    line = named[-1] if named else (lines[0] if lines else type(err).__name__)
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    return " ".join(line.split())[:300]
