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
# 2: inpaint fills matched at the gap's edges and kept under the ceiling, each gap hearing the
#    fills before it; restyle windows with independent noise; true peak by the BS.1770-4 annex 2
#    interpolator. Takes rendered by version 1 are rendered again once.
RENDER_VERSION = 2

Kind = Literal["foley", "restyle", "inpaint", "superres"]

# Foley takes longer than this (AudioLDM's window) have been rendered as windows that continue
# each other since the long-foley change; before it, as one stretched latent. Their keys say so,
# so such takes render again once rather than mixing the two ways among a cue's takes. (An
# AudioLDM 2 take between 5.12 and 10.24 s is one window either way; the key cannot know the
# model's window, so those render again once too.)
LONG_FOLEY_FROM_SECONDS = 5.12


class Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    name: str  # takes go to renders/<kind>/<name>/<name>_tNN.wav
    project: str  # the project root, resolved
    preset_name: str
    preset_hash: str
    preset: Preset  # with every override (cue fields, sidecar, OSC arguments) applied
    delivery: Delivery  # the project's, with the preset's overrides applied
    input: Optional[str] = None  # the stem, for restyle, inpaint and superres
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
            "preset": self.preset.model_dump(mode="json", exclude=self._unkeyed()),
            "delivery": self.delivery.model_dump(mode="json"),
            "gaps": self.gaps,
            "input": input_hash if input_hash is not None else self.input_sha256,
            "model": [model_id, model_revision],
        }
        if self.region is not None:  # only when set, so the keys of every earlier take stay the same
            material["region"] = list(self.region)
        if self.kind == "foley" and self.preset.duration > LONG_FOLEY_FROM_SECONDS:
            material["long"] = "windows"
        blob = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    @property
    def delivers(self) -> int:
        """How many takes the job delivers: ``keep`` of its ``takes`` candidates, or every take."""
        return self.preset.keep if self.preset.keep is not None else self.preset.takes

    def _unkeyed(self) -> set[str]:
        """Preset fields left out of the key: ucs names the file, the model is keyed by its id and
        revision; loop, cutoff and keep count only when set, so adding those fields to the preset
        renders no earlier take again."""
        out = {"ucs", "model"}
        if not self.preset.loop:
            out.add("loop")
        if self.preset.cutoff is None:
            out.add("cutoff")
        if self.preset.keep is None:
            out.add("keep")
        return out

    def batch_group(self) -> Optional[tuple]:
        """Foley jobs with the same group can share one denoising call (on one model); other kinds cannot."""
        if self.kind != "foley":
            return None
        p = self.preset
        return (p.model, round(p.duration, 6), p.steps, round(p.guidance, 6), p.scheduler, p.loop)
