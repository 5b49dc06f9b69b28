"""Stems waiting in a project's drop folders.

``restyle/x.wav``            restyle with the project's ``restyle_preset``
``restyle/<preset>/x.wav``   restyle with that preset (it must be a restyle preset)
``inpaint/...``              the same for inpainting (filling gaps)
``superres/...``             the same for super-resolution (the missing upper band generated)

An optional sidecar ``x.toml`` beside ``x.wav`` changes the prompt, strength, steps, ... for
that stem only, for inpainting may list the gaps to fill (otherwise silent gaps are found) and
for super-resolution may give the cutoff (otherwise it is found from the stem's spectrum).
Hidden files and ``*.partial`` (a copy still in progress) are ignored; folders deeper than one
level are not looked into.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from host.config.paths import confine
from host.config.presets import (
    Preset,
    PresetEntry,
    _number,
    apply_overrides,
    close_names,
    display_path,
    read_toml,
    show_value,
)
from host.config.project import NAME_MAX, Project, delivery_problem
from host.errors import InputError

StemKind = Literal["restyle", "inpaint", "superres"]
DROP_KINDS: tuple[str, ...] = ("restyle", "inpaint", "superres")

# File extensions libsndfile (soundfile) reads; compared lower-case.
AUDIO_SUFFIXES: frozenset[str] = frozenset(
    {
        ".wav", ".wave", ".bwf", ".rf64", ".w64",
        ".flac",
        ".ogg", ".oga", ".opus",
        ".aif", ".aiff", ".aifc",
        ".mp3",
        ".caf",
        ".au", ".snd",
    }
)  # fmt: skip

PARTIAL_SUFFIX = ".partial"


def is_stem_file(path: Path) -> bool:
    """True for a file the drop folders would pick up (by name only: audio, not hidden or partial)."""
    name = path.name
    return (
        not name.startswith(".")
        and not name.lower().endswith(PARTIAL_SUFFIX)
        and path.suffix.lower() in AUDIO_SUFFIXES
    )


def safe_name(stem: str) -> str:
    """A file stem made usable as a render name: other characters become '_'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "stem"
    return name[:NAME_MAX].rstrip(".") or "stem"


# What a stem's sidecar may change (checked by the preset's own rules, like a cue's changes),
# besides choosing the preset and, for inpainting, listing the gaps.
SIDECAR_OVERRIDABLE: tuple[str, ...] = ("prompt", "negative_prompt", "strength", "steps", "guidance", "seed", "takes", "ucs", "cutoff", "loop", "keep")
SIDECAR_FIELDS: tuple[str, ...] = ("preset", "gaps", *SIDECAR_OVERRIDABLE)


@dataclass(frozen=True)
class StemSidecar:
    """``<stem>.toml`` beside a stem: changes for that stem only."""

    where: str  # the sidecar file as shown to the user
    preset: Optional[str]  # instead of the folder's preset (must be of the same kind)
    gaps: Optional[tuple[tuple[float, float], ...]]  # inpaint: [[start, end], ...] in seconds
    changes: dict[str, Any]  # applied to the preset with apply_overrides

    @classmethod
    def from_table(cls, data: dict[str, Any], where: str) -> "StemSidecar":
        for key in data:
            if key not in SIDECAR_FIELDS:
                close = close_names(key, SIDECAR_FIELDS, n=1)
                hint = f"did you mean '{close[0]}'?" if close else "a stem's sidecar takes " + ", ".join(SIDECAR_FIELDS)
                raise InputError(f"{where} {key}", f"unknown field; {hint}")
        preset = data.get("preset")
        if preset is not None and not isinstance(preset, str):
            raise InputError(f"{where} preset", f"must be text, got {show_value(preset)}")
        gaps = _gaps(data["gaps"], f"{where} gaps") if "gaps" in data else None
        changes = {k: v for k, v in data.items() if k in SIDECAR_OVERRIDABLE}
        return cls(where, preset, gaps, changes)


