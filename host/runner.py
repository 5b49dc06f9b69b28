"""From jobs to takes on disk: the engine renders, the chain and delivery finish, the files are written.

``Runner`` holds one warm model and renders many jobs. Compatible foley jobs share one batched
denoising call. Every job ends in an :class:`Outcome`; a bad job never stops the others.
Progress is reported per denoising step and a render can be cancelled between two steps.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

import host
from host.config.schema import Delivery
from host.engine import gaps as gapmath
from host.engine.foley import FoleyPipeline, FoleyTake
from host.engine.inpaint import InpaintPipeline
from host.engine.models import Model
from host.engine.restyle import RestylePipeline
from host.engine.steps import Cancelled
from host.errors import InputError
from host.finish.chain import apply_chain, build_chain
from host.finish.delivery import finish, resample
from host.intake.audio import MAX_STEM_BYTES, MAX_STEM_SECONDS, StemAudio, read_stem_confined
from host.jobs.job import Job
from host.output.files import file_sha256, write_audio_new
from host.output.takes import Take, claim_take, read_sidecar, release_take, take_folder, takes_for_key

log = logging.getLogger(__name__)

# (job, fraction of that job done, 0..1)
OnProgress = Callable[[Job, float], None]

SUBTYPE_BITS = {"PCM_S8": 16, "PCM_U8": 16, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 32}
# inpaint context: at least this much of the stem on each side of a gap
MIN_CONTEXT_SECONDS = 0.5


@dataclass
class Outcome:
    job: Job
    status: str  # rendered | cached | failed | cancelled
    files: list[Path] = field(default_factory=list)
    error: Optional[str] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("rendered", "cached")


@dataclass
class _Prepared:
    job: Job
    key: str
    folder: Path
    done: dict[int, Take]  # take index -> take already on disk
    todo: list[int]  # take indices still to render
    seeds: dict[int, int]  # take index -> seed
    stem: Optional[StemAudio] = None
    input_hash: Optional[str] = None
    _chain: Optional[object] = None

    def chain(self):
        """The preset's effects chain, built once per job (a VST3 loads once, not per take)."""
        if self._chain is None:
            self._chain = build_chain(list(self.job.preset.chain), where=f"preset {self.job.preset_name}", base_dir=Path(self.job.project))
        return self._chain
    unfinished: dict[int, Take] = field(default_factory=dict)  # take index -> claimed take whose audio is missing


