"""Reading a stem at the moment of use: confined, from one descriptor, never blocking, whole files only."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host.config import paths
from host.errors import InputError
from host.intake.audio import read_stem, read_stem_confined
from host.intake.containers import container_problem
from host.output.files import file_sha256
from tests.conftest import write_tone


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "proj"
    (root / "stems").mkdir(parents=True)
    return root


def encoded(fmt: str, subtype: str, seconds: float = 1.0, rate: int = 44100, channels: int = 2) -> bytes:
    rng = np.random.default_rng(3)
    x = 0.3 * rng.standard_normal((int(seconds * rate), channels))
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def refused(path, roots, match: str, **kwargs) -> str:
    with pytest.raises(InputError) as err:
        read_stem_confined(path, roots, **kwargs)
    line = str(err.value)
    assert "\n" not in line and match in line, line
    return line


@pytest.mark.parametrize(
    "fmt, subtype",
    [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_24"), ("AIFF", "PCM_24"), ("RF64", "PCM_24"), ("W64", "PCM_16"), ("OGG", "VORBIS")],
)
def test_a_whole_stem_reads_exactly_with_the_hash_of_the_bytes_it_came_from(project, fmt, subtype):
    path = project / "stems" / f"take.{fmt.lower()}"
    path.write_bytes(encoded(fmt, subtype))
    stem, digest = read_stem_confined(path, [project])
    expected, rate = sf.read(str(path), dtype="float64", always_2d=True)
    assert stem.rate == rate == 44100 and stem.audio.dtype == np.float64
    assert np.array_equal(stem.audio, expected.T)  # exact, as read_stem gives it
    assert digest == file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert np.array_equal(read_stem(path).audio, stem.audio)


def test_a_symlink_swapped_in_after_the_request_was_accepted_is_not_read(project, tmp_path):
    """The reported attack: an inpaint of victim.wav accepted, then victim.wav became ../secret.wav."""
    victim = project / "stems" / "victim.wav"
    write_tone(victim, 0.5, 16000)
    secret = tmp_path / "secret.wav"
    write_tone(secret, 0.5, 16000, freq=1000.0)
    accepted = paths.confine("stems/victim.wav", [project], "/audiohost/inpaint", base=project)  # the check at the door
    victim.unlink()
    victim.symlink_to(secret)
    refused(accepted, [project], "outside the project roots")
    (project / "stems" / "inside.wav").write_bytes(secret.read_bytes())  # a symlink that stays inside is fine
    victim.unlink()
    victim.symlink_to(project / "stems" / "inside.wav")
    assert read_stem_confined(accepted, [project])[0].audio.shape[1] == 8000


def test_a_symlink_swapped_in_between_the_check_and_the_open_is_not_followed(project, tmp_path, monkeypatch):
    """The race inside the renderer itself: confined, then swapped before the open."""
    victim = project / "stems" / "victim.wav"
    write_tone(victim, 0.5, 16000)
    secret = tmp_path / "secret.wav"
    write_tone(secret, 0.5, 16000, freq=1000.0)
    real_confine = paths.confine
    swaps = []

    def confine_then_swap(*args, **kwargs):
        resolved = real_confine(*args, **kwargs)
        if victim.exists() and not victim.is_symlink():
            victim.unlink()
            victim.symlink_to(secret)
            swaps.append(resolved)
        return resolved

    monkeypatch.setattr(paths, "confine", confine_then_swap)
    refused(victim, [project], "outside the project roots")  # the O_NOFOLLOW open saw the swap; confined again, it is out
    assert swaps == [victim]


def test_a_folder_on_the_path_swapped_for_a_symlink_is_not_followed(project, tmp_path, monkeypatch):
    (project / "stems" / "victim.wav").unlink(missing_ok=True)
    write_tone(project / "stems" / "victim.wav", 0.5, 16000)
    outside = tmp_path / "outside"
    write_tone(outside / "victim.wav", 0.5, 16000, freq=1000.0)
    real_confine = paths.confine
    calls = []

    def confine_then_swap_folder(*args, **kwargs):
        resolved = real_confine(*args, **kwargs)
        calls.append(resolved)
        stems = project / "stems"
        if not stems.is_symlink():
            stems.rename(project / "stems-old")
            stems.symlink_to(outside, target_is_directory=True)
        return resolved

    monkeypatch.setattr(paths, "confine", confine_then_swap_folder)
    refused(project / "stems" / "victim.wav", [project], "outside the project roots")
    # the first open refused to walk through the new symlink; confined again, the path is out
    assert calls == [project / "stems" / "victim.wav"]


def test_a_fifo_is_refused_at_once_and_never_blocks(project):
    fifo = project / "stems" / "pipe.wav"
    os.mkfifo(fifo)
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(pytest.raises(InputError, read_stem_confined, fifo, [project])), daemon=True)
    t.start()
    t.join(timeout=20)  # generous for a loaded machine; a blocking open would never return
    assert not t.is_alive(), "reading a FIFO blocked"
    assert "a FIFO (named pipe), not a regular file" in str(outcome[0].value)
    t = threading.Thread(target=lambda: outcome.append(pytest.raises(InputError, read_stem, fifo)), daemon=True)
    t.start()
    t.join(timeout=20)
    assert not t.is_alive() and "not a regular file" in str(outcome[1].value)
    with pytest.raises(OSError):
        file_sha256(fifo)  # the hash used for dedupe and the cache does not block either


def test_folders_and_devices_are_refused(project):
    (project / "stems" / "folder.wav").mkdir()
    refused(project / "stems" / "folder.wav", [project], "is a folder, not a regular file")
    refused(Path("/dev/zero"), [Path("/dev")], "is a device, not a regular file")  # even inside a root


def test_a_file_that_vanishes_is_one_line(project):
    refused(project / "stems" / "gone.wav", [project], "is not there any more")


def test_a_wav_truncated_mid_data_is_incomplete(project):
    data = encoded("WAV", "PCM_24")
    for cut in (len(data) - 1, len(data) - 3000, len(data) // 2, 50):
        path = project / "stems" / f"cut{cut}.wav"
        path.write_bytes(data[:cut])
        refused(path, [project], "incomplete (still being written?)")
    # libsndfile itself happily reads the truncated file as a shorter one: that is why we check
    assert sf.info(str(project / "stems" / f"cut{len(data) // 2}.wav")).frames > 0


def test_a_wav_whose_riff_or_data_size_disagrees_with_the_file_is_incomplete(project):
    data = bytearray(encoded("WAV", "PCM_16"))
    lying_riff = bytearray(data)
    lying_riff[4:8] = struct.pack("<I", len(data) * 2)
    placeholder = bytearray(data)  # what a DAW writes first and patches when it finishes
    placeholder[4:8] = struct.pack("<I", 0)
    data_at = bytes(data).index(b"data")
    lying_data = bytearray(data)
    lying_data[data_at + 4 : data_at + 8] = struct.pack("<I", 0xFFFFFFFF)
    short_riff = bytearray(data)
    short_riff[4:8] = struct.pack("<I", len(data) - 8 - 1000)
    for name, content in [("lying-riff", lying_riff), ("placeholder", placeholder), ("lying-data", lying_data), ("short-riff", short_riff)]:
        path = project / "stems" / f"{name}.wav"
        path.write_bytes(bytes(content))
        refused(path, [project], "incomplete (still being written?)")


def test_an_aiff_cut_short_is_incomplete(project):
    data = encoded("AIFF", "PCM_16")
    path = project / "stems" / "cut.aiff"
    path.write_bytes(data[:-500])
    refused(path, [project], "incomplete (still being written?)")


def test_a_flac_that_ends_mid_frame_is_incomplete(project):
    data = encoded("FLAC", "PCM_16", seconds=2.0)
    for cut in (len(data) - 7, len(data) - 2000, len(data) // 2):
        path = project / "stems" / f"cut{cut}.flac"
        path.write_bytes(data[:cut])
        line = refused(path, [project], "incomplete (still being written?)")
        assert "frames" in line


def test_a_flac_whose_streaminfo_total_disagrees_is_incomplete(project):
    data = bytearray(encoded("FLAC", "PCM_16"))
    (packed,) = struct.unpack(">Q", data[18:26])
    total = packed & ((1 << 36) - 1)
    data[18:26] = struct.pack(">Q", (packed & ~((1 << 36) - 1)) | (total + 4096))
    path = project / "stems" / "lying.flac"
    path.write_bytes(bytes(data))
    refused(path, [project], "incomplete (still being written?)")


def test_a_stem_that_grows_while_it_is_read_is_incomplete(project, monkeypatch):
    path = project / "stems" / "growing.wav"
    path.write_bytes(encoded("WAV", "PCM_16"))
    real_read = os.read
    grown = []

    def read_then_append(fd, n):
        chunk = real_read(fd, n)
        if not grown:
            with open(path, "ab") as f:
                f.write(b"\0" * 4096)
            grown.append(True)
        return chunk

    monkeypatch.setattr(os, "read", read_then_append)
    refused(path, [project], "changed while being read")


def test_limits_and_bad_content_keep_their_one_line_errors(project):
    path = project / "stems" / "long.wav"
    write_tone(path, 3.0, 8000)
    refused(path, [project], "is 3.0 s long; the limit is 2 s", max_seconds=2)
    refused(path, [project], "the limit is 0 MB", max_bytes=1000)
    junk = project / "stems" / "junk.wav"
    junk.write_bytes(b"RIFF" + os.urandom(3000))
    refused(junk, [project], "")
    empty = project / "stems" / "empty.wav"
    empty.write_bytes(b"")
    refused(empty, [project], "is empty (0 bytes)")
    text = project / "stems" / "notes.wav"
    text.write_text("just some text, not audio\n" * 20)
    refused(text, [project], "not a readable audio file")


def test_container_checks_accept_every_whole_file_libsndfile_writes():
    for fmt, subtype in [("WAV", "PCM_16"), ("WAV", "PCM_U8"), ("WAVEX", "PCM_24"), ("RF64", "FLOAT"), ("W64", "PCM_24"), ("AIFF", "PCM_16"), ("AIFF", "PCM_S8"), ("FLAC", "PCM_16"), ("CAF", "PCM_16")]:
        for frames in (1, 2, 3, 4410):
            buf = io.BytesIO()
            sf.write(buf, np.zeros((frames, 1)), 44100, format=fmt, subtype=subtype)
            assert container_problem(buf.getvalue()) is None, (fmt, subtype, frames)


def test_container_checks_never_crash_on_any_cut_of_a_whole_file():
    """Every prefix of a real file: an answer (usually "incomplete"), never an exception."""
    for fmt, subtype in [("WAV", "PCM_16"), ("RF64", "PCM_16"), ("AIFF", "PCM_16"), ("FLAC", "PCM_16"), ("W64", "PCM_16")]:
        data = encoded(fmt, subtype, seconds=0.05, channels=1)
        for cut in range(0, len(data) - 1, 7):
            problem = container_problem(data[:cut])
            if fmt != "FLAC" and cut >= 16:  # from where the container is recognisable
                assert problem is not None and problem.startswith("incomplete"), (fmt, cut)
    started = time.monotonic()
    rng = np.random.default_rng(11)
    for _ in range(2000):  # headers that claim anything at all
        head = rng.choice([b"RIFF", b"RF64", b"FORM", b"fLaC", b"RIFX"])
        container_problem(head + rng.bytes(int(rng.integers(0, 120))))
    assert time.monotonic() - started < 60
