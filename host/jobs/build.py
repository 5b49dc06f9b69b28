"""Turning what arrived (a cue, a dropped stem, an OSC request) into a Job value."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from host.config.presets import Preset
from host.config.project import Cue, Project
from host.intake.drops import Stem
from host.jobs.job import Job


def job_from_cue(project: Project, cue: Cue, source: str = "cue") -> Job:
    return job_from_preset(project, cue.name, cue.preset_name, cue.preset_hash, cue.preset, input=cue.input, source=source)


def job_from_stem(project: Project, stem: Stem, source: str = "drop") -> Job:
    return job_from_preset(
        project, stem.name, stem.preset_name, stem.preset_hash, stem.preset, input=stem.path, gaps=stem.gaps, source=source
    )


def job_from_preset(
    project: Project,
    name: str,
    preset_name: str,
    preset_hash: str,
    preset: Preset,
    input: Optional[Path] = None,
    gaps: Optional[tuple[tuple[float, float], ...]] = None,
    source: str = "osc",
    region: Optional[tuple[float, float]] = None,
) -> Job:
    settings = project.settings
    ucs_ids = (settings.creator_id, settings.source_id) if settings.naming == "ucs" else None
    return Job(
        kind=preset.kind,
        name=name,
        project=str(project.root),
        preset_name=preset_name,
        preset_hash=preset_hash,
        preset=preset,
        delivery=preset.delivery.apply(project.settings.delivery),
        input=str(Path(input).resolve()) if input else None,
        gaps=gaps,
        region=region,
        source=source,
        ucs_ids=ucs_ids,
    )
