"""A take's sidecar record, built in one place: everything that recalls how the take was made,
and the metadata written inside the take's file, derived from that record (so the two agree).

The record is plain JSON data; ``host.output.takes`` adds where the take lives (file, take
number, take index, job key) when it claims the take.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import host
from host.jobs.job import Job
from host.output.files import write_audio_new
from host.output.metadata import Carried, TakeMetadata, coding_history_line

if TYPE_CHECKING:
    from host.finish.take import Finished

# the sample formats written as floating point (the rest are integer PCM)
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


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
    take_id: Optional[str] = None,
    time_reference: int = 0,
    batch: Optional[dict[str, Any]] = None,
    environment: Optional[dict[str, Any]] = None,
    naming_note: Optional[str] = None,
    rendered_at: Optional[datetime] = None,
) -> dict[str, Any]:
    """The sidecar of one take of ``job``. ``delivery`` is what the file is (rate, bit depth or
    sample format, format, loudness target, ceiling, channels); ``levels`` what was measured.

    ``take_id``: the take's unique id (bext OriginatorReference, iXML FILE_UID); ``time_reference``:
    where the take belongs on a timeline, in samples since midnight at the take's rate (bext);
    ``batch``: the denoising call the take was rendered in, if it held other takes
    (:class:`host.render.backend.BatchSlot`), and ``environment`` the device, threads and
    library versions it was rendered with: recall needs both to render it again bit for bit."""
    p = job.preset
    when = rendered_at or datetime.now(timezone.utc)
    record = {
        "host_version": host.__version__,
        "kind": job.kind,
        "name": job.name,
        "project": Path(job.project).name,
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
        "delivery_settings": job.delivery.model_dump(mode="json"),
        "levels": levels,
        "source": job.source,
        "take_id": take_id,
        "time_reference": int(time_reference),
        "batch": batch,
        "environment": environment,
        "rendered_at": when.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "render_seconds": round(float(render_seconds), 3),
        **(extra or {}),
    }
    if job.ucs_ids is not None:
        record["ucs"] = {"cat_id": p.ucs, "creator_id": job.ucs_ids[0], "source_id": job.ucs_ids[1]}
    if naming_note:
        record["naming_note"] = naming_note
    return record


def take_metadata(record: dict[str, Any], number: int) -> TakeMetadata:
    """What take number ``number`` says about itself inside its file (bext, iXML, FLAC comments),
    all of it from its sidecar ``record``. Raises KeyError/ValueError for a record that lacks a
    field (one written by an older audiohost has no take id)."""
    delivery = record["delivery"]
    rate, channels = int(delivery["sample_rate"]), int(delivery["channels"])
    subtype = delivery.get("subtype")
    bits = int(delivery["bit_depth"])
    floats = subtype in FLOAT_SUBTYPES if subtype else bits == 32
    model = record["model"]
    preset = record["preset"]
    chain = [_effect_label(e) for e in (preset.get("settings") or {}).get("chain") or []]
    text = f"audiohost {record.get('host_version', host.__version__)}; {record['kind']} by {model['id']}@{model['revision']}; preset {preset['name']}; chain {' '.join(chain) if chain else 'none'}"
    levels = record.get("levels") or {}
    settings: dict[str, Any] = {
        "kind": record["kind"],
        "seed": record["seed"],
        "steps": record["steps"],
        "guidance": record["guidance"],
        "scheduler": record["scheduler"],
        "negative_prompt": record["negative_prompt"],
        "model": model["id"],
        "model_revision": model["revision"],
        "preset": preset["name"],
        "preset_hash": preset.get("hash"),
    }
    for optional in ("strength", "region", "gaps"):
        if record.get(optional) is not None:
            settings[optional] = record[optional]
    if record["kind"] == "foley":
        settings["duration"] = record.get("duration")
    source = record.get("input") or {}
    return TakeMetadata(
        take_id=record["take_id"],
        prompt=record["prompt"],
        project=record.get("project") or "",
        scene=record["name"],
        take=int(number),
        origination=datetime.fromisoformat(record["rendered_at"]),
        sample_rate=rate,
        channels=channels,
        coding_history=coding_history_line(rate, bits, channels, text, float_samples=floats),
        time_reference=int(record.get("time_reference") or 0),
        settings=settings,
        loudness=levels.get("loudness_out"),
        true_peak=levels.get("true_peak_out"),
        parent=Path(source["path"]).name if source.get("path") else None,
    )


def write_take(path: Path, done: "Finished", record: dict[str, Any], number: int, carried: Optional[Carried] = None) -> None:
    """A finished take's audio as a new file at ``path``, with the metadata its sidecar ``record``
    implies (bext and iXML in WAV, Vorbis comments in FLAC; AIFF carries none) and, for an
    inpainted take, every chunk ``carried`` from its input. Never overwrites (FileExistsError)."""
    embeds = done.format in ("wav", "flac")
    write_audio_new(
        path, done.audio, done.rate, done.bit_depth, done.format, done.subtype,
        metadata=take_metadata(record, number) if embeds else None, carried=carried if embeds else None,
        chunks=done.chunks if done.format == "wav" else (),  # a loop's smpl chunk
    )


def _effect_label(effect: Any) -> str:
    if not isinstance(effect, dict):
        return "?"
    if effect.get("plugin"):
        return str(effect["plugin"])
    return Path(str(effect.get("vst3") or "?")).stem


__all__ = ["take_metadata", "take_record", "write_take"]
