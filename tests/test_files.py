"""Delivered files appear whole or not at all, and never replace an existing file."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
import soundfile as sf

from host.output.files import PARTIAL_SUFFIX, file_sha256, remove_partials, write_audio_new, write_json_new


def tone(channels: int = 2, frames: int = 4410, level: float = 0.5) -> np.ndarray:
    x = level * np.sin(2 * np.pi * 440 * np.arange(frames) / 44100)
    return np.tile(x, (channels, 1)).astype(np.float32)


def leftovers(folder) -> list:
    return [p for p in folder.rglob("*") if p.name.endswith(PARTIAL_SUFFIX)]


@pytest.mark.parametrize(
    "fmt, bits, subtype",
    [("wav", 16, "PCM_16"), ("wav", 24, "PCM_24"), ("wav", 32, "FLOAT"), ("flac", 16, "PCM_16"), ("flac", 24, "PCM_24")],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_written_files_read_back_as_delivered(tmp_path, fmt, bits, subtype, channels):
    path = tmp_path / "renders" / "rain" / f"rain_t01.{fmt}"  # parent folders are created
    x = tone(channels)
    write_audio_new(path, x, 44100, bits, fmt)
    info = sf.info(path)
    assert (info.subtype, info.samplerate, info.channels, info.frames) == (subtype, 44100, channels, x.shape[1])
    assert info.format == fmt.upper()
    y, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_allclose(y.T, x, atol=2.0 ** -(bits - 1) if bits < 32 else 0)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt, bits", [("wav", 16), ("wav", 24), ("flac", 24)])
def test_integer_formats_saturate_instead_of_wrapping(tmp_path, fmt, bits):
    x = np.array([[1.0, 1.5, 40.0, -1.0, -1.5, -40.0]], np.float32)
    write_audio_new(tmp_path / f"hot.{fmt}", x, 48000, bits, fmt)
    y, _ = sf.read(tmp_path / f"hot.{fmt}", dtype="float64", always_2d=True)
    top = 1 - 2.0 ** -(bits - 1)  # the largest positive integer sample
    np.testing.assert_allclose(y[:, 0], [top, top, top, -1.0, -1.0, -1.0], atol=1e-9)


def test_unsupported_format_is_refused_without_leaving_anything(tmp_path):
    with pytest.raises(ValueError):
        write_audio_new(tmp_path / "x.flac", tone(), 48000, 32, "flac")
    with pytest.raises(ValueError):
        write_audio_new(tmp_path / "x.mp3", tone(), 48000, 16, "mp3")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_never_overwritten(tmp_path):
    path = tmp_path / "take.wav"
    write_audio_new(path, tone(level=0.1), 48000, 24, "wav")
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_audio_new(path, tone(level=0.9), 48000, 16, "wav")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    def broken_write(file, *args, **kwargs):
        file.write(b"RIFF half a file")
        raise OSError("disk full")

    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_audio_new(tmp_path / "take.wav", tone(), 48000, 24, "wav")
    assert list(tmp_path.iterdir()) == []


def test_temp_file_is_hidden_beside_the_target(tmp_path, monkeypatch):
    seen = []
    real_write = sf.write

    def spy(file, *args, **kwargs):
        seen.append(file.name)
        return real_write(file, *args, **kwargs)

    monkeypatch.setattr(sf, "write", spy)
    write_audio_new(tmp_path / "take.wav", tone(), 48000, 16, "wav")
    tmp = tmp_path / seen[0]
    assert tmp.parent == tmp_path
    assert re.fullmatch(r"\.take\.wav\..+\.partial", tmp.name)
    assert not tmp.exists()


def test_json_sidecar_is_sorted_indented_utf8_and_never_overwritten(tmp_path):
    path = tmp_path / "take.json"
    write_json_new(path, {"prompt": "pluie légère", "a": 1, "levels": {"gain_db": np.float32(-3.5)}})
    text = path.read_bytes().decode("utf-8")
    assert text.index('"a"') < text.index('"levels"') < text.index('"prompt"')
    assert '\n  "a": 1' in text and "légère" in text
    assert json.loads(text)["levels"]["gain_db"] == -3.5
    with pytest.raises(FileExistsError):
        write_json_new(path, {"other": True})
    assert json.loads(path.read_text("utf-8"))["a"] == 1
    with pytest.raises(ValueError):  # strict JSON: a NaN is a bug, not a sidecar
        write_json_new(tmp_path / "bad.json", {"x": float("nan")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.json"]


def test_remove_partials_cleans_up_after_a_crash(tmp_path):
    keep = [tmp_path / "a" / "rain_t01.wav", tmp_path / "a" / "rain_t01.json"]
    junk = [tmp_path / "a" / ".rain_t02.wav.3f9a.partial", tmp_path / "b" / "c" / ".x.json.77.partial"]
    for p in keep + junk:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"data")
    assert sorted(remove_partials(tmp_path)) == sorted(junk)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in junk)
    assert remove_partials(tmp_path) == []


def test_file_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
