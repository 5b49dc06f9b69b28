"""The in-process render backend: one warm model on this machine's device.

Foley works with the same batch group share batched denoising calls (up to ``batch_size``
takes a call, across works); restyle, inpaint and superres render one work at a time. Progress is reported
per work and per denoising step; a cancelled work stops within one step while its batch-mates
go on (its takes are computed to the end of the call but never handed back).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Callable, Hashable, Optional, Sequence

from host.engine.foley import FoleyPipeline, FoleyTake
from host.engine.inpaint import InpaintPipeline
from host.engine.models import Model
from host.engine.restyle import RestylePipeline
from host.engine.steps import Cancelled
from host.engine.superres import SuperresPipeline
from host.errors import InputError
from host.render.backend import BatchSlot, IsCancelled, ModelInfo, Progress, Rendered, RenderWork, info_from_geometry

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


class Engine:
    """One loaded model with its pipelines and (once asked) its CLAP scorer."""

    def __init__(self, model: Model):
        self.model = model
        self.info = model_info(model)
        self.foley = FoleyPipeline(model)
        self.restyle = RestylePipeline(model)
        self.inpaint = InpaintPipeline(model)
        self.superres = SuperresPipeline(model)
        self._scorer = None

    def scorer(self):
        if self._scorer is None:
            from host.engine.rank import load_scorer

            self._scorer = load_scorer(self.model)
            if not self._scorer.available:
                log.info("%s", self._scorer.off)  # once per model: takes are delivered unranked
        return self._scorer


class LocalBackend:
    """``model`` is the backend's own; a work naming another checkpoint (a preset's ``model``)
    renders on it once ``loader`` has loaded it, and at most ``max_models`` stay warm at once
    (the least recently used other one is let go first)."""

    def __init__(self, model: Model, batch_size: int = 8, loader: Optional[Callable[[str], Model]] = None, max_models: int = 2):
        self.default = Engine(model)
        self.batch_size = max(1, int(batch_size))
        self.denoise_calls = 0
        self.loader = loader
        self.max_models = max(1, int(max_models))
        self._others: OrderedDict[str, Engine] = OrderedDict()
        self._ids: dict[str, str] = {}  # a model name as given -> the id it loads as

    @property
    def model(self) -> Model:
        return self.default.model

    @property
    def info(self) -> ModelInfo:
        return self.default.info

    def _is_own(self, name: Optional[str]) -> bool:
        """Whether ``name`` (a hub id, a folder, a tiny model's name) is this backend's own model."""
        if name is None or name == self.info.id:
            return True
        if name not in self._ids:
            from host.engine.models import geometry

            self._ids[name] = geometry(name).id
        return self._ids[name] == self.info.id

    def info_for(self, name: Optional[str]) -> ModelInfo:
        if self._is_own(name):
            return self.info
        if name in self._others:
            return self._others[name].info
        from host.engine.models import geometry

        return info_from_geometry(geometry(name), self.info.device, self.info.threads)

    def engine(self, name: Optional[str]) -> Engine:
        """The loaded model a work naming ``name`` renders on, loading it if it is not warm."""
        if self._is_own(name):
            return self.default
        if name in self._others:
            self._others.move_to_end(name)
            return self._others[name]
        if self.loader is None:
            raise InputError(f"model {name}", f"this renderer serves {self.info.id} only")
        while self._others and len(self._others) + 1 >= self.max_models:
            dropped, _ = self._others.popitem(last=False)
            log.info("letting %s go to make room for %s", dropped, name)
        log.info("loading model %s for a preset that asks for it", name)
        engine = Engine(self.loader(name))
        self._others[name] = engine
        return engine

    def render(self, works: Sequence[RenderWork], progress: Optional[Progress] = None, cancelled: Optional[IsCancelled] = None) -> list[Rendered]:
        results: dict[int, Rendered] = {}
        groups: dict[tuple, list[int]] = {}
        for i, work in enumerate(works):
            try:
                engine = self.engine(work.model)
            except Exception as err:  # noqa: BLE001 - a model that cannot load fails its works, one line each
                results[i] = Rendered(work.ref, status="failed", error=str(err) if isinstance(err, InputError) else _internal(err))
                continue
            group = work.batch_group()
            if group is None:
                results[i] = self._one(engine, work, progress, cancelled)
            else:
                groups.setdefault(group, []).append(i)
        for members in groups.values():
            engine = self.engine(works[members[0]].model)
            for i, rendered in zip(members, self._foley(engine, [works[i] for i in members], progress, cancelled)):
                results[i] = rendered
        for i, work in enumerate(works):
            if work.rank and results[i].ok and results[i].waves:
                self._rank(self.engine(work.model), work, results[i])
        return [results[i] for i in range(len(works))]

    def _rank(self, engine: Engine, work: RenderWork, result: Rendered) -> None:
        """Each take scored against its prompt (one batched CLAP pass), or why not."""
        scorer = engine.scorer()
        if not scorer.available:
            result.ranking_off = scorer.off
            return
        from host.engine.rank import score_takes

        try:
            result.scores = [float(x) for x in score_takes(scorer, work.prompt, result.waves, engine.info.sample_rate)]
        except Exception as err:  # noqa: BLE001 - ranking never fails a render
            log.warning("ranking the takes of %s failed (%s); delivered unranked", work.ref, _internal(err))
            result.ranking_off = f"ranking failed: {_internal(err)}"

    # ------------------------------------------------------------------ foley, batched
    def _foley(self, engine: Engine, works: Sequence[RenderWork], progress, cancelled) -> list[Rendered]:
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
                waves = engine.foley(
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
    def _one(self, engine: Engine, work: RenderWork, progress, cancelled) -> Rendered:
        result = Rendered(work.ref)
        if cancelled is not None and cancelled(work.ref):
            result.status = "cancelled"
            return result
        on_step = self._stepper([work.ref], {work.ref: result}, progress, cancelled)
        t0 = time.monotonic()
        try:
            if work.kind == "restyle":
                waves = engine.restyle(
                    work.audio, engine.info.sample_rate, work.prompt, work.negative_prompt, list(work.seeds),
                    work.strength, work.steps, work.guidance, work.scheduler, on_step=on_step,
                )
            elif work.kind == "inpaint":
                waves = engine.inpaint(
                    work.audio, engine.info.sample_rate, work.gaps, work.windows, work.prompt, work.negative_prompt,
                    list(work.seeds), work.steps, work.guidance, work.scheduler, on_step=on_step,
                )
            elif work.kind == "superres":
                waves = engine.superres(
                    work.audio, engine.info.sample_rate, work.cutoff, work.prompt, work.negative_prompt, list(work.seeds),
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
