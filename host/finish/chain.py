"""Effects chains: validate a list of ``Effect`` settings, build a pedalboard, run audio through it.

Every problem with a chain is reported as one ``InputError`` naming the file, the position in the
chain and the plugin, e.g.
``presets/rain.toml chain[2] (Compressor): unknown parameter 'treshold_db' (valid: attack_ms, ...)``.
"""

from __future__ import annotations

import difflib
import enum
import inspect
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pedalboard

from host.config.schema import Effect
from host.errors import InputError

# Exported Plugin subclasses that are not effects you can name in a chain: abstract bases, and
# (with their subclasses) containers - a chain is already a list - and hosted plugins (use `vst3`).
_ABSTRACT = ("Plugin", "IIRFilter")
_FAMILIES = ("PluginContainer", "ExternalPlugin")

_MAX_LISTED = 30  # external plugins can expose hundreds of parameters; keep the error one readable line


def build_chain(effects: list[Effect], where: str, base_dir: Path | None = None) -> pedalboard.Pedalboard:
    """Validate and construct every effect in order; raise ``InputError`` on the first problem.

    ``where`` names the source (usually a file) in error messages; relative ``vst3`` paths and
    ``Convolution`` impulse-response files are resolved against ``base_dir``.
    """
    plugins = []
    for i, effect in enumerate(effects):
        spot = f"{where} chain[{i}] ({effect.label})"
        if effect.vst3 is not None:
            plugins.append(_load_vst3(effect, spot, base_dir))
        else:
            plugins.append(_build_builtin(effect, spot, base_dir))
    return pedalboard.Pedalboard(plugins)


def check_chain(effects: list[Effect], where: str, base_dir: Path | None = None) -> None:
    """Raise ``InputError`` if ``build_chain`` would; build nothing that outlives the call."""
    build_chain(effects, where, base_dir)


def apply_chain(board: pedalboard.Pedalboard, audio: np.ndarray, sample_rate: int, where: str = "chain") -> np.ndarray:
    """Run ``audio`` (channels, samples) through ``board`` from a clean state.

    Returns float32 of the input's shape: an empty board returns the input unchanged, and a
    plugin that changes the channel count is folded back (mono stays mono, stereo stays stereo).
    Raises ``InputError`` if the chain produces NaN/inf (e.g. a filter above Nyquist at this rate).
    """
    if len(board) == 0:
        return audio
    x = np.asarray(audio, dtype=np.float32)
    flat = x.ndim == 1
    x2 = x[np.newaxis, :] if flat else x
    y = np.asarray(board(x2, float(sample_rate), reset=True), dtype=np.float32)
    if y.ndim == 1:
        y = y[np.newaxis, :]
    if y.shape[0] != x2.shape[0]:
        if x2.shape[0] == 1:
            y = y.mean(axis=0, keepdims=True)
        elif y.shape[0] == 1:
            y = np.repeat(y, x2.shape[0], axis=0)
        else:
            raise InputError(where, f"the chain turned {x2.shape[0]} channels into {y.shape[0]}")
    if not np.all(np.isfinite(y)):
        raise InputError(
            where,
            f"the chain produced NaN/inf samples at {sample_rate} Hz "
            f"(are all frequencies below {sample_rate / 2:g} Hz and gains finite?)",
        )
    y = np.ascontiguousarray(y, dtype=np.float32)
    return y[0] if flat else y


# ---------------------------------------------------------------- built-in plugins


def builtin_plugins() -> dict[str, type]:
    """Name -> class for every pedalboard effect that can be named with ``plugin = "..."``."""
    abstract = tuple(getattr(pedalboard, n) for n in _ABSTRACT if hasattr(pedalboard, n))
    families = tuple(getattr(pedalboard, n) for n in _FAMILIES if hasattr(pedalboard, n))
    found = {}
    for name in dir(pedalboard):
        cls = getattr(pedalboard, name)
        if (
            not name.startswith("_")
            and inspect.isclass(cls)
            and issubclass(cls, pedalboard.Plugin)
            and cls not in abstract
            and not issubclass(cls, families)
        ):
            found[name] = cls
    return found


def _build_builtin(effect: Effect, spot: str, base_dir: Path | None) -> pedalboard.Plugin:
    name = effect.plugin
    known = builtin_plugins()
    cls = known.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "built-in plugins: " + ", ".join(sorted(known))
        raise InputError(spot, f"unknown plugin '{name}' ({hint})")

    ctor = _constructor_params(cls)
    valid = set(ctor) | _settable_properties(cls)
    kwargs: dict[str, Any] = {}
    later: dict[str, Any] = {}
    for key, value in effect.params.items():
        if key not in valid:
            raise InputError(spot, f"unknown parameter '{key}' (valid: {_listing(valid)})")
        value = _coerce(key, value, ctor.get(key, ""), spot)
        if key == "impulse_response_filename":
            value = _existing_file(value, base_dir, spot, "impulse response")
        (kwargs if key in ctor else later)[key] = value

    missing = [k for k in _required_params(cls) if k not in kwargs]
    if missing:
        raise InputError(spot, f"missing required parameter '{missing[0]}'")
    try:
        plugin = cls(**kwargs)
        for key, value in later.items():
            setattr(plugin, key, value)
    except TypeError:
        signature = ", ".join(f"{k}: {t}" if t else k for k, t in ctor.items())
        raise InputError(spot, f"invalid parameters (expected {name}({signature}))") from None
    except (ValueError, RuntimeError) as err:
        raise InputError(spot, _one_line(err)) from None
    return plugin