class Runner:
    def __init__(
        self,
        model: Model,
        batch_size: int = 8,
        max_stem_seconds: float = MAX_STEM_SECONDS,
        max_stem_bytes: int = MAX_STEM_BYTES,
        roots: Optional[Sequence[Path]] = None,
    ):
        self.model = model
        self.roots = list(roots) if roots is not None else None  # where inputs may be read from; None: the job's project
        self.batch_size = max(1, batch_size)
        self.max_stem_seconds = max_stem_seconds
        self.max_stem_bytes = max_stem_bytes
        self.foley = FoleyPipeline(model)
        self.restyle = RestylePipeline(model)
        self.inpaint = InpaintPipeline(model)
        self.denoise_calls = 0  # batched denoising calls made, for batching checks and benchmarks

    # ------------------------------------------------------------------ entry points
    def run(
        self,
        jobs: Sequence[Job],
        on_progress: Optional[OnProgress] = None,
        cancel: Optional[threading.Event] = None,
        force: bool = False,
    ) -> list[Outcome]:
        """Render every job; compatible foley jobs are batched. Outcomes come back in job order."""
        outcomes: dict[int, Outcome] = {}
        groups: dict[tuple, list[int]] = {}
        for i, job in enumerate(jobs):
            group = job.batch_group()
            if group is None:
                outcomes[i] = self.run_one(job, on_progress, cancel, force)
            else:
                groups.setdefault(group, []).append(i)
        for members in groups.values():
            for i, outcome in zip(members, self.run_foley([jobs[i] for i in members], on_progress, cancel, force)):
                outcomes[i] = outcome
        return [outcomes[i] for i in range(len(jobs))]

    def run_one(self, job: Job, on_progress=None, cancel=None, force: bool = False) -> Outcome:
        if job.kind == "foley":
            return self.run_foley([job], on_progress, cancel, force)[0]
        started = time.monotonic()
        try:
            prep = self._prepare(job, force)
            if not prep.todo:
                return Outcome(job, "cached", self._files(prep), seconds=time.monotonic() - started)
            step = self._stepper([job], on_progress, cancel)
            if job.kind == "restyle":
                self._render_restyle(prep, step)
            else:
                self._render_inpaint(prep, step)
            return Outcome(job, "rendered", self._files(prep), seconds=time.monotonic() - started)
        except Cancelled:
            return Outcome(job, "cancelled", seconds=time.monotonic() - started)
        except InputError as err:
            return Outcome(job, "failed", error=str(err), seconds=time.monotonic() - started)
        except Exception as err:  # noqa: BLE001 - one job's crash must not take the others down
            log.exception("job %s failed", job.name)
            return Outcome(job, "failed", error=f"{job.name}: internal error: {type(err).__name__}: {err}", seconds=time.monotonic() - started)

    def run_foley(self, jobs: Sequence[Job], on_progress=None, cancel=None, force: bool = False) -> list[Outcome]:
        """Foley jobs that share a batch group, their missing takes rendered in batched calls."""
        started = time.monotonic()
        outcomes: dict[int, Outcome] = {}
        preps: dict[int, _Prepared] = {}
        for i, job in enumerate(jobs):
            try:
                prep = self._prepare(job, force)
            except InputError as err:
                outcomes[i] = Outcome(job, "failed", error=str(err))
                continue
            if prep.todo:
                preps[i] = prep
            else:
                outcomes[i] = Outcome(job, "cached", self._files(prep))
        work = [(i, index) for i, prep in preps.items() for index in prep.todo]
        failed: dict[int, str] = {}
        cancelled = False
        for start in range(0, len(work), self.batch_size):
            chunk = [(i, index) for i, index in work[start : start + self.batch_size] if i not in failed]
            if not chunk or cancelled:
                continue
            chunk_jobs = [jobs[i] for i in dict.fromkeys(i for i, _ in chunk)]
            first = jobs[chunk[0][0]].preset
            try:
                takes = [
                    FoleyTake(jobs[i].preset.prompt, jobs[i].preset.negative_prompt, preps[i].seeds[index]) for i, index in chunk
                ]
                self.denoise_calls += 1
                t0 = time.monotonic()
                waves = self.foley(
                    takes, first.duration, first.steps, first.guidance, first.scheduler,
                    on_step=self._stepper(chunk_jobs, on_progress, cancel, share=(start, len(work), len(chunk))),
                )
                seconds = (time.monotonic() - t0) / len(chunk)
            except Cancelled:
                cancelled = True
                continue
            except Exception as err:  # noqa: BLE001
                log.exception("foley batch failed")
                for i, _ in chunk:
                    failed[i] = f"{jobs[i].name}: internal error: {type(err).__name__}: {err}"
                continue
            for (i, index), wave in zip(chunk, waves):
                if i in failed:
                    continue
                try:
                    self._deliver_take(preps[i], index, wave, self.model.sample_rate, seconds, {"duration": first.duration})
                except InputError as err:
                    failed[i] = str(err)
                except Exception as err:  # noqa: BLE001
                    log.exception("writing a take of %s failed", jobs[i].name)
                    failed[i] = f"{jobs[i].name}: internal error: {type(err).__name__}: {err}"
        elapsed = time.monotonic() - started
        for i, prep in preps.items():
            if i in failed:
                outcomes[i] = Outcome(prep.job, "failed", error=failed[i], seconds=elapsed)
            elif cancelled and len(self._files(prep)) < prep.job.preset.takes:
                outcomes[i] = Outcome(prep.job, "cancelled", seconds=elapsed)
            else:
                outcomes[i] = Outcome(prep.job, "rendered", self._files(prep), seconds=elapsed)
        return [outcomes[i] for i in range(len(jobs))]

    # ------------------------------------------------------------------ preparing a job
    def _prepare(self, job: Job, force: bool) -> _Prepared:
        stem = input_hash = None
        if job.kind != "foley":
            if not job.input:
                raise InputError(job.name, f"a {job.kind} job needs an input stem")
            roots = self.roots if self.roots is not None else [Path(job.project)]
            stem, input_hash = read_stem_confined(Path(job.input), roots, self.max_stem_seconds, self.max_stem_bytes)
        key = job.key(self.model.id, self.model.revision, input_hash)
        folder = take_folder(Path(job.project), job.kind, job.name)
        existing = {} if force else takes_for_key(folder, job.name, key)
        done = {i: t for i, t in existing.items() if t.complete and i < job.preset.takes}
        todo = [i for i in range(job.preset.takes) if i not in done]
        base = job.preset.seed if job.preset.seed is not None else random.randrange(2**31)
        seeds = {i: base + i for i in todo}
        for i in todo:  # a take claimed before a crash keeps the seed its sidecar recorded
            if i in existing:
                recorded = _sidecar_seed(existing[i].sidecar)
                seeds[i] = recorded if recorded is not None else seeds[i]
        unfinished = {i: existing[i] for i in todo if i in existing}
        return _Prepared(job, key, folder, done, todo, seeds, stem, input_hash, unfinished=unfinished)

    def _files(self, prep: _Prepared) -> list[Path]:
        takes = takes_for_key(prep.folder, prep.job.name, prep.key)
        return [takes[i].audio for i in sorted(takes) if takes[i].complete]

    def _stepper(self, jobs, on_progress, cancel, share=(0, 1, 1)):
        """on_step for a pipeline: checks for cancellation and reports each job's fraction.
        ``share`` = (takes before this call, takes in all calls, takes in this call)."""
        before, total, size = share

        def on_step(done: int, steps: int) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            if on_progress is not None:
                fraction = (before + size * done / max(1, steps)) / max(1, total)
                for job in jobs:
                    on_progress(job, min(1.0, fraction))

        return on_step

    # ------------------------------------------------------------------ the three modes
    def _render_restyle(self, prep: _Prepared, on_step) -> None:
        job, stem = prep.job, prep.stem
        p = job.preset
        t0 = time.monotonic()
        waves = self.restyle(
            stem.audio, stem.rate, p.prompt, p.negative_prompt, [prep.seeds[i] for i in prep.todo],
            p.strength, p.steps, p.guidance, p.scheduler, on_step=on_step,
        )
        seconds = (time.monotonic() - t0) / len(prep.todo)
        out_len = int(round(stem.audio.shape[1] * job.delivery.sample_rate / stem.rate))
        for index, wave in zip(prep.todo, waves):
            self._deliver_take(prep, index, wave, self.model.sample_rate, seconds, {"strength": p.strength}, exact_length=out_len)

    def _render_inpaint(self, prep: _Prepared, on_step) -> None:
        job, stem = prep.job, prep.stem
        p = job.preset
        rate, n = stem.rate, stem.audio.shape[1]
        if job.gaps is None:
            found = gapmath.find_silent_gaps(stem.audio, rate)
            if not found:
                raise InputError(job.input, "no gaps given and no run of digital silence (>= 100 ms at or below -90 dBFS) found inside the file")
        else:
            found = [gapmath.Gap(a, b) for a, b in job.gaps]
        max_gap = self.model.window_seconds - 2 * MIN_CONTEXT_SECONDS
        try:
            gap_list = gapmath.check_gaps(found, n / rate, max_gap)
        except ValueError as err:
            raise InputError(f"{job.input} gaps", str(err)) from None
        board = prep.chain()
        seeds = [prep.seeds[i] for i in prep.todo]
        results = {i: stem.audio.copy() for i in prep.todo}
        t0 = time.monotonic()
        for k, gap in enumerate(gap_list):
            w0, w1 = gapmath.context_window(gap, n / rate, self.model.window_seconds)
            a, b = int(round(w0 * rate)), min(n, int(round(w1 * rate)))
            g0, g1 = gap.samples(rate)

            def gap_step(done, steps, k=k):
                on_step(k * steps + done, steps * len(gap_list))

            fills = self.inpaint(
                stem.audio[:, a:b], rate, (gap.start - a / rate, gap.end - a / rate), p.prompt, p.negative_prompt,
                [s + 1000 * k for s in seeds], p.steps, p.guidance, p.scheduler, on_step=gap_step,
            )
            for index, fill in zip(prep.todo, fills):
                fill = _fit(resample(fill[None].astype(np.float32), self.model.sample_rate, rate), b - a)
                fill = apply_chain(board, np.repeat(fill, stem.audio.shape[0], axis=0), rate)
                results[index][:, a:b] = gapmath.splice(results[index][:, a:b], fill.astype(np.float64), g0 - a, g1 - a, rate)
        seconds = (time.monotonic() - t0) / len(prep.todo)
        bits = SUBTYPE_BITS.get(stem.subtype, job.delivery.bit_depth)
        fmt = "flac" if stem.format == "FLAC" and bits != 32 else "wav"
        same_as_input = Delivery(sample_rate=rate, bit_depth=bits, format=fmt, loudness=None, true_peak=job.delivery.true_peak)
        extra = {"gaps": [[g.start, g.end] for g in gap_list], "delivered_as_input": True}
        for index in prep.todo:
            self._write(prep, index, results[index], rate, same_as_input, seconds, extra, report={"loudness_normalised": False})

    # ------------------------------------------------------------------ finishing and writing
    def _deliver_take(self, prep: _Prepared, index: int, wave: np.ndarray, rate: int, seconds: float, extra: dict, exact_length: Optional[int] = None) -> None:
        """Project rate (high-quality resampler), then the preset's chain, then loudness and ceiling."""
        job = prep.job
        d = job.delivery
        audio = resample(np.atleast_2d(wave).astype(np.float32), rate, d.sample_rate)
        if exact_length is not None:
            audio = _fit(audio, exact_length)
        audio = apply_chain(prep.chain(), audio, d.sample_rate)
        audio, out_rate, report = finish(audio, d.sample_rate, d)
        self._write(prep, index, audio, out_rate, d, seconds, extra, report)

    def _write(self, prep: _Prepared, index: int, audio: np.ndarray, rate: int, d: Delivery, seconds: float, extra: dict, report: dict) -> None:
        job, p = prep.job, prep.job.preset
        record = {
            "host_version": host.__version__,
            "job_key": prep.key,
            "kind": job.kind,
            "name": job.name,
            "prompt": p.prompt,
            "negative_prompt": p.negative_prompt,
            "seed": prep.seeds[index],
            "steps": p.steps,
            "guidance": p.guidance,
            "scheduler": p.scheduler,
            "strength": p.strength if job.kind == "restyle" else None,
            "gaps": None,
            "duration": round(audio.shape[-1] / rate, 6),
            "model": {"id": self.model.id, "revision": self.model.revision},
            "preset": {"name": job.preset_name, "hash": job.preset_hash, "settings": p.model_dump(mode="json")},
            "input": {"path": job.input, "sha256": prep.input_hash} if job.input else None,
            "delivery": {**d.model_dump(mode="json"), "channels": int(np.atleast_2d(audio).shape[0])},
            "levels": report,
            "source": job.source,
            "rendered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "render_seconds": round(seconds, 3),
            **extra,
        }
        take = claim_take(prep.folder, job.name, index, d.format, record, unfinished=prep.unfinished.get(index))
        try:
            write_audio_new(take.audio, np.atleast_2d(audio), rate, d.bit_depth, d.format)
        except BaseException:
            release_take(take)
            raise


def _fit(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad the last axis to exactly ``length`` samples."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    pad = np.zeros(audio.shape[:-1] + (length - audio.shape[-1],), dtype=audio.dtype)
    return np.concatenate([audio, pad], axis=-1)


def _sidecar_seed(path: Path) -> Optional[int]:
    data = read_sidecar(path)
    return data.get("seed") if data else None


def cached_takes(job: Job, model_id: str, model_revision: str) -> int:
    """How many of the job's takes are already on disk for this exact model and input."""
    input_hash = file_sha256(Path(job.input)) if job.input and Path(job.input).is_file() else None
    if job.input and input_hash is None:
        raise InputError(job.input, "file not found")
    key = job.key(model_id, model_revision, input_hash)
    found = takes_for_key(take_folder(Path(job.project), job.kind, job.name), job.name, key)
    return sum(1 for i, t in found.items() if t.complete and i < job.preset.takes)
