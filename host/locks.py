"""Who may write where: one daemon per state directory, one writer per project.

A lock is an operating-system lock on a small file (``flock`` on Linux and macOS, ``msvcrt``
byte-range locking on Windows), so it is released the moment its holder exits, however it
exits: there are no stale locks to clean up. The holder writes who it is into the file (pid,
command, host, since when) so the process that loses can say who holds it.

The locks are advisory between audiohost processes. On network shares they hold between
processes of one machine; whether they hold across machines depends on the share.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from host.errors import InputError

log = logging.getLogger(__name__)

LOCK_FILE = "lock"

# A filesystem that cannot lock at all answers with one of these: the lock is then skipped with
# a warning rather than making the project unusable.
_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # byte 0; the holder's details start at byte 1
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EDEADLK):
                return False
            raise
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class LockHeld(InputError):
    """Another process holds the lock; ``str(err)`` says who."""

    def __init__(self, where: str, reason: str, holder: Optional[dict]):
        super().__init__(where, reason)
        self.holder = holder


@dataclass
class HeldLock:
    """A lock this process holds until ``release()`` (or until it exits)."""

    path: Path
    fd: Optional[int]  # None: the filesystem cannot lock; nothing is held

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            _unlock(fd)
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> "HeldLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def take_lock(path: Path, command: str, where: str, advice: str) -> HeldLock:
    """Hold the lock in file ``path`` or raise LockHeld naming its holder.

    ``command`` is what this process is, as the loser will read it ("audiohost serve");
    ``where`` and ``advice`` shape the loser's one line: ``<where>: in use by pid 4711
    (audiohost serve) on studio since 2025-05-01 10:12:03; <advice>``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as err:
        raise InputError(where, f"cannot open the lock file {path}: {err.strerror or err}") from None
    try:
        got = _try_lock(fd)
    except OSError as err:
        if err.errno in _NO_LOCKING:
            os.close(fd)
            log.warning("%s: the filesystem of %s cannot lock files; a second writer is not prevented", where, path)
            return HeldLock(path, None)
        os.close(fd)
        raise InputError(where, f"cannot lock {path}: {err.strerror or err}") from None
    if not got:
        os.close(fd)
        holder = read_holder(path)
        raise LockHeld(where, f"in use by {describe_holder(holder)}; {advice}", holder)
    _write_holder(fd, command)
    return HeldLock(path, fd)


def read_holder(path: Path) -> Optional[dict]:
    """The details a holder wrote into its lock file, or None (not written yet, unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(1)  # byte 0 is the locked byte on Windows
            data = json.loads(f.read(4096).decode("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(holder: Optional[dict]) -> str:
    if not holder:
        return "another process (it has not said who it is yet)"
    since = holder.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "an unknown time"
    return f"pid {holder.get('pid', '?')} ({holder.get('command', '?')}) on {holder.get('host', '?')} since {when}"


def _write_holder(fd: int, command: str) -> None:
    record = {
        "pid": os.getpid(),
        "command": command,
        "argv": " ".join(sys.argv)[:300],
        "host": socket.gethostname(),
        "since": round(time.time(), 3),
    }
    payload = b"\n" + json.dumps(record, sort_keys=True).encode("utf-8") + b"\n"
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, payload)
        os.fsync(fd)
    except OSError as err:  # the lock holds even if the note cannot be written
        log.warning("could not write the lock holder's details into the lock file: %s", err.strerror or err)


# ---------------------------------------------------------------- the two locks the host takes


def lock_state_dir(state_dir: Path, command: str = "audiohost serve") -> HeldLock:
    """One daemon per state directory (its journal): taken before anything touches the queue."""
    state_dir = Path(state_dir)
    return take_lock(
        state_dir / LOCK_FILE,
        command,
        where=f"state directory {state_dir}",
        advice="another daemon is using this journal; stop it, or give this one its own --state-dir",
    )


def lock_project(project_root: Path, command: str) -> HeldLock:
    """One writer per project: a daemon serving it or an ``audiohost render`` of it."""
    root = Path(project_root)
    return take_lock(
        root / ".audiohost" / LOCK_FILE,
        command,
        where=f"project {root}",
        advice="one project has one writer: wait for it to finish or stop it",
    )


__all__ = ["HeldLock", "LockHeld", "describe_holder", "lock_project", "lock_state_dir", "read_holder", "take_lock"]
