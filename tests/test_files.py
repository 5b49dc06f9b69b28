"""Delivered files appear whole or not at all, and never replace an existing file."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
import soundfile as sf

from host.output.files import PARTIAL_SUFFIX, SampleFormat, file_sha256, input_sample_format, remove_partials, write_audio_new, write_json_new


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


# --------------------------------------------------------------------------- inputs written back in their own format


def _input_file(path, container: str, subtype: str, rate: int = 44100, frames: int = 3000, channels: int = 2) -> np.ndarray:
    """A file as a user would bring it: noise and a tone, both full-scale extremes, and for float
    formats a few overs; returns its decoded samples as the host reads them, (channels, frames)."""
    rng = np.random.default_rng(3)
    x = 0.5 * np.sin(2 * np.pi * 440 * np.arange(frames) / rate) + 0.2 * rng.standard_normal(frames)
    x = np.stack([np.clip(x, -1, 1), np.clip(-0.7 * x, -1, 1)], axis=1)
    x[:4, 0] = [-1.0, 1.0, 1.0 - 2.0**-31, -1.0 + 2.0**-31]
    if subtype in ("FLOAT", "DOUBLE"):
        x[4:6, 1] = [1.5, -2.25]  # float files may hold overs; they are kept, not clipped
    if subtype == "DOUBLE":
        x[6, 0] = 0.1  # a value float32 cannot hold
    sf.write(str(path), x[:, :channels], rate, format=container, subtype=subtype)
    data, _ = sf.read(str(path), dtype="float64", always_2d=True)
    return data.T


EXACT = [
    ("wav", "PCM_U8"), ("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"), ("wav", "FLOAT"), ("wav", "DOUBLE"),
    ("flac", "PCM_S8"), ("flac", "PCM_16"), ("flac", "PCM_24"),
    ("aiff", "PCM_S8"), ("aiff", "PCM_U8"), ("aiff", "PCM_16"), ("aiff", "PCM_24"), ("aiff", "PCM_32"), ("aiff", "FLOAT"), ("aiff", "DOUBLE"),
]  # fmt: skip


@pytest.mark.parametrize("fmt, subtype", EXACT)
def test_each_sample_format_is_written_back_bit_for_bit(tmp_path, fmt, subtype):
    source = tmp_path / f"in.{fmt}"
    decoded = _input_file(source, fmt.upper(), subtype)
    chosen = input_sample_format(sf.info(str(source)).format, sf.info(str(source)).subtype, decoded)
    assert chosen == SampleFormat(fmt, subtype)
    out = tmp_path / "renders" / f"take.{fmt}"
    write_audio_new(out, decoded, 44100, None, chosen.container, chosen.subtype)
    info = sf.info(str(out))
    assert (info.format, info.subtype, info.frames, info.channels) == (fmt.upper(), subtype, decoded.shape[1], 2)
    for dtype in ("float64", "int32") if subtype.startswith("PCM") else ("float64",):
        before, _ = sf.read(str(source), dtype=dtype, always_2d=True)
        after, _ = sf.read(str(out), dtype=dtype, always_2d=True)
        assert np.array_equal(after, before), dtype
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "ext, container, subtype, rate, expected",
    [
        ("w64", "W64", "PCM_24", 44100, SampleFormat("wav", "PCM_24")),  # other containers: WAV, same samples
        ("caf", "CAF", "PCM_S8", 44100, SampleFormat("wav", "PCM_U8")),
        ("caf", "CAF", "DOUBLE", 44100, SampleFormat("wav", "DOUBLE")),
        ("caf", "CAF", "ALAC_20", 44100, SampleFormat("wav", "PCM_24")),  # codecs: the PCM they decode to
        ("caf", "CAF", "ALAC_16", 44100, SampleFormat("wav", "PCM_16")),
        ("wav", "WAV", "ULAW", 8000, SampleFormat("wav", "PCM_16")),
        ("wav", "WAV", "ALAW", 8000, SampleFormat("wav", "PCM_16")),
        ("wav", "WAV", "IMA_ADPCM", 44100, SampleFormat("wav", "PCM_16")),
        ("wav", "WAV", "MS_ADPCM", 44100, SampleFormat("wav", "PCM_16")),
        ("wav", "WAV", "GSM610", 8000, SampleFormat("wav", "PCM_16")),
        ("aiff", "AIFF", "ULAW", 8000, SampleFormat("wav", "PCM_16")),
        ("mp3", "MP3", "MPEG_LAYER_III", 44100, SampleFormat("wav", "FLOAT")),  # lossy: float WAV
        ("ogg", "OGG", "VORBIS", 44100, SampleFormat("wav", "FLOAT")),
        ("opus", "OGG", "OPUS", 48000, SampleFormat("wav", "FLOAT")),
    ],
)
def test_other_formats_come_back_as_wav_holding_the_decoded_samples_exactly(tmp_path, ext, container, subtype, rate, expected):
    source = tmp_path / f"in.{ext}"
    decoded = _input_file(source, container, subtype, rate=rate, frames=rate // 2, channels=1 if subtype == "GSM610" else 2)
    info = sf.info(str(source))
    assert (info.format, info.subtype) == (container, subtype)
    chosen = input_sample_format(info.format, info.subtype, decoded)
    assert chosen == expected
    out = tmp_path / f"take.{chosen.container}"
    write_audio_new(out, decoded, rate, None, chosen.container, chosen.subtype)
    after, _ = sf.read(str(out), dtype="float64", always_2d=True)
    assert np.array_equal(after.T, decoded)


def test_a_lossy_decode_float32_cannot_hold_is_written_as_64_bit_float():
    decoded = np.array([[0.1, -0.5, 0.25]])  # 0.1 is not a float32
    assert input_sample_format("MP3", "MPEG_LAYER_III", decoded) == SampleFormat("wav", "DOUBLE")
    assert input_sample_format("MP3", "MPEG_LAYER_III", decoded.astype(np.float32)) == SampleFormat("wav", "FLOAT")


def test_a_subtype_the_container_cannot_hold_exactly_is_refused_without_leaving_anything(tmp_path):
    for fmt, subtype in [("flac", "DOUBLE"), ("flac", "PCM_32"), ("wav", "PCM_S8"), ("wav", "ULAW"), ("mp3", "MPEG_LAYER_III"), ("ogg", "FLOAT")]:
        with pytest.raises(ValueError):
            write_audio_new(tmp_path / f"x.{fmt}", tone(), 48000, None, fmt, subtype)
    assert list(tmp_path.iterdir()) == []


def test_a_take_in_the_inputs_format_never_overwrites_either(tmp_path):
    path = tmp_path / "take.aiff"
    write_audio_new(path, tone(level=0.1), 48000, None, "aiff", "PCM_32")
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_audio_new(path, tone(level=0.9), 48000, None, "aiff", "PCM_32")
    assert path.read_bytes() == before and leftovers(tmp_path) == []


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
