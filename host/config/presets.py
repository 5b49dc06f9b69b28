"""Presets: named recipes for a render (prompt, sampler settings, finishing chain, delivery).

A preset is one TOML file; its name is the file stem. The host ships built-ins in the repo's
``presets/`` folder and a project may add or replace presets in ``<project>/presets/``.

Every problem with a file becomes one :class:`~host.errors.InputError` naming the file and the
field, e.g. ``presets/whoosh-fast.toml strength: must be between 0 and 1, got 1.5``.
"""

from __future__ import annotations

import difflib
import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from host import mel
from host.config.schema import DeliveryOverrides, Effect, resolve_paths, show_value
from host.config.schema import typed_number as _number
from host.config.ucs import cat_id_problem
from host.errors import InputError

BUILTIN_DIR = Path(__file__).resolve().parents[2] / "presets"

PresetKind = Literal["foley", "restyle", "inpaint", "superres"]
KINDS: tuple[str, ...] = ("foley", "restyle", "inpaint", "superres")

SEED_MAX = 2**32 - 1
# AudioLDM's schedule has 1000 training steps and DDIM offsets by one: 999 is the most it can take
MAX_STEPS = 999
# A foley take may be up to 10 minutes (longer than the model's window: rendered as windows that
# continue each other); a job's takes together at most this much audio, so a job's rendered takes
# stay a bounded amount of memory (30 min at 16 kHz float: 115 MB) on their way to finishing.
MAX_DURATION_SECONDS = 600.0
MAX_JOB_SECONDS = 1800.0
# A loop needs room for its seam (host.engine.loop) with sound on both sides.
MIN_LOOP_SECONDS = 1.0
# Super-resolution tops out at the model's bandwidth: AudioLDM's mel bands end at 8 kHz.
MAX_CUTOFF_HZ = float(mel.F_MAX)

# The fields a cue or a sidecar may change; ``kind`` and ``description`` belong to the preset.
OVERRIDABLE = (
    "prompt",
    "negative_prompt",
    "duration",
    "steps",
    "guidance",
    "seed",
    "takes",
    "strength",
    "scheduler",
    "chain",
    "delivery",
    "ucs",
    "model",
    "loop",
    "cutoff",
    "keep",
)


# --------------------------------------------------------------------------- error helpers
# Shared by host.config.project and host.intake.drops: turn file and validation problems
# into one-line InputErrors.


def display_path(path: Path | str) -> str:
    """A path as the user should see it: relative to the working folder when inside it."""
    p = Path(path)
    try:
        if p.is_absolute():
            rel = p.relative_to(Path.cwd())
            return str(rel) if str(rel) != "." else str(p)
    except ValueError:
        pass
    return str(p)


def field_path(loc: Iterable[Any]) -> str:
    """``("chain", 0, "plugin")`` -> ``chain[0].plugin``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _reason(err: dict[str, Any], known: Iterable[str] = ()) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "extra_forbidden":
        loc = err.get("loc") or ()
        # suggest only for top-level keys: ``known`` lists the top-level fields
        close = difflib.get_close_matches(str(loc[0]), list(known), n=1) if len(loc) == 1 else []
        return "unknown field" + (f"; did you mean '{close[0]}'?" if close else "")
    if kind == "missing":
        return "required"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "assertion_error":
        return msg.removeprefix("Assertion failed, ")
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the allowed values')}, got {show_value(value)}"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"must be {bounds[kind]} {limit}, got {show_value(value)}"
    text = msg.removeprefix("Input should be ")
    text = "must be " + text if text != msg else text
    return text if ", got " in text else f"{text}, got {show_value(value)}"


def validation_error(where: str, exc: ValidationError, prefix: str = "", known: Iterable[str] = ()) -> InputError:
    """The first problem in ``exc`` as an InputError: ``<where> <prefix><field>: <reason>``.

    ``where`` is the file as shown to the user, ``prefix`` e.g. ``cue[3].``.
    """
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always reports at least one
        return InputError(where, str(exc).splitlines()[0])
    first = errors[0]
    field = prefix + field_path(first.get("loc", ()))
    field = field.rstrip(".")
    reason = _reason(first, known)
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return InputError(f"{where} {field}" if field else where, reason)


def read_toml(path: Path) -> tuple[dict[str, Any], bytes]:
    """Parse a TOML file; returns the table and the raw bytes (for hashing)."""
    where = display_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(where, "file not found") from None
    except IsADirectoryError:
        raise InputError(where, "is a folder, expected a TOML file") from None
    except OSError as exc:
        raise InputError(where, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(where, "invalid TOML: not UTF-8 text") from None
    try:
        return tomllib.loads(text), raw
    except tomllib.TOMLDecodeError as exc:
        raise InputError(where, f"invalid TOML: {exc}") from None


def close_names(name: str, names: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, sorted(names), n=n, cutoff=0.5)


def near_miss(text: str, names: Iterable[str]) -> Optional[str]:
    """The name ``text`` most likely misspells: equal ignoring case, or one edit away (a letter
    added, dropped, changed, or two neighbours swapped). None if no name is that close."""
    lowered = text.lower()
    for name in sorted(names):
        if name.lower() == lowered or _one_edit(lowered, name.lower()):
            return name
    return None


def _one_edit(a: str, b: str) -> bool:
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
    return short[i:] == long_[i + 1 :]


def content_hash(raw: bytes) -> str:
    """First 16 hex characters (64 bits) of the SHA-256 of a file's bytes."""
    return hashlib.sha256(raw).hexdigest()[:16]


