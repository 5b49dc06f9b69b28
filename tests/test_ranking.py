"""Ranked takes and presets that name their own model.

Several takes of one job are scored against the prompt in CLAP's joint space (the tiny AudioLDM 2
ships a tiny full CLAP, so scores are real cosines of a real, if random, model); the best comes
first everywhere a user sees the takes, and ``keep`` delivers only the best. A preset may name the
checkpoint it wants: its jobs render on that model whatever the project's is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from host.engine.models import load_model
from host.plan.project import plan_project
from host.runner import Runner
from tests.oscpeer import Daemon, OscPeer


def sidecar(audio: Path) -> dict:
    return json.loads(Path(audio).with_suffix(".json").read_text())


def project(root: Path, cues: str, presets: dict[str, str] = {}) -> Path:
    (root / "presets").mkdir(parents=True)
    (root / "project.toml").write_text("sample_rate = 16000\nloudness = -20.0\n")
    (root / "cues.toml").write_text(cues)
    for name, text in presets.items():
        (root / "presets" / f"{name}.toml").write_text(text)
    return root


@pytest.fixture(scope="module")
def tiny2():
    return load_model("tiny-audioldm2", device="cpu")


def render(runner: Runner, root: Path):
    plan = plan_project(root)
    assert not plan.problems, [str(p) for p in plan.problems]
    return runner.run(plan.jobs)


def test_takes_are_scored_and_come_best_first(tmp_path, tiny2):
    root = project(tmp_path / "p", '[[cue]]\nname = "rain"\nprompt = "rain on a tin roof"\nduration = 1.0\nsteps = 2\ntakes = 4\nseed = 11\n')
    [outcome] = render(Runner(tiny2), root)
    assert outcome.status == "rendered" and len(outcome.files) == 4
    scores = [sidecar(f)["clap_score"] for f in outcome.files]
    assert all(isinstance(s, float) and -1.0 <= s <= 1.0 for s in scores)
    assert len(set(scores)) == 4  # four different takes, four different fits
    assert scores == sorted(scores, reverse=True)  # best first, as the done reply and the summary show them
    places = sorted(sidecar(f)["rank"]["place"] for f in outcome.files)
    assert places == [1, 2, 3, 4] and sidecar(outcome.files[0])["rank"] == {"place": 1, "of": 4}


def test_keep_delivers_only_the_best_of_the_candidates(tmp_path, tiny2):
    cue = 'name = "door"\nprompt = "a wooden door creaks open"\nduration = 1.0\nsteps = 2\ntakes = 4\nseed = 21\n'
    every = project(tmp_path / "all", f"[[cue]]\n{cue}")
    [all_four] = render(Runner(tiny2), every)
    by_seed = {sidecar(f)["seed"]: sidecar(f)["clap_score"] for f in all_four.files}
    assert len(by_seed) == 4
    best_two = sorted(by_seed, key=lambda s: -by_seed[s])[:2]

    kept = project(tmp_path / "kept", f"[[cue]]\n{cue}keep = 2\n")
    runner = Runner(tiny2)
    [outcome] = render(runner, kept)
    assert outcome.status == "rendered" and len(outcome.files) == 2
    assert [sidecar(f)["seed"] for f in outcome.files] == best_two  # the two best, best first
    assert all(sidecar(f)["kept"] == {"keep": 2, "candidates": 4} for f in outcome.files)
    assert len(list((kept / "renders").rglob("*.wav"))) == 2  # the other candidates were never written
    [again] = render(runner, kept)
    assert again.status == "cached" and [f.name for f in again.files] == [f.name for f in outcome.files]


def test_a_preset_names_its_own_model_and_the_take_records_it(tmp_path, tiny_model):
    presets = {"music": 'kind = "foley"\nprompt = "a short melody"\nduration = 1.0\nsteps = 2\nmodel = "tiny-audioldm2"\n'}
    root = project(tmp_path / "p", '[[cue]]\nname = "tune"\npreset = "music"\nseed = 3\n\n[[cue]]\nname = "knock"\nprompt = "a knock"\nduration = 1.0\nsteps = 2\nseed = 4\n', presets)
    loads = []

    def loader(name):
        loads.append(name)
        return load_model(name, device="cpu")

    runner = Runner(tiny_model, loader=loader)
    outcomes = {o.job.name: o for o in render(runner, root)}
    assert outcomes["tune"].status == "rendered" and outcomes["knock"].status == "rendered"
    assert sidecar(outcomes["tune"].files[0])["model"]["id"] == "tiny-audioldm2"
    assert sidecar(outcomes["tune"].files[0])["model"]["family"] == "audioldm2"
    assert sidecar(outcomes["knock"].files[0])["model"] == {"id": "tiny", "revision": tiny_model.revision, "family": "audioldm"}
    assert loads == ["tiny-audioldm2"]  # loaded once, on first use
    # without a loader such a job fails in one line, and the others render
    (root / "renders").rename(root / "old-renders")
    outcomes = {o.job.name: o for o in render(Runner(tiny_model), root)}
    assert outcomes["tune"].status == "failed" and "serves tiny only" in outcomes["tune"].error
    assert outcomes["knock"].status == "rendered"


def test_the_render_summary_names_the_best_take(tmp_path, tiny2):
    root = project(tmp_path / "p", '[[cue]]\nname = "wind"\nprompt = "wind through trees"\nduration = 1.0\nsteps = 2\ntakes = 3\nseed = 5\n')
    env = {**__import__("os").environ, "COLUMNS": "250"}  # one table row per line
    result = subprocess.run([sys.executable, "-m", "host", "render", str(root), "--model", "tiny-audioldm2"], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    takes = sorted((root / "renders" / "foley" / "wind").glob("*.wav"), key=lambda f: -sidecar(f)["clap_score"])
    assert f"best: {takes[0].name} (CLAP {sidecar(takes[0])['clap_score']:.2f})" in result.stdout, result.stdout


def test_over_osc_the_done_reply_lists_the_takes_best_first(tmp_path):
    root = project(tmp_path / "p", "", {"music": 'kind = "foley"\nprompt = "a chime"\nduration = 1.0\nsteps = 2\ntakes = 3\nmodel = "tiny-audioldm2"\n'})
    peer = OscPeer(0)
    daemon = Daemon([root], tmp_path / "state", peer.reply_port).start()  # the daemon's own model: tiny
    peer.daemon = ("127.0.0.1", daemon.port)
    try:
        daemon.wait_ready(peer)
        peer.send("/audiohost/foley", "p", "music", 1.0, 8, 3, "ranked")
        job = peer.wait_for(lambda m: m[0] == "/audiohost/job/queued" and m[1][-1] == "ranked", 30)[1][0]
        address, args = peer.wait_for(lambda m: m[0] in ("/audiohost/job/done", "/audiohost/job/failed") and m[1][0] == job, 300)
        assert address == "/audiohost/job/done", args
    finally:
        daemon.stop()
        peer.close()
    paths = [Path(p) for p in args[1:-1]]
    scores = [sidecar(p)["clap_score"] for p in paths]
    assert len(paths) == 3 and scores == sorted(scores, reverse=True)
    assert {sidecar(p)["model"]["family"] for p in paths} == {"audioldm2"}
