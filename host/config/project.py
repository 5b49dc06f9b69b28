"""A project folder: ``project.toml`` settings, the cue sheet and the folders the host uses.

Layout::

    <project>/
      project.toml      delivery format, model, default restyle / inpaint / superres presets (optional)
      cues.toml         [[cue]] tables: foley to render from text, or a stem (input) to render
      presets/          project presets (replace built-ins of the same name)
      restyle/          drop stems here (or in restyle/<preset>/) to restyle them
      inpaint/          drop stems here (or in inpaint/<preset>/) to fill their gaps
      superres/         drop stems here (or in superres/<preset>/) to generate their missing upper band
      renders/          finished takes
      .audiohost/       the host's own state
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from host.config.paths import confine
from host.config.presets import (
    KINDS,
    OVERRIDABLE,
    ChainCheck,
    Preset,
    PresetEntry,
    apply_overrides,
    close_names,
    content_hash,
    display_path,
    read_toml,
    show_value,
    validation_error,
)
from host.config.schema import DELIVERY_FIELDS, Delivery, DeliveryOverrides, resolve_paths
from host.config.ucs import id_problem
from host.errors import InputError

PROJECT_FILE = "project.toml"
CUE_FILE = "cues.toml"

# The preset a cue gets when it names none (a plain foley render of its prompt). A preset file
# called "default" in the library takes its place.
DEFAULT_PRESET_NAME = "default"
DEFAULT_PRESET = Preset(kind="foley")
DEFAULT_PRESET_HASH = content_hash(b"")

NAME_MAX = 100


def name_problem(name: Any) -> Optional[str]:
    """Why ``name`` cannot be a file name for a render, or None if it can."""
    if not isinstance(name, str):
        return f"must be text, got {show_value(name)}"
    if not name:
        return "must not be empty"
    if len(name) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters, got {len(name)}"
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        return f"may hold only letters, digits, '-', '_' and '.' (no spaces or slashes), got {show_value(name)}"
    if name.startswith("."):
        return f"must not start with a dot, got {show_value(name)}"
    if name.endswith("."):
        return f"must not end with a dot, got {show_value(name)}"
    return None


class ProjectSettings(BaseModel):
    """``project.toml``. The delivery keys (``Delivery``'s fields) are written at the top level
    of the file and validated by ``Delivery`` itself: one schema, one set of rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delivery: Delivery = Delivery()
    model: Optional[str] = None  # AudioLDM checkpoint; None = the host's default
    restyle_preset: str = "restyle-texture"  # for stems dropped directly into restyle/
    inpaint_preset: str = "inpaint-seamless"  # for stems dropped directly into inpaint/
    superres_preset: str = "superres-restore"  # for stems dropped directly into superres/
    # File naming: "default" (<name>_tNN) or "ucs" (CatID_FXName_CreatorID_SourceID), which needs
    # creator_id (who made it, e.g. initials) and source_id (the project or library).
    naming: Literal["default", "ucs"] = "default"
    creator_id: Optional[str] = Field(None, validate_default=True)
    source_id: Optional[str] = Field(None, validate_default=True)

    @field_validator("model", "restyle_preset", "inpaint_preset", "superres_preset", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"must be non-empty text, got {show_value(value)}")
        return value

    @field_validator("creator_id", "source_id", mode="before")
    @classmethod
    def _ucs_ids(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            if info.data.get("naming") == "ucs":
                raise ValueError('required when naming = "ucs" (UCS names are CatID_FXName_CreatorID_SourceID)')
            return None
        problem = id_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @classmethod
    def from_file(cls, data: dict[str, Any], where: str) -> "ProjectSettings":
        """From ``project.toml``'s table; errors name the key as written (``sample_rate``)."""
        if "delivery" in data:
            raise InputError(f"{where} delivery", "write the delivery keys (sample_rate, bit_depth, ...) at the top level of project.toml")
        delivery = {k: v for k, v in data.items() if k in DELIVERY_FIELDS}
        rest = {k: v for k, v in data.items() if k not in DELIVERY_FIELDS}
        known = (*DELIVERY_FIELDS, *(f for f in cls.model_fields if f != "delivery"))
        try:
            checked = Delivery.model_validate(delivery)
        except ValidationError as exc:
            raise validation_error(where, exc, known=known) from None
        try:
            return cls.model_validate({**rest, "delivery": checked})
        except ValidationError as exc:
            raise validation_error(where, exc, known=known) from None


@dataclass(frozen=True)
class Project:
    root: Path
    settings: ProjectSettings

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def settings_file(self) -> Path:
        return self.root / PROJECT_FILE

    @property
    def renders_dir(self) -> Path:
        return self.root / "renders"

    @property
    def restyle_dir(self) -> Path:
        return self.root / "restyle"

    @property
    def inpaint_dir(self) -> Path:
        return self.root / "inpaint"

    @property
    def superres_dir(self) -> Path:
        return self.root / "superres"

    @property
    def presets_dir(self) -> Path:
        return self.root / "presets"

    @property
    def cue_sheet(self) -> Path:
        return self.root / CUE_FILE

    @property
    def state_dir(self) -> Path:
        return self.root / ".audiohost"


def load_project(root: Union[Path, str]) -> Project:
    """Open a project folder. A missing ``project.toml`` means all defaults. Raises InputError."""
    given = Path(root).expanduser()
    if not given.exists():
        raise InputError(display_path(given), "no such project folder")
    if not given.is_dir():
        raise InputError(display_path(given), "is a file; a project is a folder")
    resolved = given.resolve()
    settings_file = resolved / PROJECT_FILE
    if not settings_file.exists():
        return Project(root=resolved, settings=ProjectSettings())
    data, _ = read_toml(settings_file)
    return Project(root=resolved, settings=ProjectSettings.from_file(data, display_path(settings_file)))


def check_renders(project: Project) -> None:
    """InputError unless ``renders/`` (and its kind folders) are real folders inside the project,
    or not there yet. The host writes and cleans up only there, so a renders/ that is a symlink
    or lies elsewhere would have it write, and delete leftovers, wherever that points."""
    renders = project.renders_dir
    for folder in (renders, *(renders / kind for kind in KINDS)):
        if folder.is_symlink():
            raise InputError(
                display_path(folder),
                f"is a symlink (to {os.readlink(folder)}); the host writes only into a real folder inside the project, so it will not serve this project",
            )
        if folder.exists() and not folder.is_dir():
            raise InputError(display_path(folder), "is a file; the host needs a folder here to write takes into")
    if renders.exists() and renders.resolve().parent != project.root:
        raise InputError(display_path(renders), "lies outside the project; the host will not serve this project")


def delivery_problem(overrides: DeliveryOverrides, base: Delivery) -> Optional[str]:
    """Why a preset's delivery overrides cannot apply on top of ``base``, or None."""
    try:
        overrides.apply(base)
    except ValidationError as exc:
        return validation_error("", exc).reason
    return None


# --------------------------------------------------------------------------- cues


@dataclass(frozen=True)
class Cue:
    """One cue: foley from text, or with an ``input`` a stem rendered by its preset's kind
    (superres, restyle, inpaint with its gaps found as digital silence). ``preset`` already has
    the cue's overrides applied; ``preset_hash`` is the content hash of the preset *file*
    (``DEFAULT_PRESET_HASH`` for the built-in default)."""

    name: str
    preset_name: str
    preset: Preset
    preset_hash: str
    index: int  # 0-based position in the sheet, as in the error messages' cue[i]
    input: Optional[Path] = None  # the stem, resolved and inside the project


CUE_KEYS: tuple[str, ...] = ("name", "preset", "input", *OVERRIDABLE)
# the kinds a cue with an input may render (it names a preset of one of them)
INPUT_KINDS: tuple[str, ...] = ("superres", "restyle", "inpaint")


def _cue(table: Any, index: int, sheet: str, presets: dict[str, PresetEntry], project: Project, check_chain: Optional[ChainCheck] = None) -> Cue:
    here = f"{sheet} cue[{index}]"
    if not isinstance(table, dict):
        raise InputError(here, "must be a [[cue]] table")
    if "name" not in table:
        raise InputError(f"{here}.name", "required")
    name = table["name"]
    problem = name_problem(name)
    if problem:
        raise InputError(f"{here}.name", problem)
    # from here on a problem names the cue as the user wrote it, and where it is in the sheet
    here = f'{sheet} cue "{name}" (cue[{index}])'

    overrides = {k: v for k, v in table.items() if k not in ("name", "preset", "input")}
    stem = _cue_input(table, here, project) if "input" in table else None
    if "preset" in table:
        preset_name = table["preset"]
        if not isinstance(preset_name, str):
            raise InputError(f"{here}.preset", f"must be a preset name, got {show_value(preset_name)}")
        entry = presets.get(preset_name)
        if entry is None:
            kinds = INPUT_KINDS if stem is not None else ("foley",)
            close = close_names(preset_name, [n for n, e in presets.items() if e.preset.kind in kinds])
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise InputError(f"{here}.preset", f"no preset named '{preset_name}'{hint}")
        base, digest = entry.preset, entry.content_hash
    elif stem is not None:
        raise InputError(f"{here}.preset", f"a cue with an input names its preset (a {', '.join(INPUT_KINDS)} preset)")
    else:
        if "prompt" not in table:
            raise InputError(here, "needs a 'preset' or a 'prompt'")
        preset_name = DEFAULT_PRESET_NAME
        entry = presets.get(DEFAULT_PRESET_NAME)
        base, digest = (entry.preset, entry.content_hash) if entry else (DEFAULT_PRESET, DEFAULT_PRESET_HASH)

    if stem is None and base.kind != "foley":
        raise InputError(
            f"{here}.preset",
            f"preset '{preset_name}' is a {base.kind} preset; a cue without an input renders foley "
            f"(give the cue an input = \"stems/x.wav\", or drop the stem into {base.kind}/)",
        )
    if stem is not None and base.kind == "foley":
        raise InputError(f"{here}.input", f"preset '{preset_name}' is a foley preset, which takes no input; a cue with an input needs a {', '.join(INPUT_KINDS)} preset")
    preset = apply_overrides(base, overrides, sheet, allowed=OVERRIDABLE, prefix=f'cue "{name}" (cue[{index}]).')
    if stem is None and not preset.prompt.strip():
        raise InputError(f"{here}.prompt", f"a foley cue needs a prompt (preset '{preset_name}' has none)")
    problem = delivery_problem(preset.delivery, project.settings.delivery)
    if problem:
        field = "delivery" if "delivery" in overrides else "preset"
        raise InputError(f"{here}.{field}", f"with this project's delivery: {problem}")
    if "chain" in overrides:  # the cue's own chain: its files are the project's
        preset = preset.model_copy(update={"chain": resolve_paths(preset.chain, project.root)})
        if check_chain is not None:
            check_chain(preset.chain, here)
    return Cue(name=name, preset_name=preset_name, preset=preset, preset_hash=digest, index=index, input=stem)


def _cue_input(table: dict, here: str, project: Project) -> Path:
    """A cue's input: a path relative to the project (or absolute), resolved, inside the project."""
    value = table["input"]
    where = f"{here}.input"
    if not isinstance(value, str) or not value.strip():
        raise InputError(where, f"must be a path to a stem inside the project, e.g. \"stems/x.wav\", got {show_value(value)}")
    path = confine(value, [project.root], where, base=project.root, what="the project")
    if not path.is_file():
        raise InputError(where, f"'{value}' is not a file in the project")
    return path


def load_cues(project: Project, presets: dict[str, PresetEntry], check_chain: Optional[ChainCheck] = None) -> tuple[list[Cue], list[InputError]]:
    """Read the cue sheet. Bad cues are reported and skipped; missing or empty sheet -> ([], [])."""
    path = project.cue_sheet
    sheet = display_path(path)
    if not path.exists():
        return [], []
    try:
        data, _ = read_toml(path)
    except InputError as err:
        return [], [err]

    errors: list[InputError] = []
    for key in data:
        if key != "cue":
            errors.append(InputError(f"{sheet} {key}", "unknown table; a cue sheet holds [[cue]] tables only"))
    tables = data.get("cue", [])
    if isinstance(tables, dict):
        return [], errors + [InputError(f"{sheet} cue", "write [[cue]] (an array of tables), not [cue]")]
    if not isinstance(tables, list):
        return [], errors + [InputError(f"{sheet} cue", "must be [[cue]] tables")]

    # Names are compared case-blind (macOS and Windows file systems are); the first use wins,
    # even if that cue is broken for another reason.
    first_use: dict[str, int] = {}
    cues: list[Cue] = []
    for index, table in enumerate(tables):
        name = table.get("name") if isinstance(table, dict) else None
        if isinstance(name, str) and name_problem(name) is None:
            earlier = first_use.setdefault(name.lower(), index)
            if earlier != index:
                errors.append(InputError(f'{sheet} cue "{name}" (cue[{index}]).name', f"'{name}' is already used by cue[{earlier}]"))
                continue
        try:
            cues.append(_cue(table, index, sheet, presets, project, check_chain))
        except InputError as err:
            # the cue this is about, for a summary that lists it as failed
            err.subject = ("foley", name if isinstance(name, str) and name_problem(name) is None else f"cue[{index}]")
            errors.append(err)
    return cues, errors


__all__ = [
    "CUE_FILE",
    "Cue",
    "DEFAULT_PRESET",
    "DEFAULT_PRESET_HASH",
    "DEFAULT_PRESET_NAME",
    "Project",
    "ProjectSettings",
    "check_renders",
    "load_cues",
    "load_project",
    "delivery_problem",
    "name_problem",
]
