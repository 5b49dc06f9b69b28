"""Everything a project asks for right now: its cue sheet and the stems waiting in its drop folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from host.config.presets import PresetEntry, preset_library
from host.config.project import Project, load_cues, load_project
from host.errors import InputError
from host.finish.chain import check_chain
from host.intake.drops import scan_drops
from host.jobs.build import job_from_cue, job_from_stem
from host.jobs.job import Job


@dataclass
class ProjectPlan:
    project: Project
    presets: dict[str, PresetEntry]
    jobs: list[Job] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)  # bad presets, cues or stems, one line each


def plan_project(root: Path) -> ProjectPlan:
    """Jobs for every cue and every waiting stem; a bad one is a problem, the rest still plan.
    Raises InputError only when the project itself cannot be read."""
    project = load_project(Path(root))
    presets, problems = preset_library(project.root, check_chain=check_chain)  # every chain checked before any render
    plan = ProjectPlan(project, presets, problems=list(problems))
    cues, cue_problems = load_cues(project, presets, check_chain=check_chain)
    plan.problems += cue_problems
    plan.jobs += [job_from_cue(project, cue) for cue in cues]
    stems, stem_problems = scan_drops(project, presets)
    plan.problems += stem_problems
    plan.jobs += [job_from_stem(project, stem) for stem in stems]
    return plan
