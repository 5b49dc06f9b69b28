"""Presets: the shipped library, validation errors and the project/built-in merge."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pedalboard
import pytest
from pydantic import ValidationError

from host.config import presets as config_presets
from host.config.presets import BUILTIN_DIR, Preset, preset_library
from host.errors import InputError
from host.finish.chain import check_chain


def check_presets(path=None):
    """``audiohost presets check``: files, and their chains (the effects layer's check, handed in)."""
    return config_presets.check_presets(path, check_chain=check_chain)


def load_preset_file(path):
    return config_presets.load_preset_file(path, check_chain=check_chain)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shipped presets


def test_builtin_dir_is_repo_presets():
    assert BUILTIN_DIR == Path(__file__).resolve().parents[1] / "presets"
    assert BUILTIN_DIR.is_dir()


def test_all_shipped_presets_validate():
    assert check_presets() == []
    library, errors = preset_library()
    assert errors == []
    assert len(library) == len(list(BUILTIN_DIR.glob("*.toml")))


def test_shipped_preset_counts():
    library, _ = preset_library()
    kinds = Counter(entry.preset.kind for entry in library.values())
    assert kinds["foley"] >= 12
    assert kinds["restyle"] >= 3
    assert kinds["inpaint"] >= 2
    for name in ("restyle-texture", "restyle-steel-drum", "restyle-radio", "inpaint-seamless", "inpaint-room-tone"):
        assert name in library


@pytest.mark.parametrize("path", sorted(BUILTIN_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_preset_is_sensible(path: Path):
    preset = load_preset_file(path)
    assert preset.description.strip(), "a sound designer needs a description"
    assert preset.chain, "every shipped preset has a chain"
    for effect in preset.chain:  # independent of host.finish: pedalboard must accept the parameters
        getattr(pedalboard, effect.plugin)(**effect.params)
    if preset.kind == "foley":
        assert preset.prompt.strip()
        assert 1 <= preset.duration <= (60 if preset.loop else 10)  # a loop bed may be long
        assert 2.5 <= preset.guidance <= 3.5
        assert (preset.scheduler, preset.steps) == ("dpm", 25) or 50 <= preset.steps <= 100


def test_shipped_restyle_strengths():
    library, _ = preset_library()
    assert library["restyle-texture"].preset.strength == pytest.approx(0.5, abs=0.1)
    assert library["restyle-steel-drum"].preset.strength == pytest.approx(0.65, abs=0.1)
    assert library["restyle-radio"].preset.strength == pytest.approx(0.4, abs=0.1)


# --------------------------------------------------------------------------- bad files

GOOD = 'kind = "foley"\nprompt = "a door"\n'


@pytest.mark.parametrize(
    "text, field",
    [
        (GOOD + "colour = 3\n", "colour"),
        (GOOD + "strength = 1.5\n", "strength"),
        (GOOD + "duration = -2\n", "duration"),
        (GOOD + "steps = 0\n", "steps"),
        (GOOD + "takes = true\n", "takes"),
        (GOOD + 'scheduler = "euler"\n', "scheduler"),
        (GOOD + "[delivery]\nbit_depth = 20\n", "delivery.bit_depth"),
        (GOOD + '[[chain]]\nplugin = "NoSuchPlugin"\n', "chain"),
        (GOOD + '[[chain]]\nplugin = "Compressor"\nthreshold = -10\n', "chain"),
        (GOOD + 'model = ""\n', "model"),
        (GOOD + "model = 3\n", "model"),
        ('kind = "ambient"\n', "kind"),
        ("prompt = 'no kind'\n", "kind"),
    ],
)
def test_bad_preset_gives_one_error_naming_file_and_field(tmp_path: Path, text: str, field: str):
    path = write(tmp_path / "bad-one.toml", text)
    errors = check_presets(path)
    assert len(errors) == 1
    message = str(errors[0])
    assert "bad-one.toml" in message and field in message
    assert "\n" not in message and "Traceback" not in message
    with pytest.raises(InputError):
        load_preset_file(path)


def test_range_errors_read_well(tmp_path: Path):
    [err] = check_presets(write(tmp_path / "p.toml", GOOD + "duration = -2\n"))
    assert err.where.endswith("p.toml duration")
    assert err.reason == "must be between 0.04 and 600 seconds, got -2"
    [err] = check_presets(write(tmp_path / "p.toml", GOOD + "strength = 1.5\n"))
    assert err.reason == "must be between 0 and 1, got 1.5"


def test_unknown_field_suggests_close_name(tmp_path: Path):
    [err] = check_presets(write(tmp_path / "p.toml", GOOD + "guidence = 3\n"))
    assert "guidence" in err.where and "guidance" in err.reason


def test_invalid_toml(tmp_path: Path):
    path = write(tmp_path / "broken.toml", 'kind = "foley\n')
    [err] = check_presets(path)
    assert "broken.toml" in err.where
    assert err.reason.startswith("invalid TOML: ")


def test_check_presets_folder_reports_each_bad_file(tmp_path: Path):
    write(tmp_path / "a.toml", GOOD)
    write(tmp_path / "b.toml", GOOD + "strength = 2\n")
    write(tmp_path / "c.toml", "nope nope")
    write(tmp_path / "notes.txt", "ignored")
    errors = check_presets(tmp_path)
    assert sorted(Path(e.where.split(" ")[0]).name for e in errors) == ["b.toml", "c.toml"]


def test_check_presets_missing_path(tmp_path: Path):
    [err] = check_presets(tmp_path / "nope.toml")
    assert "nope.toml" in str(err)


# --------------------------------------------------------------------------- library


def test_project_preset_replaces_builtin(tmp_path: Path):
    path = write(tmp_path / "presets" / "ui-click.toml", 'kind = "foley"\nprompt = "my click"\nduration = 0.5\n')
    write(tmp_path / "presets" / "my-own.toml", 'kind = "foley"\nprompt = "mine"\n')
    library, errors = preset_library(tmp_path)
    assert errors == []
    assert library["ui-click"].preset.prompt == "my click"
    assert library["ui-click"].path == path
    assert "my-own" in library and "footsteps-gravel" in library


def test_bad_project_preset_is_reported_and_left_out(tmp_path: Path):
    write(tmp_path / "presets" / "ui-click.toml", GOOD + "strength = 9\n")
    write(tmp_path / "presets" / "fine.toml", GOOD)
    library, errors = preset_library(tmp_path)
    assert len(errors) == 1 and "ui-click.toml strength" in str(errors[0])
    assert "ui-click" not in library  # no silent fall-back to the built-in it meant to replace
    assert "fine" in library and "wind-howl" in library


def test_content_hash_is_sha256_prefix(tmp_path: Path):
    path = write(tmp_path / "presets" / "h.toml", GOOD)
    library, _ = preset_library(tmp_path)
    assert library["h"].content_hash == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert library["h"].name == "h"


# --------------------------------------------------------------------------- the model


def test_defaults():
    preset = Preset(kind="foley")
    assert (preset.duration, preset.steps, preset.guidance, preset.seed, preset.takes) == (5.0, 50, 2.5, None, 1)
    assert preset.strength == 0.6 and preset.scheduler == "ddim" and preset.chain == []


def test_with_overrides_validates_the_result():
    preset = Preset(kind="restyle", strength=0.5)
    assert preset.with_overrides(strength=0.9, seed=7).strength == 0.9
    assert preset.strength == 0.5
    with pytest.raises(ValidationError):
        preset.with_overrides(strength=1.5)
    with pytest.raises(ValidationError):
        preset.with_overrides(kindd="foley")


def test_with_overrides_merges_delivery_and_replaces_chain():
    preset = Preset(kind="foley", delivery={"format": "flac"}, chain=[{"plugin": "Gain", "gain_db": 2}])
    changed = preset.with_overrides(delivery={"loudness": -16}, chain=[{"plugin": "Limiter"}])
    assert changed.delivery.format == "flac" and changed.delivery.loudness == -16
    assert [e.plugin for e in changed.chain] == ["Limiter"]
    assert preset.with_overrides(prompt="x").chain[0].params == {"gain_db": 2}


def test_seed_range():
    assert Preset(kind="foley", seed=2**32 - 1).seed == 2**32 - 1
    with pytest.raises(ValidationError):
        Preset(kind="foley", seed=2**32)
    with pytest.raises(ValidationError):
        Preset(kind="foley", seed=-1)


def test_a_preset_may_name_its_model_and_a_cue_may_change_it(tmp_path: Path):
    preset = load_preset_file(write(tmp_path / "music.toml", GOOD + 'model = "cvssp/audioldm2-music"\n'))
    assert preset.model == "cvssp/audioldm2-music"
    assert preset.with_overrides(model="tiny-audioldm2").model == "tiny-audioldm2"
    assert load_preset_file(write(tmp_path / "plain.toml", GOOD)).model is None  # the project's or host's model
    [err] = check_presets(write(tmp_path / "blank.toml", GOOD + 'model = "  "\n'))
    assert err.where.endswith("blank.toml model") and err.reason.startswith("must be non-empty text")


def test_loading_a_preset_builds_no_plugin_and_resolves_its_files_once(tmp_path: Path, monkeypatch):
    """Configuration does not import the effects layer: a preset loads without building a plug-in
    (no VST3 binary loads on the thread that reads it), and a relative file in its chain means the
    file beside the preset, wherever the chain is built later."""

    ir = tmp_path / "presets" / "irs" / "hall.wav"
    ir.parent.mkdir(parents=True)
    ir.write_bytes(b"RIFF")
    path = write(tmp_path / "presets" / "roomy.toml", GOOD + '[[chain]]\nplugin = "Convolution"\nimpulse_response_filename = "irs/hall.wav"\n')
    built = []
    monkeypatch.setattr(pedalboard, "Convolution", lambda *a, **k: built.append((a, k)))
    preset = config_presets.load_preset_file(path)  # no checker handed in: nothing is built
    assert built == []
    assert preset.chain[0].params["impulse_response_filename"] == str(ir)
    # and no module of host.config imports the effects layer, at the top or inside a function
    import ast

    for module in Path(config_presets.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith(("host.finish", "pedalboard")) for n in names), (module.name, names)


def test_loudness_off_is_spelt_one_way_everywhere(tmp_path: Path):
    off = config_presets.load_preset_file(write(tmp_path / "quiet.toml", GOOD + '[delivery]\nloudness = "none"\n'))
    from host.config.schema import Delivery

    assert off.delivery.apply(Delivery()).loudness is None
    [err] = check_presets(write(tmp_path / "old.toml", GOOD + "[delivery]\nloudness_off = true\n"))
    assert 'write loudness = "none"' in str(err)
    [err] = check_presets(write(tmp_path / "flac32.toml", GOOD + '[delivery]\nformat = "flac"\nbit_depth = 32\n'))
    assert "FLAC holds 16- or 24-bit integer samples" in str(err)
