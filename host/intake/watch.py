"""Watched drop folders: a stem is taken only once it is whole.

Events only make a path a *candidate*; the :class:`Settler` takes it once its size and
modification time have held still for ``settle`` seconds (a slow copy, a DAW still rendering
into the folder, a network share). One handler class per concern: stems in ``restyle/``,
``inpaint/`` and ``superres/``, and the project's own files (``cues.toml``, ``project.toml``, ``presets/``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from host.intake.drops import AUDIO_SUFFIXES, DROP_KINDS, is_stem_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settled:
    """A path whose content has stopped changing."""

    path: Path
    size: int
    mtime_ns: int


class Settler(threading.Thread):
    """Debounces paths per path: calls ``on_settled(Settled)`` once a path holds still."""

    def __init__(self, settle: float, on_settled: Callable[[Settled], None], tick: float = 0.1, allow_empty: bool = False):
        super().__init__(name="audiohost-settler", daemon=True)
        self.settle = settle
        self.allow_empty = allow_empty
        self.on_settled = on_settled
        self.tick = tick
        self._pending: dict[Path, tuple[Optional[tuple[int, int]], float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def touch(self, path: Path) -> None:
        with self._lock:
            self._pending[Path(path)] = (None, time.monotonic())

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            ready = []
            with self._lock:
                for path, (seen, since) in list(self._pending.items()):
                    try:
                        st = os.stat(path)
                    except OSError:
                        del self._pending[path]  # gone (moved away, deleted)
                        continue
                    sig = (st.st_size, st.st_mtime_ns)
                    if sig != seen:
                        self._pending[path] = (sig, now)
                    elif now - since >= self.settle and (st.st_size > 0 or self.allow_empty):
                        del self._pending[path]
                        ready.append(Settled(path, *sig))
            for item in ready:
                try:
                    self.on_settled(item)
                except Exception:  # noqa: BLE001 - one bad file must not stop the watcher
                    log.exception("handling %s failed", item.path)


def stems_beside(sidecar: Path) -> list[Path]:
    """The stems a ``<stem>.toml`` sidecar belongs to (any audio extension)."""
    try:
        return [p for p in sidecar.parent.iterdir() if p.stem == sidecar.stem and p.suffix.lower() in AUDIO_SUFFIXES and is_stem_file(p)]
    except OSError:
        return []


class StemHandler(FileSystemEventHandler):
    """Stems dropped into ``restyle/``, ``inpaint/`` or ``superres/`` (directly, or one preset folder down)."""

    def __init__(self, drop_dir: Path, settler: Settler):
        self.drop_dir = drop_dir
        self.settler = settler

    def _consider(self, path: str) -> None:
        p = Path(path)
        try:
            depth = len(p.relative_to(self.drop_dir).parts)
        except ValueError:
            return
        if depth > 2:
            return
        if is_stem_file(p):
            self.settler.touch(p)
        elif p.suffix.lower() == ".toml" and not p.name.startswith("."):
            # a stem's sidecar changed: the stem beside it is taken again, with the new settings
            for stem in stems_beside(p):
                self.settler.touch(stem)

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._consider(event.src_path)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._consider(event.src_path)

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._consider(event.src_path)

    def on_moved(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._consider(event.dest_path)


class ProjectFilesHandler(FileSystemEventHandler):
    """``cues.toml``, ``project.toml`` and ``presets/*.toml`` of one project."""

    NAMES = ("cues.toml", "project.toml")

    def __init__(self, root: Path, settler: Settler):
        self.root = root
        self.settler = settler

    def _consider(self, path: str) -> None:
        p = Path(path)
        if (p.parent == self.root and p.name in self.NAMES) or (p.parent == self.root / "presets" and p.suffix == ".toml"):
            self.settler.touch(p)

    # opened / closed-without-writing events come from our own reads; only changes count
    CHANGES = ("created", "modified", "moved", "deleted", "closed")

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in self.CHANGES:
            return
        self._consider(getattr(event, "dest_path", "") or event.src_path)
        if event.event_type == "moved":
            self._consider(event.src_path)


class FolderWatch:
    """One observer over every served project."""

    def __init__(self, settle: float, polling: bool, on_stem: Callable[[Path, Path], None], on_project_file: Callable[[Path, Path], None]):
        self.observer = PollingObserver(timeout=0.5) if polling else Observer()
        self.roots: list[Path] = []
        self.on_stem = on_stem
        self.on_project_file = on_project_file
        self.stems = Settler(settle, self._stem_settled)
        self.files = Settler(min(settle, 0.3), self._file_settled, allow_empty=True)

    def add_project(self, root: Path) -> None:
        self.roots.append(root)
        for name in DROP_KINDS:
            folder = root / name
            folder.mkdir(exist_ok=True)
            self.observer.schedule(StemHandler(folder, self.stems), str(folder), recursive=True)
        (root / "presets").mkdir(exist_ok=True)
        handler = ProjectFilesHandler(root, self.files)
        self.observer.schedule(handler, str(root), recursive=False)
        self.observer.schedule(handler, str(root / "presets"), recursive=False)

    def settle_existing(self, root: Path) -> int:
        """Stems already waiting in a project's drop folders become candidates like new ones: they
        are taken once they hold still (a copy may have been running when the daemon started)."""
        found = 0
        for name in DROP_KINDS:
            top = root / name
            folders = [top] + ([p for p in sorted(top.iterdir()) if p.is_dir() and not p.is_symlink()] if top.is_dir() else [])
            for folder in folders:
                try:
                    entries = sorted(folder.iterdir())
                except OSError:
                    continue
                for path in entries:
                    if is_stem_file(path) and path.is_file():
                        self.stems.touch(path)
                        found += 1
        return found

    def _root_of(self, path: Path) -> Optional[Path]:
        for root in self.roots:
            if root in path.parents:
                return root
        return None

    def _stem_settled(self, item: Settled) -> None:
        root = self._root_of(item.path)
        if root is not None:
            self.on_stem(root, item.path)

    def _file_settled(self, item: Settled) -> None:
        root = self._root_of(item.path)
        if root is not None:
            self.on_project_file(root, item.path)

    def start(self) -> None:
        self.stems.start()
        self.files.start()
        self.observer.start()

    def stop(self) -> None:
        self.observer.stop()
        self.stems.stop()
        self.files.stop()
        try:
            self.observer.join(timeout=5)
        except RuntimeError:
            pass
