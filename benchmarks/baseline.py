"""Row 1's reference: diffusers' own AudioLDM pipeline in a loop, in one warm process.

Nothing here imports the host: the checkpoint folder is loaded with diffusers'
``DiffusionPipeline.from_pretrained`` (which picks the pipeline class the folder's
``model_index.json`` names: ``AudioLDMPipeline`` for the tiny model and every AudioLDM v1
checkpoint), called once per take with the same prompt, steps, guidance and duration the host
renders, and each result is written with soundfile (16 kHz float, as the pipeline returns it)
and read back. The only host code the benchmark uses for it is the one that builds the tiny
checkpoint folder in the first place.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

MODEL_RATE = 16000


class Unavailable(RuntimeError):
    """The installed diffusers cannot load this checkpoint as an audio pipeline."""


class DiffusersLoop:
    def __init__(self, checkpoint: Path, prompt: str, negative: str, duration: float, steps: int, guidance: float, out_dir: Path):
        import torch
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging as dlogging

        self.torch = torch
        self.prompt, self.negative = prompt, negative
        self.duration, self.steps, self.guidance = duration, steps, guidance
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        dlogging.set_verbosity_error()
        dlogging.disable_progress_bar()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.pipe = DiffusionPipeline.from_pretrained(str(checkpoint))
        except Exception as err:  # noqa: BLE001 - an uninstalled pipeline class, a newer checkpoint layout
            raise Unavailable(f"diffusers cannot load {checkpoint}: {type(err).__name__}: {err}") from None
        self.name = type(self.pipe).__name__
        if not hasattr(self.pipe, "vocoder"):
            raise Unavailable(f"{checkpoint} loads as {self.name}, not an AudioLDM pipeline")
        self.pipe.set_progress_bar_config(disable=True)
        self.count = 0
        self.samples = int(round(duration * MODEL_RATE))

    def render(self, seed: int) -> Path:
        import soundfile as sf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            audio = self.pipe(
                self.prompt, negative_prompt=self.negative, audio_length_in_s=self.duration,
                num_inference_steps=self.steps, guidance_scale=self.guidance,
                generator=self.torch.Generator().manual_seed(seed),
            ).audios[0]
        self.count += 1
        path = self.out_dir / f"baseline_{self.count:04d}.wav"
        sf.write(str(path), audio, MODEL_RATE)
        return path

    def batch(self, seeds) -> tuple[float, list[Path]]:
        """Render one take per seed, back to back; (wall seconds, the files)."""
        t0 = time.perf_counter()
        paths = [self.render(s) for s in seeds]
        return time.perf_counter() - t0, paths
