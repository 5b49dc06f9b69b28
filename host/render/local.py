"""The in-process render backend: one warm model on this machine's device.

Foley works with the same batch group share batched denoising calls (up to ``batch_size``
takes a call, across works); restyle, inpaint and superres render one work at a time. Progress is reported
per work and per denoising step; a cancelled work stops within one step while its batch-mates
go on (its takes are computed to the end of the call but never handed back).
"""

from __future__ import annotations

import logging
import time
from typing import Hashable, Optional, Sequence

from host.engine.foley import FoleyPipeline, FoleyTake
from host.engine.inpaint import InpaintPipeline
from host.engine.models import Model
from host.engine.restyle import RestylePipeline
from host.engine.steps import Cancelled
from host.engine.superres import SuperresPipeline
from host.errors import InputError
from host.render.backend import BatchSlot, IsCancelled, ModelInfo, Progress, Rendered, RenderWork

log = logging.getLogger(__name__)


def model_info(model: Model) -> ModelInfo:
    return ModelInfo(
        id=model.id,
        revision=model.revision,
        family=getattr(model, "family", "audioldm"),
        sample_rate=model.sample_rate,
        window_seconds=model.window_seconds,
        device=str(model.device),
        threads=_torch_threads(),
    )


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


class LocalBackend:
    def __init__(self, model: Model, batch_size: int = 8):
        self.model = model
        self.info = model_info(model)
        self.batch_size = max(1, int(batch_size))
        self.denoise_calls = 0
        self.foley = FoleyPipeline(model)
        self.restyle = RestylePipeline(model)
        self.inpaint = InpaintPipeline(model)
        self.superres = SuperresPipeline(model)

    def render(self, works: Sequence[RenderWork], progress: Optional[Progress] = None, cancelled: Optional[IsCancelled] = None) -> list[Rendered]:
        results: dict[int, Rendered] = {}
        groups: dict[tuple, list[int]] = {}
        for i, work in enumerate(works):
            group = work.batch_group()
            if group is None:
                results[i] = self._one(work, progress, cancelled)
            else:
                groups.setdefault(group, []).append(i)
        for members in groups.values():
            for i, rendered in zip(members, self._foley([works[i] for i in members], progress, cancelled)):
                results[i] = rendered
        return [results[i] for i in range(len(works))]

    # ------------------------------------------------------------------ foley, batched
    def _foley(self, works: Sequence[RenderWork], progress, cancelled) -> list[Rendered]:
        """Every take of these works (one batch group) in calls of up to batch_size takes."""
        out = {w.ref: Rendered(w.ref, waves=[None] * len(w.seeds), batches=[None] * len(w.seeds)) for w in works}
        slots = [(w, k) for w in works for k in range(len(w.seeds))]
        first = works[0]
        done_takes = 0
        for start in range(0, len(slots), self.batch_size):
            chunk = [(w, k) for w, k in slots[start : start + self.batch_size] if out[w.ref].status == "rendered"]
            refs = list(dict.fromkeys(w.ref for w, _ in chunk))
            if not chunk:
                continue
            if cancelled is not None:  # cancelled before its call began: nothing to compute
                for ref in refs:
                    if cancelled(ref):
                        out[ref].status = "cancelled"
                chunk = [(w, k) for w, k in chunk if out[w.ref].status == "rendered"]
                refs = [r for r in refs if out[r].status == "rendered"]
                if not chunk:
                    continue
            share = (done_takes, len(slots), len(chunk))
            on_step = self._stepper(refs, out, progress, cancelled, share)
            try:
                self.denoise_calls += 1
                t0 = time.monotonic()
                waves = self.foley(
                    [FoleyTake(w.prompt, w.negative_prompt, w.seeds[k]) for w, k in chunk],
                    first.duration, first.steps, first.guidance, first.scheduler, on_step=on_step, loop=first.loop,
                )
                per_take = (time.monotonic() - t0) / len(chunk)
            except Cancelled:
                continue  # every work in the chunk is marked cancelled already
            except Exception as err:  # noqa: BLE001 - a crash fails the works in this call, not the backend
                log.exception("foley batch failed")
                for ref in refs:
                    out[ref].status, out[ref].error = "failed", _internal(err)
                continue
            done_takes += len(chunk)
            members = tuple((w.prompt, w.negative_prompt, int(w.seeds[k])) for w, k in chunk)
            for position, ((w, k), wave) in enumerate(zip(chunk, waves)):
                r = out[w.ref]
                r.waves[k] = wave
                r.batches[k] = BatchSlot(members, position) if len(members) > 1 else None
                r.seconds += per_take
        for r in out.values():
            if r.status != "rendered":
                r.waves, r.batches = [], []
        return [out[w.ref] for w in works]

    # ------------------------------------------------------------------ restyle, inpaint and superres
    def _one(self, work: RenderWork, progress, cancelled) -> Rendered:
        result = Rendered(work.ref)
        if cancelled is not None and cancelled(work.ref):
            result.status = "cancelled"
            return result
        on_step = self._stepper([work.ref], {work.ref: result}, progress, cancelled)
        t0 = time.monotonic()
        try:
            if work.kind == "restyle":
                waves = self.restyle(
                    work.audio, self.info.sample_rate, work.prompt, work.negative_prompt, list(work.seeds),
                    work.strength, work.steps, work.guidance, work.scheduler, on_step=on_step,
                )
            elif work.kind == "inpaint":
                waves = self.inpaint(
                    work.audio, self.info.sample_rate, work.gaps, work.windows, work.prompt, work.negative_prompt,
                    list(work.seeds), work.steps, work.guidance, work.scheduler, on_step=on_step,
                )
            elif work.kind == "superres":
                waves = self.superres(
                    work.audio, self.info.sample_rate, work.cutoff, work.prompt, work.negative_prompt, list(work.seeds),
                    work.steps, work.guidance, work.scheduler, on_step=on_step,
                )
            else:
                raise InputError(str(work.ref), f"unknown kind of render '{work.kind}'")
        except Cancelled:
            result.status = "cancelled"
            return result
        except InputError as err:
            result.status, result.error = "failed", str(err)
            return result
        except Exception as err:  # noqa: BLE001
            log.exception("render of %s failed", work.ref)
            result.status, result.error = "failed", _internal(err)
            return result
        result.waves = list(waves)
        if len(work.seeds) > 1:  # every seed of the work went through one call
            members = tuple((work.prompt, work.negative_prompt, int(s)) for s in work.seeds)
            result.batches = [BatchSlot(members, k) for k in range(len(work.seeds))]
        result.seconds = (time.monotonic() - t0) / max(1, len(waves))
        return result

    # ------------------------------------------------------------------ progress and cancel
    def _stepper(self, refs: list[Hashable], out: dict, progress, cancelled, share=(0, 1, 1)):
        """on_step for a pipeline call: reports each work's fraction, marks works cancelled as
        soon as they are, and stops the call (Cancelled) once every work in it is."""
        before, total, size = share

        def on_step(done: int, steps: int) -> None:
            if cancelled is not None:
                live = 0
                for ref in refs:
                    if out[ref].status == "rendered" and cancelled(ref):
                        out[ref].status = "cancelled"
                    live += out[ref].status == "rendered"
                if not live:
                    raise Cancelled()
            if progress is not None:
                fraction = min(1.0, (before + size * done / max(1, steps)) / max(1, total))
                for ref in refs:
                    if out[ref].status == "rendered":
                        progress(ref, fraction)

        return on_step


def _internal(err: BaseException) -> str:
    return f"internal error: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
