"""Delivered files appear whole or not at all, and never replace an existing file."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host.output import files
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
    junk = [tmp_path / "a" / ".rain_t02.wav.3f9a0b1c2d3e.partial", tmp_path / "b" / "c" / ".x.json.77aa88bb99cc.partial"]
    for p in keep + junk:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"data")
    assert sorted(remove_partials(tmp_path)) == sorted(junk)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in junk)
    assert remove_partials(tmp_path) == []


def test_remove_partials_touches_only_the_hosts_own_temp_files_and_never_follows_symlinks(tmp_path):
    renders = tmp_path / "renders"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # files of other programs (or the user's) that merely end in .partial
    theirs = [renders / "download.wav.partial", renders / ".x.wav.partial", renders / ".x.wav.3f9a.partial", renders / ".x.wav.3F9A0B1C2D3E.partial", elsewhere / ".y.wav.0123456789ab.partial"]
    for p in theirs:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"theirs")
    (renders / "linked").symlink_to(elsewhere, target_is_directory=True)  # a symlinked folder is not entered
    (renders / ".z.wav.0123456789ab.partial").symlink_to(elsewhere / ".y.wav.0123456789ab.partial")  # nor a symlink removed
    ours = renders / "foley" / ".rain_t01.wav.0123456789ab.partial"
    ours.parent.mkdir(parents=True)
    ours.write_bytes(b"ours")
    assert remove_partials(renders) == [ours]
    assert all(p.read_bytes() == b"theirs" for p in theirs)
    assert (renders / ".z.wav.0123456789ab.partial").is_symlink()
    # renders/ that is itself a symlink: nothing under wherever it points is touched
    link = tmp_path / "renders-link"
    link.symlink_to(elsewhere, target_is_directory=True)
    assert remove_partials(link) == [] and (elsewhere / ".y.wav.0123456789ab.partial").exists()


def test_temp_files_are_named_so_that_remove_partials_recognises_them(tmp_path, monkeypatch):
    """The cleanup's pattern and the writer's names are one rule: a temp file left by a crash mid-write goes."""

    def crash(file, *args, **kwargs):
        file.write(b"RIFF half")
        raise KeyboardInterrupt  # the process dies here; pretend the finally never ran

    monkeypatch.setattr(sf, "write", crash)
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)
    with pytest.raises(KeyboardInterrupt):
        write_audio_new(tmp_path / "take.wav", tone(), 48000, 24, "wav")
    monkeypatch.undo()
    left = leftovers(tmp_path)
    assert len(left) == 1
    assert remove_partials(tmp_path) == left and leftovers(tmp_path) == []


def test_file_sha256_matches_hashlib(tmp_path):
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- publishing without hard links

NO_LINK_ERRNOS = sorted({errno.EPERM, errno.EACCES, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV, errno.EMLINK})


def no_hard_links(monkeypatch, code: int) -> list:
    """os.link fails as it does on a filesystem without hard links; returns the calls made."""
    calls = []

    def link(src, dst, *args, **kwargs):
        calls.append(dst)
        raise OSError(code, os.strerror(code), str(src), None, str(dst))

    monkeypatch.setattr(files.os, "link", link)
    return calls


def assert_published_whole_and_never_overwritten(folder: Path) -> None:
    path = folder / "take.wav"
    x = tone(level=0.25)
    write_audio_new(path, x, 48000, 24, "wav")
    y, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_allclose(y.T, x, atol=2.0**-23)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_audio_new(path, tone(level=0.9), 48000, 16, "wav")
    write_json_new(folder / "take.json", {"take": 1})
    with pytest.raises(FileExistsError):
        write_json_new(folder / "take.json", {"take": 2})
    assert path.read_bytes() == before and json.loads((folder / "take.json").read_text()) == {"take": 1}
    assert leftovers(folder) == []


@pytest.mark.parametrize("code", NO_LINK_ERRNOS, ids=[errno.errorcode[c] for c in NO_LINK_ERRNOS])
def test_without_hard_links_publishing_falls_back_to_a_rename_that_never_replaces(tmp_path, monkeypatch, code):
    calls = no_hard_links(monkeypatch, code)
    assert_published_whole_and_never_overwritten(tmp_path)
    assert calls  # the link really was tried and refused


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP], ids=["EPERM", "EOPNOTSUPP"])
def test_without_hard_links_or_a_no_replace_rename_the_last_resort_still_never_replaces(tmp_path, monkeypatch, code):
    no_hard_links(monkeypatch, code)
    monkeypatch.setattr(files, "_rename_noreplace", lambda src, dst: False)  # FUSE FAT: renameat2 flags refused
    assert_published_whole_and_never_overwritten(tmp_path)


@pytest.mark.parametrize("method", ["link", "rename-noreplace", "checked-rename"])
def test_place_new_refuses_a_target_that_appeared_after_the_early_check(tmp_path, monkeypatch, method):
    if method != "link":
        no_hard_links(monkeypatch, errno.EPERM)
    if method == "checked-rename":
        monkeypatch.setattr(files, "_rename_noreplace", lambda src, dst: False)
    if method == "rename-noreplace" and files._noreplace_call() is None:
        pytest.skip("no renameat2/renamex_np on this platform")
    tmp, target = tmp_path / ".t.wav.0123456789ab.partial", tmp_path / "t.wav"
    tmp.write_bytes(b"new take")
    target.write_bytes(b"someone else's file")
    with pytest.raises(FileExistsError):
        files.place_new(tmp, target)
    assert target.read_bytes() == b"someone else's file" and tmp.read_bytes() == b"new take"
    target.unlink()
    assert files.place_new(tmp, target) == method
    assert target.read_bytes() == b"new take"


def test_a_link_failure_that_is_not_about_hard_links_is_reported_and_leaves_nothing(tmp_path, monkeypatch):
    no_hard_links(monkeypatch, errno.ENOSPC)
    with pytest.raises(OSError) as err:
        write_audio_new(tmp_path / "take.wav", tone(), 48000, 24, "wav")
    assert err.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def _mount_image(kind: str, image: Path, mount: Path, run) -> list:
    """Mount a fresh FAT or exFAT image; returns the commands that undo it, or skips."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem image needs root")
    if kind == "vfat":  # the kernel's own driver (link: EPERM, renameat2 NOREPLACE supported)
        if not shutil.which("mkfs.vfat") or run("mkfs.vfat", str(image)).returncode != 0:
            pytest.skip("mkfs.vfat is not installed (dosfstools)")
        if run("mount", "-o", "loop", "-t", "vfat", str(image), str(mount)).returncode != 0:
            pytest.skip("the kernel cannot mount vfat here")
        return [("umount", str(mount))]
    # exFAT through FUSE (link: EPERM, renameat2 flags: EINVAL, so the last resort publishes)
    if not all(shutil.which(t) for t in ("mkfs.exfat", "mount.exfat-fuse", "losetup", "fusermount")) or not os.path.exists("/dev/fuse"):
        pytest.skip("needs mkfs.exfat, mount.exfat-fuse, losetup and /dev/fuse (exfatprogs, exfat-fuse)")
    if run("mkfs.exfat", str(image)).returncode != 0:
        pytest.skip("mkfs.exfat failed")
    loop = run("losetup", "-f", "--show", str(image))
    if loop.returncode != 0:
        pytest.skip("no loop device available")
    device = loop.stdout.decode().strip()
    if run("mount.exfat-fuse", device, str(mount)).returncode != 0:
        run("losetup", "-d", device)
        pytest.skip("cannot mount exFAT through FUSE here")
    return [("fusermount", "-u", str(mount)), ("losetup", "-d", device)]


@pytest.fixture(params=["vfat", "exfat"])
def fat_drive(request, tmp_path):
    """A real FAT or exFAT filesystem, as on a session drive; skipped where mounting is not allowed."""
    image, mount = tmp_path / "drive.img", tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, timeout=60)  # noqa: E731
    undo = _mount_image(request.param, image, mount, run)
    try:
        yield mount
    finally:
        for cmd in undo:
            run(*cmd)


def test_publishing_on_a_real_fat_filesystem(fat_drive):
    probe = fat_drive / "probe"
    probe.write_bytes(b"x")
    with pytest.raises(OSError) as err:
        os.link(probe, fat_drive / "probe2")  # what the fallback is for
    assert err.value.errno in files.NO_HARD_LINKS
    assert_published_whole_and_never_overwritten(fat_drive / "renders")
