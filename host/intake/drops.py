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

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from host.config.paths import confine
from host.config.presets import (
    Preset,
    _number,
    PresetEntry,
    close_names,
    display_path,
    read_toml,
    show_value,
    validation_error,
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


class StemSidecar(BaseModel):
    """``<stem>.toml`` beside a stem: changes for that stem only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Optional[str] = None  # instead of the folder's preset (must be of the same kind)
    prompt: Optional[str] = None
    negative_prompt: Optional[str] = None
    strength: Optional[float] = None
    steps: Optional[int] = None
    guidance: Optional[float] = None
    seed: Optional[int] = None
    takes: Optional[int] = None
    gaps: Optional[list[tuple[float, float]]] = None  # inpaint: [[start, end], ...] in seconds
    cutoff: Optional[float] = None  # superres: Hz (checked by the preset: only superres has one)
    loop: Optional[bool] = None  # refused by the preset (only foley loops), with that reason

    @field_validator("preset", "prompt", "negative_prompt", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {show_value(value)}")
        return value

    @field_validator("strength", "guidance", "cutoff", mode="before")
    @classmethod
    def _float_in(cls, value: Any) -> Any:
        return _number(value)

    @field_validator("steps", "seed", "takes", mode="before")
    @classmethod
    def _int_in(cls, value: Any) -> Any:
        return _number(value, integer=True)

    @field_validator("gaps", mode="before")
    @classmethod
    def _gap_numbers(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("must be a list of [start, end] pairs in seconds, e.g. [[1.5, 2.0]]")
        for i, gap in enumerate(value):
            if not isinstance(gap, (list, tuple)) or len(gap) != 2:
                raise ValueError(f"gap {i} must be a [start, end] pair in seconds, got {show_value(gap)}")
            for x in gap:
                _number(x)
        return value

    @field_validator("gaps")
    @classmethod
    def _gaps(cls, value: Optional[list[tuple[float, float]]]) -> Optional[list[tuple[float, float]]]:
        if value is None:
            return None
        if not value:
            raise ValueError("list at least one [start, end] gap, or leave 'gaps' out to find silent gaps")
        for i, (start, end) in enumerate(value):
            if start < 0:
                raise ValueError(f"gap {i} starts before 0 s ({start:g})")
            if not start < end:
                raise ValueError(f"gap {i} must start before it ends, got [{start:g}, {end:g}]")
        ordered = sorted(value)
        for (a0, a1), (b0, b1) in zip(ordered, ordered[1:]):
            if b0 < a1:
                raise ValueError(f"gaps [{a0:g}, {a1:g}] and [{b0:g}, {b1:g}] overlap")
        return ordered

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"preset", "gaps"})


SIDECAR_FIELDS: tuple[str, ...] = tuple(StemSidecar.model_fields)


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
    where = display_path(path)
    data, _ = read_toml(path)
    try:
        return StemSidecar.model_validate(data)
    except ValidationError as exc:
        raise validation_error(where, exc, known=SIDECAR_FIELDS) from None


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
            gaps = tuple((float(a), float(b)) for a, b in sidecar.gaps)
        try:
            preset = preset.with_overrides(**sidecar.overrides())
        except ValidationError as exc:
            raise validation_error(sidecar_where, exc, known=SIDECAR_FIELDS) from None

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
