"""The one rule for paths that arrive from outside: resolved (symlinks included), inside a root."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from host.errors import InputError


def confine(path: str | Path, roots: Iterable[Path], where: str, base: Path | None = None) -> Path:
    """``path`` resolved, relative ones against ``base``; InputError unless it lies inside one of ``roots``."""
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
    raise InputError(where, f"'{text}' is outside the project roots this host serves")
