"""Takes carry their metadata inside the file: bext and iXML (read back with wavinfo, an
independent reader), FLAC Vorbis comments (read back with mutagen), smpl loops, and an inpainted
take keeps every chunk its input had."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mutagen.flac
import numpy as np
import pytest
import soundfile as sf
import wavinfo

from host.errors import InputError
from host.output.files import PARTIAL_SUFFIX, write_audio_new
from host.output.metadata import (
    Carried,
    TakeMetadata,
    coding_history_line,
    input_time_reference,
    read_carried,
    smpl_chunk,
)
from host.output.riff import Chunk

WHEN = datetime(2026, 3, 14, 9, 26, 53, tzinfo=timezone.utc)
LOCAL = WHEN.astimezone()  # bext holds wall-clock time where the take was rendered
SETTINGS = {
    "seed": 1234,
    "steps": 25,
    "guidance": 3.0,
    "scheduler": "dpm",
    "model": "cvssp/audioldm-s-full-v2",
    "model_revision": "abc123",
    "preset": "door-wood-creak",
}


def meta(**changes) -> TakeMetadata:
    values = dict(
        take_id="5f0c6a1e9b2d4c3e8a7f6b5d4c3e2a1f",
        prompt="an old wooden door slowly creaking open, squeaky hinges, indoors",
        project="demo",
        scene="door-slam",
        take=2,
        origination=WHEN,
        sample_rate=48000,
        channels=1,
        coding_history=coding_history_line(48000, 24, 1, "audiohost 0.1.0; model cvssp/audioldm-s-full-v2@abc123; chain HighpassFilter, Reverb"),
        settings=SETTINGS,
        loudness=-23.04,
        true_peak=-1.27,
    )
    values.update(changes)
    return TakeMetadata(**values)


def tone(channels: int = 1, frames: int = 4801, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (channels, frames))


def ixml_root(path: Path) -> ET.Element:
    return wavinfo.WavInfoReader(str(path)).ixml.raw_xml.getroot()


# --------------------------------------------------------------------------- bext and iXML


@pytest.mark.parametrize("bits", [16, 24, 32])
@pytest.mark.parametrize("channels", [1, 2])
def test_bext_and_ixml_read_back_with_wavinfo(tmp_path, bits, channels):
    m = meta(channels=channels, coding_history=coding_history_line(48000, bits, channels, "audiohost 0.1.0", bits == 32))
    x = tone(channels)
    path = tmp_path / "renders" / "door-slam_t02.wav"
    write_audio_new(path, x, 48000, bits, "wav", metadata=m)

    info = wavinfo.WavInfoReader(str(path))
    bext = info.bext
    assert bext.description == m.prompt
    assert bext.originator == "audiohost"
    assert bext.originator_ref == m.take_id
    assert bext.originator_date == LOCAL.strftime("%Y-%m-%d")
    assert bext.originator_time == LOCAL.strftime("%H:%M:%S")
    assert bext.time_reference == 0
    assert bext.version == 2
    assert bext.coding_history == m.coding_history + "\r\n"
    assert bext.coding_history.startswith(f"A=PCM,F=48000,W={bits},M={'mono' if channels == 1 else 'stereo'},T=audiohost 0.1.0")
    assert bext.loudness_value == pytest.approx(-23.04) and bext.max_true_peak == pytest.approx(-1.27)
    assert bext.loudness_range == pytest.approx(327.67)  # 0x7FFF: not computed

    ixml = info.ixml
    assert (ixml.project, ixml.scene, ixml.take) == ("demo", "door-slam", "2")
    root = ixml_root(path)
    assert root.findtext("NOTE") == m.prompt
    assert root.findtext("FILE_UID") == m.take_id
    assert root.findtext("TRACK_LIST/TRACK_COUNT") == str(channels)
    block = root.find("AUDIOHOST")
    assert {child.tag: child.text for child in block} == {
        "SEED": "1234", "STEPS": "25", "GUIDANCE": "3.0", "SCHEDULER": "dpm",
        "MODEL": "cvssp/audioldm-s-full-v2", "MODEL_REVISION": "abc123", "PRESET": "door-wood-creak",
    }

    y, rate = sf.read(path, dtype="float64", always_2d=True)  # still a plain, whole WAV
    assert rate == 48000 and y.shape == (4801, channels)
    np.testing.assert_allclose(y.T, x, atol=2.0 ** -(bits - 1) if bits < 32 else 1e-7)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(PARTIAL_SUFFIX)]


def test_same_audio_bytes_with_and_without_metadata(tmp_path):
    x = tone(2)
    write_audio_new(tmp_path / "plain.wav", x, 44100, 24, "wav")
    write_audio_new(tmp_path / "tagged.wav", x, 44100, 24, "wav", metadata=meta(channels=2, sample_rate=44100))
    plain, _ = sf.read(tmp_path / "plain.wav", dtype="int32")
    tagged, _ = sf.read(tmp_path / "tagged.wav", dtype="int32")
    np.testing.assert_array_equal(plain, tagged)


def test_a_long_prompt_is_cut_in_bext_and_whole_in_ixml(tmp_path):
    prompt = "a café door, " + "creaking very slowly in an empty old house with wooden floors and " * 6 + "the end"
    write_audio_new(tmp_path / "t.wav", tone(), 48000, 24, "wav", metadata=meta(prompt=prompt))
    description = wavinfo.WavInfoReader(str(tmp_path / "t.wav")).bext.description
    assert len(description.encode("ascii")) <= 256
    assert description.startswith("a cafe door, creaking very slowly") and description.endswith("...")
    assert prompt.replace("é", "e").startswith(description[:-3])  # cut at a word, accents folded
    assert ixml_root(tmp_path / "t.wav").findtext("NOTE") == prompt  # UTF-8, untouched


def test_control_characters_cannot_break_the_xml(tmp_path):
    prompt = "rain\x00 on\x07 a <roof> & \"tiles\"\nat night"
    write_audio_new(tmp_path / "t.wav", tone(), 48000, 16, "wav", metadata=meta(prompt=prompt, scene="a&b"))
    root = ixml_root(tmp_path / "t.wav")
    assert root.findtext("NOTE") == "rain on a <roof> & \"tiles\"\nat night" and root.findtext("SCENE") == "a&b"
    assert wavinfo.WavInfoReader(str(tmp_path / "t.wav")).bext.description == 'rain  on  a <roof> & "tiles" at night'


def test_a_time_reference_past_32_bits(tmp_path):
    tref = 23 * 3600 * 192000 + 17  # 23:00 at 192 kHz: more than 2**32 samples
    write_audio_new(tmp_path / "t.wav", tone(), 192000, 24, "wav", metadata=meta(sample_rate=192000, time_reference=tref))
    assert wavinfo.WavInfoReader(str(tmp_path / "t.wav")).bext.time_reference == tref
    speed = ixml_root(tmp_path / "t.wav").find("SPEED")
    hi, lo = int(speed.findtext("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI")), int(speed.findtext("TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO"))
    assert (hi << 32) + lo == tref and speed.findtext("TIMESTAMP_SAMPLE_RATE") == "192000"


def test_origination_is_local_wall_clock_time(tmp_path):
    naive = datetime(2026, 1, 2, 23, 59, 58)  # naive: already local
    write_audio_new(tmp_path / "t.wav", tone(), 48000, 16, "wav", metadata=meta(origination=naive))
    bext = wavinfo.WavInfoReader(str(tmp_path / "t.wav")).bext
    assert (bext.originator_date, bext.originator_time) == ("2026-01-02", "23:59:58")
    other_zone = WHEN.astimezone(timezone(timedelta(hours=-7)))  # the same instant, written the same
    write_audio_new(tmp_path / "u.wav", tone(), 48000, 16, "wav", metadata=meta(origination=other_zone))
    assert wavinfo.WavInfoReader(str(tmp_path / "u.wav")).bext.originator_time == LOCAL.strftime("%H:%M:%S")


def test_take_metadata_refuses_what_bext_cannot_hold():
    with pytest.raises(ValueError, match="take_id"):
        meta(take_id="x" * 33)
    with pytest.raises(ValueError, match="take_id"):
        meta(take_id="tâke")
    with pytest.raises(ValueError, match="one line"):
        meta(coding_history="A=PCM\r\nA=PCM")
    with pytest.raises(ValueError, match="64 bits"):
        meta(time_reference=2**64)


def test_coding_history_line_follows_r98():
    assert coding_history_line(44100, 16, 2, "audiohost 0.1.0, chain Reverb") == "A=PCM,F=44100,W=16,M=stereo,T=audiohost 0.1.0; chain Reverb"
    assert coding_history_line(48000, 32, 6, "x", float_samples=True) == "A=PCM,F=48000,W=32,T=x; 32-bit float; 6 channels"


# --------------------------------------------------------------------------- FLAC


@pytest.mark.parametrize("bits", [16, 24])
def test_flac_takes_carry_the_same_fields_as_vorbis_comments(tmp_path, bits):
    m = meta(channels=2, time_reference=48000 * 3600)
    x = tone(2)
    path = tmp_path / "t.flac"
    write_audio_new(path, x, 48000, bits, "flac", metadata=m)
    tags = mutagen.flac.FLAC(path).tags
    assert tags["DESCRIPTION"] == [m.prompt] and tags["NOTE"] == [m.prompt]
    assert tags["ORIGINATOR"] == ["audiohost"] and tags["ORIGINATOR_REFERENCE"] == [m.take_id]
    assert tags["ORIGINATION_DATE"] == [LOCAL.strftime("%Y-%m-%d")] and tags["ORIGINATION_TIME"] == [LOCAL.strftime("%H:%M:%S")]
    assert tags["TIME_REFERENCE"] == [str(48000 * 3600)] and tags["CODING_HISTORY"] == [m.coding_history]
    assert (tags["PROJECT"], tags["SCENE"], tags["TAKE"]) == (["demo"], ["door-slam"], ["2"])
    assert tags["AUDIOHOST_SEED"] == ["1234"] and tags["AUDIOHOST_MODEL_REVISION"] == ["abc123"]
    plain = tmp_path / "plain.flac"
    write_audio_new(plain, x, 48000, bits, "flac")
    np.testing.assert_array_equal(sf.read(path, dtype="int32")[0], sf.read(plain, dtype="int32")[0])
    assert input_time_reference(path, 48000) == 48000 * 3600  # and audiohost reads it back


def test_wav_chunks_are_refused_for_flac_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="cannot go into a flac"):
        write_audio_new(tmp_path / "t.flac", tone(), 48000, 24, "flac", chunks=[smpl_chunk(48000, 0, 10)])
    assert list(tmp_path.iterdir()) == []


def test_an_existing_take_is_never_overwritten_with_metadata(tmp_path):
    path = tmp_path / "t.wav"
    write_audio_new(path, tone(), 48000, 24, "wav", metadata=meta())
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_audio_new(path, tone(seed=9), 48000, 24, "wav", metadata=meta(take=3))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["t.wav"]


# --------------------------------------------------------------------------- smpl


def test_a_loop_reads_back_from_the_smpl_chunk(tmp_path):
    path = tmp_path / "loop.wav"
    write_audio_new(path, tone(frames=96000), 48000, 24, "wav", metadata=meta(), chunks=[smpl_chunk(48000, 1200, 96000, frames=96000)])
    blob = path.read_bytes()
    at = blob.index(b"smpl")
    size = struct.unpack("<I", blob[at + 4 : at + 8])[0]
    assert size == 36 + 24
    head = struct.unpack("<9I", blob[at + 8 : at + 44])
    manufacturer, product, period, unity, fraction, smpte_format, smpte_offset, loops, sampler_data = head
    assert (period, unity, fraction, loops, sampler_data) == (20833, 60, 0, 1, 0)  # 1e9/48000 ns, middle C
    cue, kind, start, end, tune, count = struct.unpack("<6I", blob[at + 44 : at + 68])
    assert (kind, start, end, count) == (0, 1200, 95999, 0)  # forward, inclusive last frame, forever
    loop = wavinfo.WavInfoReader(str(path)).smpl.to_dict()["loops"][0]
    assert (loop["loop_type_description"], loop["start_samples"], loop["end_samples"]) == ("FORWARD", 1200, 95999)
    assert sf.info(path).frames == 96000


@pytest.mark.parametrize("start, end, frames", [(10, 10, None), (-1, 5, None), (0, 101, 100), (5, 2, None)])
def test_a_loop_must_lie_inside_the_file(start, end, frames):
    with pytest.raises(ValueError):
        smpl_chunk(48000, start, end, frames=frames)


# --------------------------------------------------------------------------- carrying an input's chunks


def ck(cid: bytes, payload: bytes) -> bytes:
    return cid + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


INPUT_TREF = 48000 * (10 * 3600 + 2 * 60) + 480  # 10:02:00.010 at 48 kHz: past 2**32
INPUT_IXML = b"""<?xml version="1.0" encoding="UTF-8"?>
<BWFXML><IXML_VERSION>1.61</IXML_VERSION><PROJECT>Film</PROJECT><SCENE>12A</SCENE><TAKE>3</TAKE>
<TAPE>DAY04</TAPE><NOTE>plane overhead</NOTE><FILE_UID>REC0001</FILE_UID>
<SPEED><TIMECODE_RATE>25/1</TIMECODE_RATE></SPEED>
<TRACK_LIST><TRACK_COUNT>2</TRACK_COUNT><TRACK><CHANNEL_INDEX>1</CHANNEL_INDEX><NAME>Boom</NAME></TRACK>
<TRACK><CHANNEL_INDEX>2</CHANNEL_INDEX><NAME>Lav</NAME></TRACK></TRACK_LIST>
<STEINBERG><ATTR_LIST/></STEINBERG></BWFXML>"""


def bwf_input(path: Path, frames: int = 24000) -> tuple[np.ndarray, list[tuple[bytes, bytes]]]:
    """A field-recorder-like BWF, built by hand: 2 channels, 24-bit, many chunk kinds."""
    rng = np.random.default_rng(3)
    ints = rng.integers(-(2**23), 2**23, (frames, 2), dtype=np.int64)
    data = b"".join(int(v & 0xFFFFFF).to_bytes(3, "little") for v in ints.reshape(-1))
    bext = struct.pack(
        "<256s32s32s10s8sQH64s10s180s", b"Scene 12A take 3", b"SoundDevices", b"USID-REC0001", b"2025-11-02", b"10:02:00",
        INPUT_TREF, 1, b"\x0c\x13" + b"\x07" * 62, b"", b"",
    ) + b"A=PCM,F=48000,W=24,M=stereo,T=recorder\r\n"
    fmt = struct.pack("<HHIIHH", 1, 2, 48000, 48000 * 6, 6, 24)
    info = b"INFO" + ck(b"INAM", b"scene 12a\0") + ck(b"ICMT", b"odd!\0")
    cue = struct.pack("<I", 1) + struct.pack("<II4sIII", 1, 0, b"data", 0, 0, 12000)
    smpl = struct.pack("<9I", 0, 0, 20833, 60, 0, 0, 0, 0, 0)
    meta_chunks = [(b"bext", bext), (b"iXML", INPUT_IXML), (b"LIST", info), (b"cue ", cue), (b"smpl", smpl), (b"VNDR", b"odd vendor!")]
    body = ck(b"JUNK", b"\0" * 28) + ck(b"bext", bext) + ck(b"iXML", INPUT_IXML) + ck(b"fmt ", fmt)
    body += ck(b"LIST", info) + ck(b"cue ", cue) + ck(b"data", data) + ck(b"smpl", smpl) + ck(b"VNDR", b"odd vendor!")
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    return ints, meta_chunks


def chunk_list(blob: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 12
    while pos + 8 <= len(blob):
        cid, size = blob[pos : pos + 4], struct.unpack("<I", blob[pos + 4 : pos + 8])[0]
        out.append((cid, blob[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return out


def test_an_inpainted_take_keeps_every_chunk_its_input_had(tmp_path):
    source = tmp_path / "inpaint" / "dialog.wav"
    source.parent.mkdir()
    ints, input_chunks = bwf_input(source)
    carried = read_carried(source)
    assert carried.time_reference == INPUT_TREF and carried.sample_rate == 48000
    assert [(c.id, c.data) for c in carried.chunks] == input_chunks  # everything but JUNK, fmt and data

    audio, rate = sf.read(source, dtype="float64", always_2d=True)
    audio = audio.T.copy()
    audio[:, 10000:11000] = 0.25  # the "fill"
    m = meta(scene="dialog", channels=2, parent="dialog.wav", time_reference=carried.time_reference_at(48000))
    out = tmp_path / "renders" / "dialog_t01.wav"
    write_audio_new(out, audio, rate, 24, "wav", metadata=m, carried=carried)

    chunks = chunk_list(out.read_bytes())
    kept = [(cid, payload) for cid, payload in chunks if cid not in (b"fmt ", b"data", b"bext", b"iXML")]
    assert kept == [c for c in input_chunks if c[0] not in (b"bext", b"iXML")]  # byte for byte, in order

    bext = wavinfo.WavInfoReader(str(out)).bext
    assert bext.time_reference == INPUT_TREF  # a DAW puts the take back where the stem came from
    assert bext.description == m.prompt and bext.originator == "audiohost" and bext.originator_ref == m.take_id
    assert bext.coding_history == "A=PCM,F=48000,W=24,M=stereo,T=recorder\r\n" + m.coding_history + "\r\n"
    assert bext.umid == b"\0" * 64  # the take is new material

    root = ixml_root(out)
    assert (root.findtext("PROJECT"), root.findtext("SCENE"), root.findtext("TAKE"), root.findtext("TAPE")) == ("Film", "12A", "3", "DAY04")
    assert [t.findtext("NAME") for t in root.iter("TRACK")] == ["Boom", "Lav"]
    assert root.find("STEINBERG") is not None and root.findtext("SPEED/TIMECODE_RATE") == "25/1"
    assert root.findtext("NOTE") == m.prompt and root.findtext("FILE_UID") == m.take_id
    assert (root.findtext("HISTORY/PARENT_FILENAME"), root.findtext("HISTORY/PARENT_UID")) == ("dialog.wav", "REC0001")
    assert root.findtext("AUDIOHOST/SEED") == "1234"

    got, _ = sf.read(out, dtype="int32", always_2d=True)
    got = got >> 8  # 24-bit samples in the top of int32
    outside = np.r_[0:10000, 11000:ints.shape[0]]
    np.testing.assert_array_equal(got[outside], ints[outside])  # bit-identical outside the gap


def test_chunks_cannot_be_carried_into_a_take_at_another_rate(tmp_path):
    source = tmp_path / "in.wav"
    bwf_input(source, frames=100)
    with pytest.raises(ValueError, match="48000 Hz input"):
        write_audio_new(tmp_path / "out.wav", tone(), 44100, 24, "wav", metadata=meta(sample_rate=44100), carried=read_carried(source))
    assert not (tmp_path / "out.wav").exists()


def test_carried_chunks_without_take_metadata_are_kept_as_they_are(tmp_path):
    source = tmp_path / "in.wav"
    _, input_chunks = bwf_input(source, frames=1000)
    audio, rate = sf.read(source, dtype="float64", always_2d=True)
    write_audio_new(tmp_path / "out.wav", audio.T, rate, 24, "wav", carried=read_carried(source))
    assert [c for c in chunk_list((tmp_path / "out.wav").read_bytes()) if c[0] not in (b"fmt ", b"data")] == input_chunks


def test_a_broken_input_ixml_is_replaced_by_the_takes(tmp_path):
    for bad in (b"<BWFXML><PROJECT>unclosed", b'<!DOCTYPE x [<!ENTITY a "aaaa">]><BWFXML><NOTE>&a;</NOTE></BWFXML>', b"<OTHER/>"):
        carried = Carried(sample_rate=48000, chunks=(Chunk(b"iXML", bad),))
        out = tmp_path / f"t{len(bad)}.wav"
        write_audio_new(out, tone(), 48000, 16, "wav", metadata=meta(), carried=carried)
        root = ixml_root(out)
        assert root.findtext("PROJECT") == "demo" and root.findtext("NOTE") == meta().prompt


@pytest.mark.parametrize("length", [0, 9, 345, 346, 353, 601, 602])
def test_a_short_input_bext_still_merges(tmp_path, length):
    full = struct.pack("<256s32s32s10s8sQ", b"old", b"rec", b"ref", b"2025-01-01", b"00:00:00", 123456789) + b"\1" * 256
    carried = Carried(sample_rate=48000, chunks=(Chunk(b"bext", full[:length]),))
    out = tmp_path / "t.wav"
    write_audio_new(out, tone(), 48000, 24, "wav", metadata=meta(), carried=carried)
    bext = wavinfo.WavInfoReader(str(out)).bext
    assert bext.time_reference == (123456789 if length >= 346 else 0)  # read only where it is whole
    assert bext.description == meta().prompt and bext.version == 2


def test_input_time_reference_is_rescaled_to_the_takes_rate(tmp_path):
    source = tmp_path / "in.wav"
    bwf_input(source, frames=100)
    assert input_time_reference(source, 48000) == INPUT_TREF
    assert input_time_reference(source, 44100) == round(INPUT_TREF * 44100 / 48000)
    assert input_time_reference(source, 96000) == 2 * INPUT_TREF
    plain = tmp_path / "plain.wav"
    sf.write(plain, np.zeros(100), 48000, subtype="PCM_16")
    assert input_time_reference(plain, 48000) == 0
    ogg = tmp_path / "x.ogg"
    sf.write(ogg, np.zeros(4800), 48000, format="OGG")
    assert read_carried(ogg) == Carried()


def test_a_flac_inputs_comments_are_kept_and_ours_win(tmp_path):
    source = tmp_path / "in.flac"
    sf.write(source, np.zeros((4800, 1)), 44100, subtype="PCM_24")
    flac = mutagen.flac.FLAC(source)
    if flac.tags is None:
        flac.add_tags()
    flac.tags["ARTIST"] = "Field Recordist"
    flac.tags["TIME_REFERENCE"] = "441000"
    flac.tags["SCENE"] = "12A"
    flac.tags["DESCRIPTION"] = "old description"
    flac.save()
    carried = read_carried(source)
    assert carried.time_reference == 441000 and carried.sample_rate == 44100
    out = tmp_path / "out.flac"
    write_audio_new(out, np.zeros((1, 4800)), 44100, 24, "flac", metadata=meta(sample_rate=44100), carried=carried)
    tags = mutagen.flac.FLAC(out).tags
    assert tags["ARTIST"] == ["Field Recordist"] and tags["TIME_REFERENCE"] == ["441000"] and tags["SCENE"] == ["12A"]
    assert tags["DESCRIPTION"] == [meta().prompt]


def test_an_unreadable_input_names_the_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x20\x00\x00\x00WAVEfmt \x40\x00\x00\x00short")
    with pytest.raises(InputError, match="bad.wav"):
        read_carried(bad)
    fake = tmp_path / "fake.flac"
    fake.write_bytes(b"fLaC" + b"\xff" * 10)
    with pytest.raises(InputError, match="fake.flac: not a readable FLAC"):
        read_carried(fake)

