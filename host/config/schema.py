"""Plain-data settings shared by presets and projects: an effect in a chain and the delivery format.

Validated with pydantic so every rule lives here once; the functions that *use* these
(building a pedalboard chain, finishing a take) live in ``host.finish``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


def show_value(value: Any) -> str:
    """A value as a TOML file would spell it, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (dict, list)):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return repr(value)


class Effect(BaseModel):
    """One plugin in a chain.

    Either a built-in pedalboard plugin by class name (``plugin = "Compressor"``) or an
    external VST3 by path (``vst3 = "/Library/Audio/Plug-Ins/VST3/X.vst3"``). Every other key
    is a parameter of that plugin, e.g. ``threshold_db = -18``.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    plugin: Optional[str] = None
    vst3: Optional[str] = None

    @model_validator(mode="after")
    def _one_source(self) -> "Effect":
        if (self.plugin is None) == (self.vst3 is None):
            raise ValueError("an effect needs exactly one of 'plugin' (a pedalboard class) or 'vst3' (a path)")
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def label(self) -> str:
        return self.plugin or self.vst3 or "?"


BitDepth = Literal[16, 24, 32]  # 32 means 32-bit float
AudioFormat = Literal["wav", "flac"]

# TOML has no null: `loudness = "none"` (or false, or "off") switches loudness normalisation off,
# in project.toml and in a preset's [delivery] alike
LOUDNESS_OFF = "none"


def flac_problem(fmt: Optional[str], bit_depth: Optional[int]) -> Optional[str]:
    """The one rule between format and bit depth: FLAC holds integers only."""
    if fmt == "flac" and bit_depth == 32:
        return "FLAC holds 16- or 24-bit integer samples, not 32-bit float; use bit_depth = 24 or format = \"wav\""
    return None


def _loudness_word(value: Any) -> Any:
    if value is False or (isinstance(value, str) and value.strip().lower() in {"none", "off"}):
        return LOUDNESS_OFF
    if isinstance(value, (bool, str)):
        raise ValueError(f'must be a LUFS number or "none", got {show_value(value)}')
    return value


def typed_number(value: Any, integer: bool = False) -> Any:
    """TOML is typed: refuse booleans and strings where a number belongs (pydantic would read
    "48000" and true as numbers), infinities, and fractions where a whole number belongs."""
    if isinstance(value, (bool, str)):
        raise ValueError(f"must be {'a whole number' if integer else 'a number'}, got {show_value(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {show_value(value)}")
    if integer and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"must be a whole number, got {show_value(value)}")
    return value


_number = typed_number


class Delivery(BaseModel):
    """How a take leaves the host: rate, sample format, loudness and peak ceiling. These fields
    are written at the top level of ``project.toml`` and under ``[delivery]`` in a preset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: int = Field(48000, ge=8000, le=384000)
    bit_depth: BitDepth = 24  # 32 = 32-bit float
    format: AudioFormat = "wav"
    loudness: Optional[float] = Field(-23.0, ge=-70.0, le=0.0, description='integrated LUFS target, or "none"')
    true_peak: float = Field(-1.0, ge=-20.0, le=0.0, description="true-peak ceiling in dBTP")

    @field_validator("loudness", mode="before")
    @classmethod
    def _loudness(cls, value: Any) -> Any:
        value = _loudness_word(value)
        return None if value == LOUDNESS_OFF else value

    @field_validator("sample_rate", "true_peak", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return _number(value)

    @field_validator("format")
    @classmethod
    def _flac_is_integer(cls, value: str, info: ValidationInfo) -> str:
        problem = flac_problem(value, info.data.get("bit_depth"))  # reported on `format`, the key to change
        if problem:
            raise ValueError(problem)
        return value


DELIVERY_FIELDS: tuple[str, ...] = tuple(Delivery.model_fields)


class DeliveryOverrides(BaseModel):
    """A preset's optional changes to the project's delivery; unset fields keep the project's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: Optional[int] = Field(None, ge=8000, le=384000)
    bit_depth: Optional[BitDepth] = None
    format: Optional[AudioFormat] = None
    loudness: Optional[Union[float, Literal["none"]]] = None  # "none": normalisation off
    true_peak: Optional[float] = Field(None, ge=-20.0, le=0.0)

    @model_validator(mode="before")
    @classmethod
    def _old_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "loudness_off" in data:
            raise ValueError('loudness_off is no longer read: write loudness = "none" (as in project.toml)')
        return data

    @field_validator("loudness", mode="before")
    @classmethod
    def _loudness(cls, value: Any) -> Any:
        return None if value is None else _loudness_word(value)

    @field_validator("loudness")
    @classmethod
    def _loudness_range(cls, value: Any) -> Any:
        if isinstance(value, float) and not -70.0 <= value <= 0.0:
            raise ValueError(f"must be between -70 and 0 LUFS, got {show_value(value)}")
        return value

    @field_validator("sample_rate", "true_peak", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return None if value is None else _number(value)

    @field_validator("format")
    @classmethod
    def _flac_is_integer(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        problem = flac_problem(value, info.data.get("bit_depth"))  # both set here; against a project's, in apply()
        if problem:
            raise ValueError(problem)
        return value

    def apply(self, base: Delivery) -> Delivery:
        changes = {k: v for k, v in self.model_dump().items() if v is not None}
        if changes.get("loudness") == LOUDNESS_OFF:
            changes["loudness"] = None
        return Delivery.model_validate({**base.model_dump(), **changes})


def resolve_paths(effects: list[Effect], base_dir: Path) -> list[Effect]:
    """A chain with its file paths (a ``vst3`` plug-in, an impulse response) made absolute against
    ``base_dir``: the folder of the file that wrote them. Done once, when the file is loaded, so
    a path means the same file wherever the chain is built later."""
    out = []
    for effect in effects:
        data = effect.model_dump(exclude_none=True)
        for key in PATH_PARAMS:
            value = data.get(key)
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                data[key] = str(Path(base_dir) / value)
            elif isinstance(value, str) and value.startswith("~"):
                data[key] = str(Path(value).expanduser())
        out.append(Effect.model_validate(data))
    return out


# effect keys that name files
PATH_PARAMS = ("vst3", "impulse_response_filename")
