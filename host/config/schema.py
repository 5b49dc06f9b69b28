"""Plain-data settings shared by presets and projects: an effect in a chain and the delivery format.

Validated with pydantic so every rule lives here once; the functions that *use* these
(building a pedalboard chain, finishing a take) live in ``host.finish``.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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


class Delivery(BaseModel):
    """How a take leaves the host: rate, sample format, loudness and peak ceiling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: int = Field(48000, ge=8000, le=384000)
    bit_depth: BitDepth = 24
    format: AudioFormat = "wav"
    loudness: Optional[float] = Field(-23.0, ge=-70.0, le=0.0, description="integrated LUFS target, or none")
    true_peak: float = Field(-1.0, ge=-20.0, le=0.0, description="true-peak ceiling in dBTP")

    @field_validator("loudness", mode="before")
    @classmethod
    def _none_spelled_out(cls, value: Any) -> Any:
        # TOML has no null: `loudness = "none"` or `loudness = false` switches normalisation off.
        if value is False or (isinstance(value, str) and value.strip().lower() in {"none", "off"}):
            return None
        return value

    @model_validator(mode="after")
    def _flac_is_integer(self) -> "Delivery":
        if self.format == "flac" and self.bit_depth == 32:
            raise ValueError("FLAC holds 16- or 24-bit integer samples, not 32-bit float")
        return self


class DeliveryOverrides(BaseModel):
    """A preset's optional changes to the project's delivery; unset fields keep the project's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_rate: Optional[int] = Field(None, ge=8000, le=384000)
    bit_depth: Optional[BitDepth] = None
    format: Optional[AudioFormat] = None
    loudness: Optional[float] = Field(None, ge=-70.0, le=0.0)
    loudness_off: bool = False  # TOML has no null: set true to skip loudness normalisation
    true_peak: Optional[float] = Field(None, ge=-20.0, le=0.0)

    def apply(self, base: Delivery) -> Delivery:
        changes = {k: v for k, v in self.model_dump(exclude={"loudness_off"}).items() if v is not None}
        if self.loudness_off:
            changes["loudness"] = None
        return Delivery.model_validate({**base.model_dump(), **changes})
