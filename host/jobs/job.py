"""A job is a value: everything needed to render one cue or one stem, and nothing else.

It is what the journal stores, what the runner renders and what a take's sidecar recalls.
Its ``key`` names what determines the takes, so the same key means the same takes are
already there and nothing needs rendering.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict

from host.config.presets import Preset
from host.config.schema import Delivery

# Bump when a change to the engine or delivery makes old takes differ from what a new render gives.
RENDER_VERSION = 1

Kind = Literal["foley", "restyle", "inpaint"]


class Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    name: str  # takes go to renders/<kind>/<name>/<name>_tNN.wav
    project: str  # the project root, resolved
    preset_name: str
    preset_hash: str
    preset: Preset  # with every override (cue fields, sidecar, OSC arguments) applied
    delivery: Delivery  # the project's, with the preset's overrides applied
    input: Optional[str] = None  # the stem, for restyle and inpaint
    input_sha256: Optional[str] = None  # the stem's content when the job was accepted (hashed once, off the OSC thread)
    region: Optional[tuple[float, float]] = None  # restyle only this part of the stem: (start, length) in seconds
    gaps: Optional[tuple[tuple[float, float], ...]] = None  # None: find runs of digital silence
    source: str = "cli"  # where it came from: cli, cue, drop, osc
    # (CreatorID, SourceID) when the project names takes by UCS (naming = "ucs"); names the files,
    # not the sound, so it is not part of the key
    ucs_ids: Optional[tuple[str, str]] = None

    def key(self, model_id: str, model_revision: str, input_hash: Optional[str] = None) -> str:
        """Hash of everything that determines the takes (not where the request came from).
        ``input_hash`` is the stem's content as read now (default: as accepted)."""
        material = {
            "render_version": RENDER_VERSION,
            "kind": self.kind,
            "name": self.name,
            # ucs names the file, and the model is keyed by its id and revision below: adding either
            # field to the preset renders nothing again
            "preset": self.preset.model_dump(mode="json", exclude={"ucs", "model"}),
            "delivery": self.delivery.model_dump(mode="json"),
            "gaps": self.gaps,
            "input": input_hash if input_hash is not None else self.input_sha256,
            "model": [model_id, model_revision],
        }
        if self.region is not None:  # only when set, so the keys of every earlier take stay the same
            material["region"] = list(self.region)
        blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    def batch_group(self) -> Optional[tuple]:
        """Foley jobs with the same group can share one denoising call; other kinds cannot."""
        if self.kind != "foley":
            return None
        p = self.preset
        return (round(p.duration, 6), p.steps, round(p.guidance, 6), p.scheduler)
