"""The one rule for paths that arrive from outside: resolved (symlinks included), inside a root.

``confine`` applies it when a request arrives; ``open_confined`` applies it again at the moment
a file is read, and opens exactly the file it confined.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Iterable

from host.errors import InputError


def confine(path: str | Path, roots: Iterable[Path], where: str, base: Path | None = None, what: str = "the project roots this host serves") -> Path:
    """``path`` resolved, relative ones against ``base``; InputError unless it lies inside one of
    ``roots`` (``what`` names them in the error)."""
    text = str(path)
    if not text or "\x00" in text:
        raise InputError(where, "empty or invalid path")
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        if base is None:
            raise InputError(where, f"'{text}' is relative; give an absolute path")
        candidate = base / candidate
    resolved = candidate.resolve()
    for root in roots:
        root = Path(root).resolve()
        if resolved == root or root in resolved.parents:
            return resolved
    raise InputError(where, f"{_subject(text, where)}is outside {what}")


def _subject(text: str, where: str) -> str:
    """The path quoted at the start of a reason, unless ``where`` already is that path."""
    return "" if text == where else f"'{text}' "


# Opening a confined file at the moment of use: the path is resolved and confined again, then
# opened one component at a time from the filesystem root with O_NOFOLLOW, so the file opened
# is exactly the confined one even if a symlink is swapped into its path meanwhile.
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
_WALK = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW")
_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symlink"}


def open_confined(path: str | Path, roots: Iterable[Path], where: str, base: Path | None = None, attempts: int = 3) -> tuple[int, Path]:
    """Open ``path`` for reading if, at this moment, it is a regular file inside ``roots``.

    Returns (file descriptor, resolved path); the caller closes the descriptor. Never blocks
    (a FIFO is refused, not waited on) and never follows a symlink that appears after the
    path was resolved: InputError with one line instead. A path that changes while it is being
    opened is resolved and confined again, up to ``attempts`` times."""
    subject = _subject(str(path), where)
    for attempt in range(attempts):
        resolved = confine(path, roots, where, base)
        try:
            fd = _open_nofollow(resolved) if _WALK else _open_and_compare(resolved)
        except FileNotFoundError:
            raise InputError(where, f"{subject}is not there any more") from None
        except _Changed:
            if attempt + 1 < attempts:
                continue
            raise InputError(where, f"{subject}kept changing while it was being opened (a symlink swapped in?); not read") from None
        except PermissionError:
            raise InputError(where, f"{subject}cannot be read: permission denied") from None
        except OSError as err:
            raise InputError(where, f"{subject}cannot be opened: {err.strerror or err}") from None
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            os.close(fd)
            raise InputError(where, f"{subject}is {_KINDS.get(kind, 'not a regular file')}, not a regular file; not read")
        return fd, resolved
    raise AssertionError("unreachable")  # pragma: no cover


class _Changed(Exception):
    pass


def _open_nofollow(resolved: Path) -> int:
    """Walk the resolved (symlink-free) path from the root, never following a symlink."""
    parts = resolved.parts
    fd = os.open(parts[0], _DIR_FLAGS)
    try:
        for name in parts[1:-1]:
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _Changed() from None  # a folder on the path became a symlink or a file
                raise
            os.close(fd)
            fd = nxt
        try:
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
        except OSError as err:
            # Linux says ELOOP, macOS and the BSDs EMLINK for O_NOFOLLOW on a symlink
            if err.errno in (errno.ELOOP, errno.EMLINK):
                raise _Changed() from None
            raise
    finally:
        os.close(fd)


def _open_and_compare(resolved: Path) -> int:  # pragma: no cover - platforms without openat (Windows)
    """Open, then check the opened file is still the one at the resolved path."""
    fd = os.open(resolved, _FILE_FLAGS)
    try:
        opened, there = os.fstat(fd), os.stat(resolved)
    except OSError:
        os.close(fd)
        raise
    if (opened.st_dev, opened.st_ino) != (there.st_dev, there.st_ino) or Path(os.path.realpath(resolved)) != resolved:
        os.close(fd)
        raise _Changed()
    return fd