def _gaps(value: Any, where: str) -> tuple[tuple[float, float], ...]:
    """A sidecar's ``gaps``: [start, end] pairs in seconds, in order, not overlapping."""
    if not isinstance(value, list):
        raise InputError(where, "must be a list of [start, end] pairs in seconds, e.g. [[1.5, 2.0]]")
    if not value:
        raise InputError(where, "list at least one [start, end] gap, or leave 'gaps' out to find silent gaps")
    pairs = []
    for i, gap in enumerate(value):
        if not isinstance(gap, (list, tuple)) or len(gap) != 2:
            raise InputError(where, f"gap {i} must be a [start, end] pair in seconds, got {show_value(gap)}")
        for x in gap:
            try:
                _number(x)
            except ValueError as err:
                raise InputError(where, f"gap {i}: {err}") from None
        start, end = float(gap[0]), float(gap[1])
        if start < 0:
            raise InputError(where, f"gap {i} starts before 0 s ({start:g})")
        if not start < end:
            raise InputError(where, f"gap {i} must start before it ends, got [{start:g}, {end:g}]")
        pairs.append((start, end))
    ordered = sorted(pairs)
    for (a0, a1), (b0, b1) in zip(ordered, ordered[1:]):
        if b0 < a1:
            raise InputError(where, f"gaps [{a0:g}, {a1:g}] and [{b0:g}, {b1:g}] overlap")
    return tuple(ordered)


@dataclass(frozen=True)
class Stem:
    """A dropped stem and how to render it. ``preset`` has the sidecar's changes applied;
    ``preset_hash`` is the content hash of the preset file; ``gaps`` None = find them."""

    path: Path
    kind: StemKind
    name: str
    preset_name: str
    preset: Preset
    preset_hash: str
    gaps: Optional[tuple[tuple[float, float], ...]]

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.path)


def sidecar_path(stem_path: Path) -> Path:
    return stem_path.with_suffix(".toml")


def _place(project: Project, path: Path) -> tuple[StemKind, Optional[str]]:
    """(kind, preset folder or None) from where ``path`` sits in the project."""
    candidates = [path if path.is_absolute() else Path.cwd() / path]
    try:
        candidates.append(candidates[0].resolve())
    except OSError:  # pragma: no cover
        pass
    for candidate in candidates:
        try:
            parts = candidate.relative_to(project.root).parts
        except ValueError:
            continue
        if len(parts) in (2, 3) and parts[0] in DROP_KINDS:
            return parts[0], (parts[1] if len(parts) == 3 else None)  # type: ignore[return-value]
        break
    raise InputError(
        display_path(path),
        "not a drop: put stems in restyle/, inpaint/ or superres/ of the project, or one preset folder down (restyle/<preset>/, ...)",
    )


def _unknown_preset(where: str, name: str, kind: str, presets: dict[str, PresetEntry]) -> InputError:
    of_kind = sorted(n for n, e in presets.items() if e.preset.kind == kind)
    close = close_names(name, of_kind) or close_names(name, presets)
    if close:
        hint = "did you mean " + ", ".join(f"'{c}'" for c in close) + "?"
    elif of_kind:
        hint = f"{kind} presets: " + ", ".join(of_kind)
    else:
        hint = f"there are no {kind} presets"
    return InputError(where, f"no preset named '{name}'; {hint}")


def _wrong_kind(where: str, name: str, entry: PresetEntry, kind: str, presets: dict[str, PresetEntry]) -> InputError:
    of_kind = sorted(n for n, e in presets.items() if e.preset.kind == kind)
    listing = f"; {kind} presets: " + ", ".join(of_kind) if of_kind else ""
    return InputError(where, f"preset '{name}' is a {entry.preset.kind} preset, not a {kind} preset{listing}")


def _read_sidecar(path: Path) -> Optional[StemSidecar]:
    if not path.is_file():
        return None
    data, _ = read_toml(path)
    return StemSidecar.from_table(data, display_path(path))


def _confined_to_project(project: Project, path: Path) -> None:
    """A drop that is a symlink (or sits in a symlinked folder) must still lie in the project."""
    confine(path, [project.root], display_path(path), base=Path.cwd(), what="the project (a symlink out of it is not followed)")


