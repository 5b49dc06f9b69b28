"""A take's sidecar record, built in one place: everything that recalls how the take was made.

The record is plain JSON data; ``host.output.takes`` adds where the take lives (file, take
number, take index, job key) when it claims the take.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

import host
from host.jobs.job import Job


def take_record(
    job: Job,
    *,
    seed: int,
    model_id: str,
    model_revision: str,
    model_family: str,
    input_sha256: Optional[str],
    delivery: dict[str, Any],
    levels: dict[str, Any],
    duration: float,
    render_seconds: float,
    extra: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """The sidecar of one take of ``job``. ``delivery`` is what the file is (rate, bit depth or
    sample format, format, loudness target, ceiling, channels); ``levels`` what was measured."""
    p = job.preset
    return {
        "host_version": host.__version__,
        "kind": job.kind,
        "name": job.name,
        "prompt": p.prompt,
        "negative_prompt": p.negative_prompt,
        "seed": int(seed),
        "steps": p.steps,
        "guidance": p.guidance,
        "scheduler": p.scheduler,
        "strength": p.strength if job.kind == "restyle" else None,
        "gaps": None,
        "region": list(job.region) if job.region is not None else None,
        "duration": round(float(duration), 6),
        "model": {"id": model_id, "revision": model_revision, "family": model_family},
        "preset": {"name": job.preset_name, "hash": job.preset_hash, "settings": p.model_dump(mode="json")},
        "input": {"path": job.input, "sha256": input_sha256} if job.input else None,
        "delivery": delivery,
        "levels": levels,
        "source": job.source,
        "rendered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "render_seconds": round(float(render_seconds), 3),
        **(extra or {}),
    }