# --------------------------------------------------------------------------- the model


def _between(value: float, low: float, high: float, unit: str = "", low_open: bool = False) -> float:
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        u = f" {unit}" if unit else ""
        raise ValueError(f"must be between {show_value(low)} and {show_value(high)}{u}, got {show_value(value)}")
    return value


class Preset(BaseModel):
    """One render recipe. Defaults are AudioLDM's usual settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: PresetKind
    description: str = ""
    prompt: str = ""
    negative_prompt: str = "low quality, average quality, distorted"
    duration: float = 5.0
    steps: int = 50
    guidance: float = 2.5
    seed: Optional[int] = None  # None: random; the engine records the one it used
    takes: int = 1
    strength: float = 0.6  # restyle: how far from the stem (0 = unchanged, 1 = ignore it)
    scheduler: Literal["ddim", "dpm"] = "ddim"
    chain: list[Effect] = []
    delivery: DeliveryOverrides = DeliveryOverrides()
    ucs: Optional[str] = None  # UCS CatID (e.g. "DOORWood") for UCS file names; checked against the list
    # the checkpoint this preset wants (hub id, local folder, "tiny" or "tiny-audioldm2");
    # None: the project's or the host's model
    model: Optional[str] = None
    loop: bool = False  # foley: the take plays seamlessly when repeated (seam regenerated, smpl loop)
    cutoff: Optional[float] = None  # superres: where the stem's own band ends, Hz; None: found from the stem
    # render `takes` candidates, deliver only the `keep` that fit the prompt best (CLAP scores);
    # None: deliver every take
    keep: Optional[int] = None

    @field_validator("ucs", mode="before")
    @classmethod
    def _ucs(cls, value: Any) -> Any:
        problem = None if value is None else cat_id_problem(value)  # None: from model_dump
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("keep", mode="before")
    @classmethod
    def _keep_in(cls, value: Any) -> Any:
        return value if value is None else _number(value, integer=True)

    @field_validator("keep")
    @classmethod
    def _keep(cls, value: Optional[int], info: ValidationInfo) -> Optional[int]:
        if value is None:
            return None
        takes = info.data.get("takes")
        if value < 1 or (takes is not None and value > takes):
            raise ValueError(f"must be between 1 and takes ({takes}): the takes to deliver out of those rendered, got {value}")
        return value

    @field_validator("loop", mode="before")
    @classmethod
    def _loop_flag(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {show_value(value)}")
        return value

    @field_validator("loop")
    @classmethod
    def _loop(cls, value: bool, info: ValidationInfo) -> bool:
        kind = info.data.get("kind")
        if value and kind is not None and kind != "foley":
            raise ValueError(f"only foley takes loop; this is a {kind} preset")
        duration = info.data.get("duration")
        if value and duration is not None and duration < MIN_LOOP_SECONDS:
            raise ValueError(f"a loop needs a duration of at least {MIN_LOOP_SECONDS:g} s (its seam needs sound on both sides), got {duration:g} s")
        return value

    @field_validator("cutoff", mode="before")
    @classmethod
    def _cutoff_number(cls, value: Any) -> Any:
        return value if value is None else _number(value)

    @field_validator("cutoff")
    @classmethod
    def _cutoff(cls, value: Optional[float], info: ValidationInfo) -> Optional[float]:
        if value is None:
            return None
        kind = info.data.get("kind")
        if kind is not None and kind != "superres":
            raise ValueError(f"only superres takes have a cutoff; this is a {kind} preset")
        if not 0 < value <= MAX_CUTOFF_HZ:
            raise ValueError(f"must be above 0 and at most {MAX_CUTOFF_HZ:g} Hz (the model's bandwidth), got {show_value(value)}")
        return value

    @field_validator("kind", "description", "prompt", "negative_prompt", "scheduler", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {show_value(value)}")
        return value

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"must be non-empty text (a hub id, a folder or tiny), got {show_value(value)}")
        return value

    @field_validator("duration", "guidance", "strength", mode="before")
    @classmethod
    def _float_in(cls, value: Any) -> Any:
        return _number(value)

    @field_validator("steps", "takes", "seed", mode="before")
    @classmethod
    def _int_in(cls, value: Any) -> Any:
        return value if value is None else _number(value, integer=True)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: float) -> float:
        return _between(value, 0.04, MAX_DURATION_SECONDS, "seconds", low_open=True)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: int) -> int:
        return _between(value, 1, MAX_STEPS)

    @field_validator("guidance")
    @classmethod
    def _guidance(cls, value: float) -> float:
        return _between(value, 0, 30)

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: Optional[int]) -> Optional[int]:
        return value if value is None else _between(value, 0, SEED_MAX)

    @field_validator("takes")
    @classmethod
    def _takes(cls, value: int, info: ValidationInfo) -> int:
        value = _between(value, 1, 32)
        duration = info.data.get("duration")
        if duration is not None and info.data.get("kind") == "foley" and value * duration > MAX_JOB_SECONDS:
            most = max(1, int(MAX_JOB_SECONDS // duration))
            raise ValueError(
                f"{value} takes of {duration:g} s are {value * duration:g} s of audio; one job renders at most "
                f"{MAX_JOB_SECONDS:g} s ({most} take{'s' if most > 1 else ''} of this length)"
            )
        return value

    @field_validator("strength")
    @classmethod
    def _strength(cls, value: float) -> float:
        return _between(value, 0, 1)


    @field_validator("chain", mode="before")
    @classmethod
    def _chain_list(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a list of effects ([[chain]] tables)")
        return value

    def with_overrides(self, **fields: Any) -> "Preset":
        """This preset with some fields changed, validated as a whole.

        ``chain`` replaces the preset's chain; ``delivery`` is merged into the preset's delivery
        overrides (only the keys given change). Raises ``pydantic.ValidationError``.
        """
        if not fields:
            return self
        data = self.model_dump(exclude_defaults=False)
        data["delivery"] = self.delivery.model_dump(exclude_defaults=True)
        if "delivery" in fields:
            extra = fields["delivery"]
            if isinstance(extra, DeliveryOverrides):
                extra = extra.model_dump(exclude_defaults=True)
            if isinstance(extra, dict):
                fields = {**fields, "delivery": {**data["delivery"], **extra}}
        return Preset.model_validate({**data, **fields})


PRESET_FIELDS: tuple[str, ...] = tuple(Preset.model_fields)


def apply_overrides(base: Preset, changes: Mapping[str, Any], where: str, allowed: Iterable[str] = OVERRIDABLE, prefix: str = "") -> Preset:
    """``base`` with ``changes`` applied: the one way a cue, a stem's sidecar or an OSC request
    changes a preset. Keys outside ``allowed`` are refused (with "did you mean"), values are
    checked by the preset's own validators, and a problem is one InputError naming ``where``,
    ``prefix`` and the field, e.g. ``cues.toml cue "door" (cue[1]).duration: must be ...``."""
    allowed = tuple(allowed)
    for key in changes:
        if key not in allowed:
            close = close_names(key, allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "allowed here: " + ", ".join(allowed)
            raise InputError(f"{where} {prefix}{key}", f"unknown field; {hint}")
    try:
        return base.with_overrides(**changes)
    except ValidationError as exc:
        raise validation_error(where, exc, prefix=prefix, known=allowed) from None


@dataclass(frozen=True)
class PresetEntry:
    """A preset as found on disk. ``content_hash`` = first 16 hex chars of sha256(file bytes)."""

    name: str
    path: Path
    preset: Preset
    content_hash: str


# --------------------------------------------------------------------------- loading


# A chain checker (``host.finish.chain.check_chain``) is handed in by whoever loads presets for
# rendering: checking a chain builds its plug-ins (a VST3 binary loads), which is the effects
# layer's work, not configuration's; a daemon does it off the thread that answers requests.
ChainCheck = Callable[[list[Effect], str], None]


def _load(path: Path, check_chain: Optional[ChainCheck] = None) -> tuple[Preset, str]:
    path = Path(path)
    where = display_path(path)
    data, raw = read_toml(path)
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        raise validation_error(where, exc, known=PRESET_FIELDS) from None
    if preset.chain:  # file paths in the chain mean files beside the preset, wherever it is built
        preset = preset.model_copy(update={"chain": resolve_paths(preset.chain, path.parent)})
        if check_chain is not None:
            check_chain(preset.chain, where)
    return preset, content_hash(raw)


def load_preset_file(path: Path | str, check_chain: Optional[ChainCheck] = None) -> Preset:
    """Read and validate one preset file (its chain too, given a checker). Raises InputError."""
    return _load(Path(path), check_chain)[0]


def load_preset_entry(path: Path | str, check_chain: Optional[ChainCheck] = None) -> PresetEntry:
    """Like :func:`load_preset_file`, with the name (file stem) and content hash."""
    path = Path(path)
    preset, digest = _load(path, check_chain)
    return PresetEntry(name=path.stem, path=path, preset=preset, content_hash=digest)


def _preset_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() == ".toml" and not p.name.startswith(".") and p.is_file()
    )


def preset_library(project_dir: Path | None = None, check_chain: Optional[ChainCheck] = None) -> tuple[dict[str, PresetEntry], list[InputError]]:
    """Built-in presets plus ``<project_dir>/presets/*.toml``; a project preset replaces a
    built-in of the same name. Bad files (and, given a checker, bad chains) are returned as
    errors and left out."""
    entries: dict[str, PresetEntry] = {}
    errors: list[InputError] = []
    folders = [BUILTIN_DIR]
    if project_dir is not None:
        folders.append(Path(project_dir) / "presets")
    for folder in folders:
        for path in _preset_files(folder):
            try:
                entries[path.stem] = load_preset_entry(path, check_chain)
            except InputError as err:
                err.preset_name = path.stem  # so a request naming it is refused with this reason
                errors.append(err)
                # A broken project preset must not quietly fall back to the built-in of the
                # same name: the project meant to replace it.
                entries.pop(path.stem, None)
    return dict(sorted(entries.items())), errors


def check_presets(path: Path | str | None = None, check_chain: Optional[ChainCheck] = None) -> list[InputError]:
    """Validate one preset file, or every ``.toml`` in a folder (default: the built-ins)."""
    target = BUILTIN_DIR if path is None else Path(path)
    if target.is_dir():
        files = _preset_files(target)
    elif target.exists():
        files = [target]
    else:
        return [InputError(display_path(target), "no such file or folder")]
    errors: list[InputError] = []
    for file in files:
        try:
            load_preset_file(file, check_chain)
        except InputError as err:
            errors.append(err)
    return errors


__all__ = [
    "BUILTIN_DIR",
    "KINDS",
    "OVERRIDABLE",
    "Preset",
    "PresetEntry",
    "check_presets",
    "load_preset_entry",
    "load_preset_file",
    "preset_library",
]