def stem_from_path(project: Project, presets: dict[str, PresetEntry], path: Path) -> Stem:
    """Work out how to render one dropped file. Raises InputError."""
    path = Path(path)
    kind, folder = _place(project, path)
    _confined_to_project(project, path)
    if not is_stem_file(path):
        if path.name.startswith(".") or path.name.lower().endswith(PARTIAL_SUFFIX):
            raise InputError(display_path(path), "hidden or still being copied (.partial); ignored")
        raise InputError(
            display_path(path),
            f"not an audio file the host reads ({', '.join(sorted(s[1:] for s in AUDIO_SUFFIXES))})",
        )

    sidecar_file = sidecar_path(path)
    sidecar = _read_sidecar(sidecar_file)
    sidecar_where = display_path(sidecar_file)

    if sidecar is not None and sidecar.preset is not None:
        preset_name, where = sidecar.preset, f"{sidecar_where} preset"
    elif folder is not None:
        preset_name, where = folder, display_path(project.root / kind / folder) + "/"
    else:
        preset_name = getattr(project.settings, f"{kind}_preset")
        where = f"{display_path(project.settings_file)} {kind}_preset"

    entry = presets.get(preset_name)
    if entry is None:
        raise _unknown_preset(where, preset_name, kind, presets)
    if entry.preset.kind != kind:
        raise _wrong_kind(where, preset_name, entry, kind, presets)

    preset = entry.preset
    gaps: Optional[tuple[tuple[float, float], ...]] = None
    if sidecar is not None:
        if sidecar.gaps is not None:
            if kind != "inpaint":
                raise InputError(f"{sidecar_where} gaps", "only inpaint stems have gaps to fill")
            gaps = sidecar.gaps
        preset = apply_overrides(preset, sidecar.changes, sidecar_where, allowed=SIDECAR_OVERRIDABLE)

    problem = delivery_problem(preset.delivery, project.settings.delivery)
    if problem:
        raise InputError(f"{display_path(entry.path)} delivery", f"with this project's delivery: {problem}")

    return Stem(
        path=path,
        kind=kind,
        name=safe_name(path.stem),
        preset_name=preset_name,
        preset=preset,
        preset_hash=entry.content_hash,
        gaps=gaps,
    )


def _files(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if is_stem_file(p) and (p.is_file() or p.is_symlink())]
    except OSError:
        return []


def _folder_inside(project: Project, folder: Path, errors: list[InputError]) -> bool:
    """A drop folder may be a symlink, but not one that leads out of the project."""
    if not folder.is_symlink():
        return True
    try:
        _confined_to_project(project, folder)
    except InputError as err:
        errors.append(InputError(err.where + "/", "a symlinked folder that leads out of the project; not followed"))
        return False
    return True


def scan_drops(project: Project, presets: dict[str, PresetEntry]) -> tuple[list[Stem], list[InputError]]:
    """Every stem in restyle/, restyle/*/, inpaint/, inpaint/*/, superres/, superres/*/, sorted by path.
    Stems that cannot be rendered are reported and left out; symlinks (stems or folders) that
    lead out of the project are reported and not followed."""
    found: list[Path] = []
    errors: list[InputError] = []
    for kind in DROP_KINDS:
        top = project.root / kind
        if not top.is_dir() or not _folder_inside(project, top, errors):
            continue
        found += _files(top)
        for sub in sorted(top.iterdir()):
            if sub.is_dir() and not sub.name.startswith(".") and _folder_inside(project, sub, errors):
                found += _files(sub)
    stems: list[Stem] = []
    for path in sorted(found):
        try:
            stems.append(stem_from_path(project, presets, path))
        except InputError as err:
            err.subject = (path.relative_to(project.root).parts[0], safe_name(path.stem))  # the stem, as a failed row
            # A bad preset folder is one problem, however many stems sit in it.
            if all(str(err) != str(seen) for seen in errors):
                errors.append(err)
    return stems, errors


__all__ = [
    "AUDIO_SUFFIXES",
    "Stem",
    "StemSidecar",
    "is_stem_file",
    "safe_name",
    "scan_drops",
    "sidecar_path",
    "stem_from_path",
]
