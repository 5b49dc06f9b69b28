"""Effects chains: what a preset author sees when a chain is wrong, and what a chain does to audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from host.config.schema import Effect
from host.errors import InputError
from host.finish.chain import apply_chain, build_chain, check_chain

RATE = 48000
WHERE = "presets/rain.toml"


def noise(channels: int = 2, seconds: float = 0.5, level: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((channels, int(seconds * RATE))) * level).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def error_for(*effects: Effect, base_dir=None) -> InputError:
    with pytest.raises(InputError) as info:
        build_chain(list(effects), WHERE, base_dir)
    err = info.value
    assert "\n" not in str(err), "errors are one line"
    return err


# ---------------------------------------------------------------- validation


def test_unknown_parameter_names_position_plugin_and_valid_names():
    err = error_for(Effect(plugin="HighpassFilter"), Effect(plugin="Gain"), Effect(plugin="Compressor", treshold_db=-18))
    assert str(err) == (
        "presets/rain.toml chain[2] (Compressor): unknown parameter 'treshold_db' "
        "(valid: attack_ms, ratio, release_ms, threshold_db)"
    )
    assert err.where == "presets/rain.toml chain[2] (Compressor)"


def test_unknown_plugin_suggests_the_close_name():
    err = error_for(Effect(plugin="Compresor"))
    assert str(err).startswith("presets/rain.toml chain[0] (Compresor): unknown plugin 'Compresor'")
    assert "Compressor" in err.reason


@pytest.mark.parametrize("name", ["Pedalboard", "Chain", "Mix", "Plugin", "VST3Plugin", "load_plugin", "os", "numpy", "__class__"])
def test_only_real_effects_can_be_named(name):
    err = error_for(Effect(plugin=name))
    assert "unknown plugin" in err.reason and f"({name})" in err.where


def test_settings_that_are_not_parameters_are_rejected():
    err = error_for(Effect(plugin="Compressor", is_effect=True))
    assert "unknown parameter 'is_effect'" in err.reason


@pytest.mark.parametrize(
    "effect, words",
    [
        (Effect(plugin="Compressor", ratio=0.5), ["ratio", "1.0"]),
        (Effect(plugin="Reverb", room_size=3), ["Room Size"]),
        (Effect(plugin="Gain", gain_db="loud"), ["gain_db", "number", "loud"]),
        (Effect(plugin="Gain", gain_db=True), ["gain_db", "number"]),
        (Effect(plugin="Gain", gain_db=float("inf")), ["gain_db", "finite"]),
        (Effect(plugin="LadderFilter", mode="notch"), ["mode", "HPF12", "LPF24"]),
        (Effect(plugin="Convolution", mix=0.5), ["missing", "impulse_response_filename"]),
    ],
)
def test_bad_values_explain_themselves(effect, words):
    err = error_for(Effect(plugin="Gain"), effect)
    assert err.where == f"{WHERE} chain[1] ({effect.plugin})"
    for word in words:
        assert word in err.reason


def test_missing_files_are_named(tmp_path):
    err = error_for(Effect(vst3="Plug-Ins/Nothing.vst3"), base_dir=tmp_path)
    assert "not found" in err.reason and str(tmp_path / "Plug-Ins/Nothing.vst3") in err.reason
    err = error_for(Effect(plugin="Convolution", impulse_response_filename="irs/hall.wav"), base_dir=tmp_path)
    assert "impulse response not found" in err.reason


def test_check_chain_accepts_good_and_rejects_bad():
    assert check_chain([Effect(plugin="HighpassFilter", cutoff_frequency_hz=80), Effect(plugin="Limiter")], WHERE) is None
    with pytest.raises(InputError):
        check_chain([Effect(plugin="Limiter", threshold=-1)], WHERE)


def test_enum_parameters_take_their_names():
    board = build_chain([Effect(plugin="LadderFilter", mode="hpf12", cutoff_hz=500)], WHERE)
    assert "HPF12" in str(board[0].mode)


# ---------------------------------------------------------------- processing


def test_gain_raises_level_by_its_decibels():
    x = noise()
    y = apply_chain(build_chain([Effect(plugin="Gain", gain_db=6)], WHERE), x, RATE)
    assert rms_db(y) - rms_db(x) == pytest.approx(6.0, abs=0.05)


@pytest.mark.parametrize("channels", [1, 2])
def test_channel_count_shape_and_dtype_are_kept(channels):
    board = build_chain(
        [Effect(plugin="Reverb", width=1.0), Effect(plugin="Chorus"), Effect(plugin="Delay", delay_seconds=0.1)], WHERE
    )
    x = noise(channels).astype(np.float64)
    y = apply_chain(board, x, RATE)
    assert y.shape == x.shape and y.dtype == np.float32


def test_empty_chain_returns_the_input_unchanged():
    x = noise()
    assert apply_chain(build_chain([], WHERE), x, RATE) is x


def test_each_run_starts_from_silence():
    board = build_chain([Effect(plugin="Reverb", room_size=0.9), Effect(plugin="Delay", feedback=0.5)], WHERE)
    x = noise()
    np.testing.assert_array_equal(apply_chain(board, x, RATE), apply_chain(board, x, RATE))


def test_convolution_ir_is_found_beside_the_preset(tmp_path):
    ir = np.zeros(256, np.float32)
    ir[0] = 1.0
    (tmp_path / "irs").mkdir()
    sf.write(tmp_path / "irs" / "dirac.wav", ir, RATE)
    board = build_chain([Effect(plugin="Convolution", impulse_response_filename="irs/dirac.wav")], WHERE, tmp_path)
    x = noise(1)
    y = apply_chain(board, x, RATE)
    assert y.shape == x.shape
    assert abs(np.corrcoef(x[0], y[0])[0, 1]) > 0.99  # a unit impulse passes the sound through


def test_filter_above_nyquist_is_an_error_not_garbage():
    board = build_chain([Effect(plugin="LowpassFilter", cutoff_frequency_hz=30000)], WHERE)
    with pytest.raises(InputError, match="NaN/inf"):
        apply_chain(board, noise(), 44100)
