"""Recall: a take rendered again from its sidecar alone.

On the same device, model revision and library versions (and with the same torch thread count,
which the sidecar also records and recall sets), the recalled audio is bit-identical to the
original: same seed, same sampler, same input samples, and for a take that was rendered in a
batch the same batch again (its batch-mates' prompts and seeds, in their order), because a
batched denoising call sums in another order than a single one (about 1e-6 apart).

1. read the sidecar: the job as it was (kind, name, preset settings with the chain, delivery,
   input, region, gaps), the seed, the batch, the environment it was rendered in;
2. compare with now: model revision, library versions, device, the input's content; each
   difference is said, and without ``anyway`` nothing is rendered;
3. load the model (or use the one given) on the recorded device, with the recorded threads;
4. plan the take again: the input read now, region and gaps as recorded;
5. render it, alone or with its batch-mates in their order;
6. finish it through the same signal path (``finish_take``) and write it with the original's
   metadata under a new name, never over a file;
7. compare it with the original file: the largest sample difference.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import soundfile as sf
from pydantic import ValidationError

from host.config.presets import Preset, validation_error
from host.config.schema import Delivery
from host.errors import InputError
from host.finish.chain import build_chain
from host.finish.take import Finished, finish_take
from host.jobs.job import Job
from host.output.files import file_sha256, write_json_new
from host.output.sidecar import write_take
from host.output.takes import REJECTED, RENDERS
from host.plan.takes import Limits, job_input, plan_recall, render_work
from host.render.backend import BatchSlot, environment, library_versions

RECALL_SUFFIX = "_recall"


@dataclass(frozen=True)
class RecallSpec:
    """What a sidecar says about how its take was made."""

    sidecar: Path
    record: dict
    job: Job
    seed: int
    take_index: int
    number: int  # the take number in the file name
    model_id: str
    model_revision: str
    batch: Optional[BatchSlot]
    environment: Optional[dict]  # device, threads, versions; None in sidecars older than recall

    @property
    def original(self) -> Path:
        return self.sidecar.parent / str(self.record.get("file", ""))


@dataclass
class RecallReport:
    spec: RecallSpec
    differences: list[str]  # what differs from when the take was rendered (empty: nothing)
    path: Optional[Path] = None  # the recalled file, when one was written
    sidecar: Optional[Path] = None
    original: Optional[Path] = None  # the original file, when it was there to compare with
    max_difference: Optional[float] = None  # the largest |sample difference| (full scale = 1.0)
    length_difference: int = 0  # frames the recalled file has more (or fewer) than the original
    notes: list[str] = field(default_factory=list)

    @property
    def rendered(self) -> bool:
        return self.path is not None

    @property
    def identical(self) -> Optional[bool]:
        if self.max_difference is None:
            return None
        return self.max_difference == 0.0 and self.length_difference == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sidecar": str(self.spec.sidecar), "differences": self.differences, "rendered": self.rendered,
            "path": str(self.path) if self.path else None, "original": str(self.original) if self.original else None,
            "max_difference": self.max_difference, "length_difference": self.length_difference,
            "identical": self.identical, "notes": self.notes,
        }


# ---------------------------------------------------------------------- 1. the sidecar
def read_spec(sidecar: Path) -> RecallSpec:
    """A sidecar as a recall spec. Raises InputError naming the sidecar and the field."""
    sidecar = Path(sidecar)
    where = str(sidecar)
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(where, f"cannot read: {err.strerror or err}") from None
    except ValueError as err:
        raise InputError(where, f"not a JSON sidecar ({err})") from None
    if not isinstance(record, dict):
        raise InputError(where, "not an audiohost take sidecar")

    def need(key: str, kind: type | tuple, source: dict = record, prefix: str = "") -> Any:
        value = source.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InputError(f"{where} {prefix}{key}", "missing or malformed; this file cannot be recalled")
        return value

    kind = need("kind", str)
    if kind not in ("foley", "restyle", "inpaint"):
        raise InputError(f"{where} kind", f"unknown kind '{kind}'")
    model = need("model", dict)
    preset_info = need("preset", dict)
    settings = need("settings", dict, preset_info, "preset.")
    try:
        preset = Preset.model_validate(settings)
    except ValidationError as exc:
        raise validation_error(f"{where} preset.settings", exc) from None
    delivery = _delivery(record, kind, where)
    source = record.get("input") if isinstance(record.get("input"), dict) else None
    if kind != "foley" and not (source and isinstance(source.get("path"), str)):
        raise InputError(f"{where} input", f"a {kind} take needs its input's path; this file cannot be recalled")
    gaps = record.get("gaps")
    region = record.get("region")
    ucs = record.get("ucs") if isinstance(record.get("ucs"), dict) else None
    try:
        job = Job(
            kind=kind,
            name=need("name", str),
            project=str(_project_of(sidecar)),
            preset_name=str(preset_info.get("name") or "recalled"),
            preset_hash=str(preset_info.get("hash") or ""),
            preset=preset,
            delivery=delivery,
            input=source["path"] if source else None,
            input_sha256=source.get("sha256") if source else None,
            region=tuple(region) if region is not None else None,
            gaps=tuple(tuple(g) for g in gaps) if kind == "inpaint" and gaps else None,
            source="recall",
            ucs_ids=(ucs["creator_id"], ucs["source_id"]) if ucs and ucs.get("creator_id") and ucs.get("source_id") else None,
        )
    except (ValidationError, TypeError, ValueError) as exc:
        raise InputError(f"{where}", f"the recorded job is malformed ({type(exc).__name__}); this file cannot be recalled") from None
    batch = None
    if record.get("batch") is not None:
        try:
            batch = BatchSlot.from_dict(record["batch"])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{where} batch", f"malformed ({err})") from None
    env = record.get("environment") if isinstance(record.get("environment"), dict) else None
    return RecallSpec(
        sidecar=sidecar.resolve(),
        record=record,
        job=job,
        seed=need("seed", int),
        take_index=need("take_index", int) if "take_index" in record else 0,
        number=record["take"] if isinstance(record.get("take"), int) else 0,
        model_id=need("id", str, model, "model."),
        model_revision=str(model.get("revision") or "unknown"),
        batch=batch,
        environment=env,
    )


def _delivery(record: dict, kind: str, where: str) -> Delivery:
    """The delivery the job was given: recorded as such since recall exists; before, the file's
    own description holds it for foley and restyle, and an inpainted take only used its ceiling."""
    given = record.get("delivery_settings")
    described = record.get("delivery") if isinstance(record.get("delivery"), dict) else {}
    try:
        if isinstance(given, dict):
            return Delivery.model_validate(given)
        if kind == "inpaint":
            return Delivery(true_peak=described.get("true_peak", -1.0))
        return Delivery.model_validate({k: v for k, v in described.items() if k in Delivery.model_fields})
    except ValidationError as exc:
        raise validation_error(f"{where} delivery", exc) from None


def _project_of(sidecar: Path) -> Path:
    """The project a sidecar belongs to: above renders/ (or renders/.rejected/); chains name
    their VST3 plug-ins relative to it. A sidecar kept elsewhere: its own folder."""
    folder = sidecar.resolve().parent
    for up in (folder.parent.parent, folder.parent.parent.parent):
        if up.name == RENDERS:
            return up.parent
        if up.name == REJECTED and up.parent.name == RENDERS:
            return up.parent.parent
    return folder


# ---------------------------------------------------------------------- 2. what differs
def differences(spec: RecallSpec, model_revision: str, device: str) -> list[str]:
    """One line per thing that differs from when the take was rendered (empty: nothing does)."""
    out = []
    if model_revision != spec.model_revision:
        now = "is not available here" if model_revision == "unknown" else f"is {model_revision} here"
        out.append(f"model revision: the take was rendered with {spec.model_id} at {spec.model_revision}; it {now}")
    env = spec.environment
    if env is None:
        out.append("environment: the sidecar does not record the device and library versions it was rendered with (it predates recall)")
    else:
        if str(env.get("device")) != device:
            out.append(f"device: rendered on {env.get('device')}, would render on {device}")
        recorded = env.get("versions") if isinstance(env.get("versions"), dict) else {}
        now = library_versions()
        for name in sorted(set(recorded) | set(now)):
            if recorded.get(name) != now.get(name):
                out.append(f"{name}: {recorded.get(name, 'not recorded')} then, {now.get(name, 'not installed')} now")
    job = spec.job
    if job.input:
        path = Path(job.input)
        if not path.is_file():
            raise InputError(job.input, "the take's input is gone; nothing to recall it from")
        digest = file_sha256(path)
        if job.input_sha256 and digest != job.input_sha256:
            out.append(f"input: {path.name} has changed since (sha256 {job.input_sha256[:12]}... then, {digest[:12]}... now)")
    return out


# ---------------------------------------------------------------------- 3-7. render, write, compare
def recall(
    sidecar: Path,
    *,
    to: Optional[Path] = None,
    anyway: bool = False,
    device: Optional[str] = None,
    model=None,
) -> RecallReport:
    """Recall the take of ``sidecar``: see the module docstring. ``model``: a loaded model to use
    (else the sidecar's is loaded). Raises InputError when the take cannot be rendered at all
    (sidecar unreadable, input gone, model not here)."""
    from host.engine.models import fingerprint, pick_device

    # 1. the sidecar
    spec = read_spec(sidecar)
    env = spec.environment or {}
    threads = int(env.get("threads") or 0)

    # 2. what differs
    if model is not None:
        revision, device_now = model.revision, str(model.device)
        if model.id != spec.model_id:
            raise InputError(str(sidecar), f"rendered with {spec.model_id}, the loaded model is {model.id}")
    else:
        revision = fingerprint(spec.model_id)[1]
        try:
            device_now = str(pick_device(device or env.get("device") or None))
        except InputError:
            if device:
                raise
            device_now = str(pick_device(None))  # the recorded device is not here: said below
    report = RecallReport(spec, differences(spec, revision, device_now))
    if report.differences and not anyway:
        return report

    # 3. the model, with the recorded threads
    if model is None:
        from host.engine.models import load_model

        model = load_model(spec.model_id, device=device_now, threads=threads or None)
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        done = render_take(spec, model)
    finally:
        torch.set_num_threads(before)

    # 6. written beside the original (or into ``to``), never over a file
    report.path = write_recall(spec, done, to)

    # 7. against the original
    original = spec.original
    if original.is_file():
        report.original = original
        report.max_difference, report.length_difference, channels = compare(original, report.path)
        if channels:
            report.notes.append(f"the recalled take has {channels:+d} channels against the original; compared over the common ones")
    else:
        report.notes.append(f"the original {original.name} is not there to compare with")
    report.sidecar = write_recall_sidecar(spec, report, model)
    return report


def render_take(spec: RecallSpec, model) -> Finished:
    """Steps 4 and 5 (and the finishing of 6): the take as it was rendered, finished."""
    from host.render.local import LocalBackend, model_info

    info = model_info(model)
    job = spec.job
    # 4. plan the take again
    plan = plan_recall(job, info, spec.take_index, spec.seed)
    # 5. render it, with its batch-mates when it had some
    work = render_work(plan, 0, info)
    position = 0
    works = [work]
    if spec.batch is not None:
        slot = spec.batch
        mine = slot.takes[slot.position]
        if mine != (job.preset.prompt, job.preset.negative_prompt, spec.seed):
            raise InputError(f"{spec.sidecar} batch", "does not hold this take at its position; the sidecar is inconsistent")
        position = slot.position
        if job.kind == "foley":  # batch-mates may be other cues: one work each, in the batch's order
            works = [dataclasses.replace(work, ref=i, prompt=p, negative_prompt=n, seeds=(s,)) for i, (p, n, s) in enumerate(slot.takes)]
        else:  # every seed of one stem went through one call
            works = [dataclasses.replace(work, seeds=tuple(s for _, _, s in slot.takes))]
    backend = LocalBackend(model, batch_size=max(1, sum(len(w.seeds) for w in works)))
    results = backend.render(works)
    for result in results:
        if result.status != "rendered":
            raise InputError(str(spec.sidecar), result.error or f"the render {result.status}")
    if job.kind == "foley" and spec.batch is not None:
        wave = results[position].waves[0]
    else:
        wave = results[0].waves[position]
    board = build_chain(list(job.preset.chain), where=f"preset {job.preset_name}", base_dir=Path(job.project))
    return finish_take(plan, wave, info.sample_rate, board)


def write_recall(spec: RecallSpec, done: Finished, to: Optional[Path]) -> Path:
    """The recalled take as a new file: ``<original>_recall.<ext>`` beside the original, or the
    original's name in ``to`` (``_recall``, then ``_recall-2``, ... when taken). Never overwrites.
    It carries the original's metadata (its take id and date; the levels measured now) and, for
    an inpainted take, the input's chunks."""
    stem = spec.original.stem if spec.record.get("file") else f"{spec.job.name}_t{spec.number:02d}"
    folder = Path(to) if to is not None else spec.sidecar.parent
    folder.mkdir(parents=True, exist_ok=True)
    ext = done.format
    names = ([f"{stem}.{ext}"] if to is not None else []) + [f"{stem}{RECALL_SUFFIX}.{ext}"] + [f"{stem}{RECALL_SUFFIX}-{n}.{ext}" for n in range(2, 1000)]
    record = {**spec.record, "levels": done.levels}
    if not record.get("take_id"):
        record["take_id"] = uuid.uuid4().hex  # a sidecar older than take ids
    carried = job_input(spec.job, Limits())[2] if spec.job.kind == "inpaint" else None
    for name in names:
        path = folder / name
        if path.exists() or path.with_suffix(".json").exists():
            continue
        try:
            write_take(path, done, record, spec.number, carried)
        except FileExistsError:
            continue
        return path
    raise InputError(str(folder), f"no free name for the recalled take of {stem} (999 recalls there already)")


def write_recall_sidecar(spec: RecallSpec, report: RecallReport, model) -> Optional[Path]:
    """Beside the recalled file: the original's record (without its take index and job key, so it
    never counts as a take of the job) and what recall found."""
    from host.render.local import model_info

    assert report.path is not None
    record = {k: v for k, v in spec.record.items() if k not in ("job_key", "take_index", "rejected")}
    record["file"] = report.path.name
    record["recall"] = {
        "of": str(spec.original), "sidecar": str(spec.sidecar), "differences": report.differences,
        "environment": environment(model_info(model)), "max_difference": report.max_difference,
        "length_difference": report.length_difference, "identical": report.identical, "notes": report.notes,
    }
    sidecar = report.path.with_suffix(".json")
    try:
        write_json_new(sidecar, record)
    except FileExistsError:
        return None
    return sidecar


def compare(original: Path, recalled: Path) -> tuple[float, int, int]:
    """(the largest |difference| between the two files' samples, full scale 1.0; how many frames
    and channels the recalled file has more than the original). Over their common part."""
    a, _ = sf.read(str(original), dtype="float64", always_2d=True)
    b, _ = sf.read(str(recalled), dtype="float64", always_2d=True)
    n, c = min(len(a), len(b)), min(a.shape[1], b.shape[1])
    diff = float(np.max(np.abs(a[:n, :c] - b[:n, :c]))) if n and c else 0.0
    return diff, len(b) - len(a), b.shape[1] - a.shape[1]


__all__ = ["RecallReport", "RecallSpec", "compare", "differences", "read_spec", "recall", "render_take"]
