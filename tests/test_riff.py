"""WAV chunks: added around soundfile's audio without touching a sample, RF64 past 4 GiB, and a
chunk reader that bad files cannot crash, hang or lead out of bounds."""

from __future__ import annotations

import io
import random
import struct

import numpy as np
import pytest
import soundfile as sf
import wavinfo

from host.errors import InputError
from host.output import riff
from host.output.riff import Chunk, carried_chunks, container_for, read_layout, write_wav

SUBTYPE_DTYPE = {"PCM_16": "int16", "PCM_24": "int32", "PCM_32": "int32", "FLOAT": "float32", "DOUBLE": "float64"}


def walk(blob: bytes) -> list[tuple[bytes, int, bytes]]:
    """An independent, spec-literal chunk walk for the tests: (id, payload offset, payload)."""
    assert blob[:4] in (b"RIFF", b"RF64") and blob[8:12] == b"WAVE"
    out, pos = [], 12
    big = {}
    while pos + 8 <= len(blob):
        cid, size = blob[pos : pos + 4], struct.unpack("<I", blob[pos + 4 : pos + 8])[0]
        if cid == b"ds64":
            riff_size, data_size, _frames, _n = struct.unpack("<QQQI", blob[pos + 8 : pos + 36])
            big[b"data"] = data_size
        if size == 0xFFFFFFFF:
            size = big[cid]
        out.append((cid, pos + 8, blob[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    assert pos == len(blob), "chunks must tile the file exactly, pad bytes included"
    return out


def soundfile_wav(frames: int = 1001, channels: int = 2, subtype: str = "PCM_24", rate: int = 48000, fmt: str = "WAV") -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(frames * channels)
    x = rng.uniform(-0.9, 0.9, (frames, channels))
    buf = io.BytesIO()
    sf.write(buf, x, rate, subtype=subtype, format=fmt)
    return buf.getvalue(), x


def rewrite(src: bytes, chunks=(), fmt=None) -> bytes:
    out = io.BytesIO()
    write_wav(out, io.BytesIO(src), chunks, fmt=fmt)
    return out.getvalue()


def read_native(blob: bytes, subtype: str) -> np.ndarray:
    data, _ = sf.read(io.BytesIO(blob), dtype=SUBTYPE_DTYPE[subtype], always_2d=True)
    return data


META = [Chunk(b"bext", b"A" * 602 + b"history\r\n\0"), Chunk(b"iXML", b"<BWFXML><PROJECT>p</PROJECT></BWFXML>\n"), Chunk(b"ABCD", b"odd")]


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize("subtype", list(SUBTYPE_DTYPE))
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_added_chunks_leave_every_sample_bit_identical(subtype, channels):
    src, _ = soundfile_wav(frames=1001, channels=channels, subtype=subtype)  # odd frames: odd 24-bit mono data
    out = rewrite(src, META)
    assert struct.unpack("<I", out[4:8])[0] == len(out) - 8  # the RIFF size is right
    before, after = dict((c, d) for c, _, d in walk(src)), walk(out)
    ids = [c for c, _, _ in after]
    assert ids.index(b"fmt ") < ids.index(b"bext") < ids.index(b"iXML") < ids.index(b"ABCD") < ids.index(b"data")
    assert dict((c, d) for c, _, d in after)[b"data"] == before[b"data"]  # the audio bytes themselves
    assert sf.info(io.BytesIO(out)).subtype == subtype
    np.testing.assert_array_equal(read_native(out, subtype), read_native(src, subtype))
    reader = wavinfo.WavInfoReader(io.BytesIO(out))  # an independent reader finds the chunks
    assert reader.bext.coding_history == "history\r\n" and reader.ixml.project == "p"
    assert reader.data.frame_count == 1001


def test_odd_sized_chunks_get_a_pad_byte_and_read_back_whole(tmp_path):
    src, x = soundfile_wav(frames=333, channels=1, subtype="PCM_24")  # 999 data bytes
    chunks = [Chunk(b"odd1", b"abc"), Chunk(b"zero", b""), Chunk(b"odd2", b"12345")]
    out = rewrite(src, chunks)
    for cid, offset, payload in walk(out):
        assert (offset - 8) % 2 == 0, f"chunk {cid!r} starts at an odd offset"
    path = tmp_path / "odd.wav"
    path.write_bytes(out)
    assert [(c.id, c.data) for c in carried_chunks(path)] == [(c.id, c.data) for c in chunks]
    np.testing.assert_array_equal(sf.read(path, dtype="int32", always_2d=True)[0], read_native(src, "PCM_24"))
    assert wavinfo.WavInfoReader(str(path)).data.byte_count == 999


def test_a_given_chunk_replaces_the_sources_chunk_of_its_kind():
    src, _ = soundfile_wav(subtype="FLOAT")  # libsndfile writes fact and PEAK
    once = rewrite(src, [Chunk(b"bext", b"1" * 602), Chunk(b"LIST", b"INFOxxxx")])
    twice = rewrite(once, [Chunk(b"bext", b"2" * 602), Chunk(b"LIST", b"adtlyyyy")])
    ids = [(c, d[:4]) for c, _, d in walk(twice)]
    assert ids.count((b"bext", b"2222")) == 1 and (b"bext", b"1111") not in ids
    assert (b"LIST", b"INFO") in ids and (b"LIST", b"adtl") in ids  # LIST kinds differ by list type
    assert [c for c, _ in ids].count(b"PEAK") == 1


def test_refuses_duplicate_or_container_chunks():
    src, _ = soundfile_wav()
    with pytest.raises(ValueError, match="two chunks"):
        rewrite(src, [Chunk(b"bext", b""), Chunk(b"bext", b"")])
    for cid in (b"fmt ", b"data", b"ds64"):
        with pytest.raises(ValueError, match="container"):
            rewrite(src, [Chunk(cid, b"")])
    with pytest.raises(ValueError):
        Chunk(b"ab\x00d", b"")


def test_an_inputs_extensible_fmt_is_kept_when_it_describes_the_same_samples():
    src, _ = soundfile_wav(channels=2, subtype="PCM_24")
    guid_pcm = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    extensible = struct.pack("<HHIIHHHHI", 0xFFFE, 2, 48000, 48000 * 6, 6, 24, 22, 24, 0x3) + guid_pcm
    out = rewrite(src, fmt=extensible)
    assert dict((c, d) for c, _, d in walk(out))[b"fmt "] == extensible
    np.testing.assert_array_equal(read_native(out, "PCM_24"), read_native(src, "PCM_24"))
    other_rate = struct.pack("<HHIIHHHHI", 0xFFFE, 2, 44100, 44100 * 6, 6, 24, 22, 24, 0x3) + guid_pcm
    out = rewrite(src, fmt=other_rate)
    assert dict((c, d) for c, _, d in walk(out))[b"fmt "] == dict((c, d) for c, _, d in walk(src))[b"fmt "]


def test_past_4_gib_the_file_is_rf64(monkeypatch):
    # A real 4 GiB file is too much for a test machine: lower the limit the writer checks.
    src, _ = soundfile_wav(frames=2000, channels=2, subtype="PCM_16")  # 8000 data bytes
    monkeypatch.setattr(riff, "RIFF_LIMIT", 4000)
    out = rewrite(src, META)
    assert out[:4] == b"RF64" and out[4:8] == b"\xff\xff\xff\xff"
    chunks = walk(out)
    ids = [c for c, _, _ in chunks]
    assert ids[0] == b"ds64"
    # libsndfile skips RF64 chunks without their pad byte: the odd-sized one goes after the audio
    assert ids.index(b"bext") < ids.index(b"data") < ids.index(b"ABCD")
    riff_size, data_size, frames, _ = struct.unpack("<QQQI", chunks[0][2][:28])
    assert (riff_size, data_size, frames) == (len(out) - 8, 8000, 2000)
    np.testing.assert_array_equal(read_native(out, "PCM_16"), read_native(src, "PCM_16"))
    reader = wavinfo.WavInfoReader(io.BytesIO(out))
    assert reader.ixml.project == "p" and reader.data.frame_count == 2000
    layout = read_layout(io.BytesIO(out))
    assert layout.form == b"RF64" and layout.sample_count == 2000 and layout.data.size == 8000


def test_an_rf64_source_that_fits_becomes_plain_riff():
    src, _ = soundfile_wav(subtype="PCM_24", fmt="RF64")
    assert src[:4] == b"RF64"
    out = rewrite(src, META)
    assert out[:4] == b"RIFF" and b"ds64" not in [c for c, _, _ in walk(out)]
    np.testing.assert_array_equal(read_native(out, "PCM_24"), read_native(src, "PCM_24"))


def test_container_for_asks_soundfile_for_rf64_only_when_needed():
    assert container_for(10 * 2**20) == "WAV"
    assert container_for(2**32) == "RF64"
    assert container_for(2**32 - 2**19) == "RF64"  # no room left for the metadata chunks


# --------------------------------------------------------------------------- reading bad files


def chunk(cid: bytes, payload: bytes, size: int | None = None, pad: bool = True) -> bytes:
    n = len(payload) if size is None else size
    return cid + struct.pack("<I", n) + payload + (b"\0" if pad and len(payload) % 2 else b"")


FMT = chunk(b"fmt ", struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16))
DATA = chunk(b"data", b"\x01\x00" * 10)


def riff_file(body: bytes, size: int | None = None, form: bytes = b"RIFF") -> bytes:
    return form + struct.pack("<I", len(body) + 4 if size is None else size) + b"WAVE" + body


CASES = {
    # name: (bytes, "ok" | "error")
    "empty": (b"", "error"),
    "three bytes": (b"RIF", "error"),
    "header cut": (b"RIFF\x10\x00\x00\x00WA", "error"),
    "not WAVE": (b"RIFF\x04\x00\x00\x00AVI " + FMT + DATA, "error"),
    "big-endian RIFX": (b"RIFX\x00\x00\x00\x04WAVE" + FMT + DATA, "error"),
    "no chunks": (riff_file(b""), "error"),
    "no data": (riff_file(FMT), "error"),
    "no fmt": (riff_file(DATA), "error"),
    "fmt past the end": (riff_file(chunk(b"fmt ", b"\0" * 16, size=4000) + DATA), "error"),
    "data past the end": (riff_file(FMT + chunk(b"data", b"\0" * 20, size=10**9)), "ok"),
    "metadata past the end after data": (riff_file(FMT + DATA + chunk(b"bext", b"x" * 10, size=10**6)), "ok"),
    "unknown size on a metadata chunk": (riff_file(chunk(b"bext", b"", size=0xFFFFFFFF) + FMT + DATA), "error"),
    "unknown size on data": (riff_file(FMT + chunk(b"data", b"\0" * 20, size=0xFFFFFFFF)), "ok"),
    "zero-length chunks": (riff_file(chunk(b"a   ", b"") * 50 + FMT + DATA), "ok"),
    "truncated trailing header": (riff_file(FMT + DATA) + b"LIST\x10\x00", "ok"),
    "riff size zero": (riff_file(FMT + DATA, size=0), "ok"),
    "riff size huge": (riff_file(FMT + DATA, size=0xFFFFFFF0), "ok"),
    "riff size unknown": (riff_file(FMT + DATA, size=0xFFFFFFFF), "ok"),
    "riff size smaller than its chunks": (riff_file(FMT + DATA, size=20), "ok"),
    "garbage after the riff": (riff_file(FMT + DATA) + b"TAGgarbage-after-the-riff" * 3, "ok"),
    "odd chunk without its pad byte": (riff_file(FMT + chunk(b"odd ", b"abc", pad=False) + DATA), "ok"),
    "binary id before data": (riff_file(FMT + b"\x00\x01\x02\x03\x04\x00\x00\x00abcd" + DATA), "error"),
    "binary id after data": (riff_file(FMT + DATA + b"\xff\xfe\xfd\xfc\x04\x00\x00\x00abcd"), "ok"),
    "too many chunks": (riff_file(chunk(b"a   ", b"") * (riff.MAX_CHUNKS + 1) + FMT + DATA), "error"),
    "rf64 without ds64": (riff_file(FMT + DATA, form=b"RF64"), "error"),
    "rf64 ds64 too short": (riff_file(chunk(b"ds64", b"\0" * 12) + FMT + DATA, form=b"RF64"), "error"),
    "rf64 table length lies": (
        riff_file(chunk(b"ds64", struct.pack("<QQQI", 60, 20, 10, 2**31)) + FMT + chunk(b"data", b"\0" * 20, size=0xFFFFFFFF), form=b"RF64"),
        "ok",
    ),
    "rf64 data larger than the file": (
        riff_file(chunk(b"ds64", struct.pack("<QQQI", 2**40, 2**40, 2**39, 0)) + FMT + chunk(b"data", b"\0" * 20, size=0xFFFFFFFF), form=b"RF64"),
        "ok",
    ),
}


def check_bounds(blob: bytes) -> None:
    """Read ``blob``: either one InputError, or a layout that lies wholly inside the file."""
    try:
        layout = read_layout(io.BytesIO(blob), "fuzz.wav")
    except InputError as err:
        assert str(err).startswith("fuzz.wav: ") and "\n" not in str(err)
        return
    last = 12
    for ref in layout.chunks:
        assert last <= ref.offset - 8 and ref.offset + ref.size <= len(blob)
        last = ref.offset + ref.size
    assert layout.find(b"fmt ") and layout.find(b"data")


@pytest.mark.parametrize("name", list(CASES))
def test_structured_bad_files(name, tmp_path):
    blob, expect = CASES[name]
    if expect == "error":
        with pytest.raises(InputError) as err:
            read_layout(io.BytesIO(blob), "bad.wav")
        assert str(err.value).startswith("bad.wav: ")
    else:
        layout = read_layout(io.BytesIO(blob), "bad.wav")
        assert layout.data.offset + layout.data.size <= len(blob)
    check_bounds(blob)
    path = tmp_path / "bad.wav"  # the path-level reader too: an InputError or the chunks, nothing else
    path.write_bytes(blob)
    try:
        chunks = carried_chunks(path)
    except InputError:
        assert expect == "error"
    else:
        assert expect == "ok" and all(isinstance(c, Chunk) for c in chunks)


def test_the_reader_clamps_a_data_chunk_the_file_cannot_hold():
    blob = CASES["data past the end"][0]
    layout = read_layout(io.BytesIO(blob))
    assert layout.data.size == 20 and "data chunk claims" in layout.damaged


def test_the_reader_finds_chunks_after_a_missing_pad_byte():
    layout = read_layout(io.BytesIO(CASES["odd chunk without its pad byte"][0]))
    assert [c.id for c in layout.chunks] == [b"fmt ", b"odd ", b"data"]


def bwf_like() -> bytes:
    body = chunk(b"bext", b"D" * 602 + b"A=PCM\r\n") + chunk(b"iXML", b"<BWFXML/>") + FMT
    body += chunk(b"LIST", b"INFOINAM" + struct.pack("<I", 5) + b"name\0\0") + chunk(b"abc ", b"xyz") + DATA
    return riff_file(body)


def test_every_truncation_of_a_file_is_safe():
    blob = bwf_like()
    for n in range(len(blob) + 1):
        check_bounds(blob[:n])


def test_random_damage_to_headers_is_safe():
    blob = bytearray(bwf_like())
    headers = [0, 4, 12, 16]
    headers += [off - 8 for _, off, _ in walk(bytes(blob))] + [off - 4 for _, off, _ in walk(bytes(blob))]
    rnd = random.Random(13)
    for _ in range(3000):
        damaged = bytearray(blob)
        for _ in range(rnd.randint(1, 3)):
            at = rnd.choice(headers) + rnd.randint(0, 3)
            damaged[at] = rnd.choice([0x00, 0xFF, 0x7F, 0x80, 0x01, rnd.randrange(256)])
        check_bounds(bytes(damaged))