def _settable_properties(cls: type) -> set[str]:
    """Public properties with a setter (``threshold_db``), not read-only ones (``is_effect``)."""
    found = set()
    for key in dir(cls):
        attr = inspect.getattr_static(cls, key, None)
        if not key.startswith("_") and isinstance(attr, property) and attr.fset is not None:
            found.add(key)
    return found


def _constructor_params(cls: type) -> dict[str, str]:
    """Keyword parameters of a plugin's constructor -> their type as written in its signature."""
    doc = (cls.__init__.__doc__ or "").strip()
    match = re.search(r"__init__\((.*?)\)\s*->", doc)
    if match:
        params: dict[str, str] = {}
        for part in _split_top_level(match.group(1)):
            name, _, rest = part.partition(":")
            name = name.strip().lstrip("*")
            if name and name != "self":
                params[name] = rest.split("=", 1)[0].strip()
        return params
    try:  # a pure-Python subclass
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return {}
    return {p.name: "" for p in list(sig.parameters.values())[1:]
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _required_params(cls: type) -> list[str]:
    """Constructor parameters without a default (e.g. Convolution's impulse_response_filename)."""
    match = re.search(r"__init__\((.*?)\)\s*->", (cls.__init__.__doc__ or "").strip())
    if not match:
        return []
    parts = _split_top_level(match.group(1))[1:]  # skip self
    return [p.partition(":")[0].strip() for p in parts if "=" not in p and not p.startswith("*")]


def _split_top_level(text: str) -> list[str]:
    """Split a signature on commas that are not inside brackets (``Union[str, X]``) or ``<...>``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(<":
            depth += 1
        elif ch in "])>":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _coerce(key: str, value: Any, annotation: str, spot: str) -> Any:
    """Check a TOML value against the constructor's declared type; map names onto enums."""
    if annotation == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(spot, f"'{key}' must be a number, not {value!r}")
        if not math.isfinite(value):
            raise InputError(spot, f"'{key}' must be a finite number, not {value!r}")
        return float(value)
    if annotation == "bool" and not isinstance(value, bool):
        raise InputError(spot, f"'{key}' must be true or false, not {value!r}")
    enum_type = _resolve_enum(annotation)
    if enum_type is not None and isinstance(value, str):
        members = {m.lower(): member for m, member in enum_type.__members__.items()}
        if value.lower() not in members:
            raise InputError(spot, f"'{key}' must be one of {_listing(enum_type.__members__)}, not {value!r}")
        return members[value.lower()]
    return value


def _resolve_enum(annotation: str) -> Any:
    """``pedalboard_native.LadderFilter.Mode`` -> the enum class, if it is one."""
    parts = annotation.split(".")
    if len(parts) < 2 or not parts[0].startswith("pedalboard"):
        return None
    obj: Any = pedalboard
    for part in parts[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    is_enum = hasattr(obj, "__members__") and (inspect.isclass(obj) or isinstance(obj, enum.EnumMeta))
    return obj if is_enum else None


# ---------------------------------------------------------------- VST3


def _load_vst3(effect: Effect, spot: str, base_dir: Path | None) -> pedalboard.Plugin:
    path = _existing_file(effect.vst3, base_dir, spot, "VST3 plugin", allow_dir=True)
    try:
        plugin = pedalboard.load_plugin(path)
    except Exception as err:  # ImportError, RuntimeError, ... from JUCE: all mean "cannot use it"
        raise InputError(spot, f"cannot load VST3 plugin: {_one_line(err)}") from None
    available = set(plugin.parameters)
    for key, value in effect.params.items():
        if key not in available:
            raise InputError(spot, f"unknown parameter '{key}' (valid: {_listing(available)})")
        try:
            setattr(plugin, key, value)
        except (TypeError, ValueError, RuntimeError) as err:
            raise InputError(spot, f"bad value for '{key}': {_one_line(err)}") from None
    return plugin


# ---------------------------------------------------------------- helpers


def _existing_file(value: Any, base_dir: Path | None, spot: str, what: str, allow_dir: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(spot, f"{what} must be a path, not {value!r}")
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not (path.is_file() or (allow_dir and path.is_dir())):  # .vst3 bundles are directories
        raise InputError(spot, f"{what} not found: {path}")
    return str(path)


def _listing(names) -> str:
    names = sorted(names)
    if not names:
        return "none"
    if len(names) > _MAX_LISTED:
        return ", ".join(names[:_MAX_LISTED]) + f", ... ({len(names) - _MAX_LISTED} more)"
    return ", ".join(names)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__
