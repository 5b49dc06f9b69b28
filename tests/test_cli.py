"""The ``audiohost`` command line, run as a user runs it: a separate process per command.

Each process that renders imports torch, so these are few; the runner tests cover the details.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import host
from host.config.presets import BUILTIN_DIR
from host.plan.project import plan_project
from tests.conftest import write_tone

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "projects" / "demo"


def audiohost(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)  # carries AUDIOHOST_CACHE (the session's tiny model) and HF_HUB_OFFLINE=1
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("COLUMNS", None)  # as when piped to a log: rich falls back to 80 columns
    return subprocess.run(
        [sys.executable, "-m", "host", *[str(a) for a in args]],
        cwd=str(cwd or REPO), env=env, capture_output=True, text=True, timeout=timeout,
    )


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    renders = root / "renders"
    if not renders.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(renders.rglob("*")) if p.is_file()}


def error_lines(stderr: str) -> list[str]:
    """The host's own error lines (a C library may add its own notes to stderr)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def tiny(tiny_model):
    """The tiny model is in the session's cache before a render process looks for it."""
    return tiny_model


def toml_value(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def write_cues(path: Path, cues: list[dict]) -> None:
    path.write_text("".join("[[cue]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in c.items()) + "\n" for c in cues))


def cheap_demo(tmp_path: Path) -> Path:
    """projects/demo without its renders, every job at 2 steps and at most 1.5 s, one take per stem."""
    root = tmp_path / "demo"
    shutil.copytree(DEMO, root, ignore=shutil.ignore_patterns("renders"))
    cues = tomllib.loads((root / "cues.toml").read_text())["cue"]
    for c in cues:
        c["steps"] = 2
        c["duration"] = min(float(c.get("duration", 1.5)), 1.5)
    write_cues(root / "cues.toml", cues)
    for stem in list((root / "restyle").glob("*.flac")) + list((root / "inpaint").glob("*.wav")):
        stem.with_suffix(".toml").write_text("steps = 2\ntakes = 1\n")
    return root


# --------------------------------------------------------------------------- no rendering


def test_version():
    result = audiohost("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"audiohost {host.__version__}"


@pytest.mark.parametrize("command", ["render", "presets", "serve", "status"])
def test_help_for_every_command(command):
    result = audiohost(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: audiohost {command}")
    assert result.stderr == ""


def test_presets_list_shows_every_shipped_preset():
    result = audiohost("presets", "list")
    assert result.returncode == 0, result.stderr
    shipped = sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))
    assert len(shipped) >= 10
    for name in shipped:
        assert f" {name} " in result.stdout, f"{name} missing from `presets list`"


def test_presets_check_passes_the_shipped_presets_and_names_a_bad_file_and_field(tmp_path):
    good = audiohost("presets", "check")
    assert good.returncode == 0, good.stderr
    assert good.stderr == ""

    (tmp_path / "bad.toml").write_text('kind = "foley"\nprompt = "a door"\nstrength = 1.5\n')
    bad = audiohost("presets", "check", "bad.toml", cwd=tmp_path)
    assert bad.returncode != 0
    lines = bad.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), bad.stderr
    assert "bad.toml" in lines[0] and "strength" in lines[0] and "1.5" in lines[0]
    assert "Traceback" not in bad.stderr


# --------------------------------------------------------------------------- rendering


def test_render_the_demo_then_nothing_is_left_to_render(tmp_path, tiny):
    root = cheap_demo(tmp_path)
    expected = set()
    for job in plan_project(root).jobs:
        base = job.name if job.kind == "foley" else f"{job.name}__{job.preset_name}"  # a stem's takes name their preset
        for i in range(1, job.preset.takes + 1):
            expected.add(f"renders/{job.kind}/{job.name}/{base}_t{i:02d}.wav")
            expected.add(f"renders/{job.kind}/{job.name}/{base}_t{i:02d}.json")
    kinds = {p.split("/")[1] for p in expected}
    assert kinds == {"foley", "restyle", "inpaint"}

    first = audiohost("render", root, "--model", "tiny")
    assert first.returncode == 0, first.stderr
    made = files_under(root)
    assert set(made) == expected
    assert error_lines(first.stderr) == [] and "Traceback" not in first.stderr

    second = audiohost("render", root, "--model", "tiny")
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout
    assert files_under(root) == made


def test_bad_cues_and_stems_fail_one_line_each_and_the_rest_renders(tmp_path, tiny):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "project.toml").write_text("sample_rate = 48000\n")
    write_cues(
        root / "cues.toml",
        [
            {"name": "broken", "prompt": "a door", "duration": -2, "steps": 2},  # cue[0]
            {"name": "fine", "prompt": "a door", "duration": 0.5, "steps": 2},  # cue[1]: the only good one
            {"name": "slam [/take 2]", "prompt": "a door slam", "duration": 0.5, "steps": 2},  # cue[2]
            {"name": "creak", "preset": "door-wod-creak", "steps": 2},  # cue[3]: a typo in the preset
            {"name": "whoosh", "prompt": "a whoosh", "strength": 1.5, "steps": 2},  # cue[4]
            {"name": "drone", "prompt": "a drone", "duration": 10000, "steps": 2},  # cue[5]: absurd
            {"name": "mine", "preset": "broken-toml", "steps": 2},  # cue[6]: its preset file is not TOML
        ],
    )
    with open(root / "cues.toml", "a") as f:  # cue[7]: an effect parameter that does not exist
        f.write('[[cue]]\nname = "verb"\nprompt = "a clap"\nsteps = 2\n[[cue.chain]]\nplugin = "Reverb"\nroomsize = 0.5\n')
    (root / "presets").mkdir()
    (root / "presets" / "broken-toml.toml").write_text('kind = "foley"\nprompt = "unclosed\n')
    # a stem whose sidecar spells the gaps wrong, and an unreadable stem with brackets in its name
    write_tone(root / "inpaint" / "dropout.wav", 1.0, 44100)
    (root / "inpaint" / "dropout.toml").write_text('gaps = "0.4-0.6"\n')
    (root / "restyle").mkdir()
    (root / "restyle" / "hit [v2].wav").write_bytes(np.random.default_rng(1).bytes(2048))

    result = audiohost("render", root, "--model", "tiny")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert "Note:" not in result.stderr  # nothing a C library prints of its own (mpg123 resyncing on garbage)
    assert sorted(files_under(root)) == ["renders/foley/fine/fine_t01.json", "renders/foley/fine/fine_t01.wav"]

    lines = error_lines(result.stderr)

    def line_with(*parts: str) -> str:
        found = [line for line in lines if all(p in line for p in parts)]
        assert len(found) == 1, (parts, result.stderr)
        return found[0]

    # a bad cue is named as written, with its place in the sheet
    line_with('cues.toml cue "broken" (cue[0]).duration', "-2")
    line_with("cues.toml cue[2].name", "'slam [/take 2]'")  # (no usable name to show)
    line_with('cues.toml cue "creak" (cue[3]).preset', "door-wod-creak", "door-wood-creak")
    line_with('cues.toml cue "whoosh" (cue[4]).strength', "1.5")
    line_with('cues.toml cue "drone" (cue[5]).duration', "10000")
    line_with("broken-toml.toml", "invalid TOML")
    line_with('cues.toml cue "mine" (cue[6]).preset', "broken-toml")
    line_with('cues.toml cue "verb" (cue[7])', "chain[0]", "roomsize")
    # ... and is a failed row of the summary table, like a job that failed
    rows = [line for line in result.stdout.splitlines() if "failed" in line]
    for name in ("broken", "creak", "whoosh", "drone", "mine", "verb", "dropout", "hit_v2"):
        assert any(name in row for row in rows), (name, result.stdout)
    assert not any("fine" in row for row in rows)
    line_with("dropout.toml gaps", "[start, end]")
    line_with("hit [v2].wav", "not a readable audio file")
    assert len(lines) == 10, result.stderr


def test_dry_run_renders_nothing(tmp_path, tiny):
    root = tmp_path / "proj"
    root.mkdir()
    write_cues(root / "cues.toml", [{"name": "knock", "prompt": "a knock", "duration": 0.5, "steps": 2}])
    result = audiohost("render", root, "--model", "tiny", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "knock" in result.stdout and "new" in result.stdout
    assert not (root / "renders").exists()


def test_only_renders_the_named_cue(tmp_path, tiny):
    root = tmp_path / "proj"
    root.mkdir()
    write_cues(
        root / "cues.toml",
        [
            {"name": "knock", "prompt": "a knock", "duration": 0.5, "steps": 2},
            {"name": "creak", "prompt": "a creak", "duration": 0.5, "steps": 2},
        ],
    )
    result = audiohost("render", root, "--model", "tiny", "--only", "creak")
    assert result.returncode == 0, result.stderr
    assert sorted(files_under(root)) == ["renders/foley/creak/creak_t01.json", "renders/foley/creak/creak_t01.wav"]


def test_an_unknown_hub_model_offline_says_to_use_tiny(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    write_cues(root / "cues.toml", [{"name": "knock", "prompt": "a knock", "duration": 0.5, "steps": 2}])
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    result = audiohost("render", root, "--model", "nobody-here/no-such-audioldm")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "nobody-here/no-such-audioldm" in lines[0] and "--model tiny" in lines[0]
    assert not (root / "renders").exists()
