"""What a delivered take says about itself, inside the file: Broadcast WAV ``bext``, ``iXML``,
a ``smpl`` loop for seamless loops, and the same as Vorbis comments in FLAC.

Library tools (Soundminer, BaseHead, Reaper's media explorer, Pro Tools' DigiBase) read these,
not audiohost's JSON sidecar. Every delivered take carries:

- ``bext`` (EBU Tech 3285 v2): Description = the prompt (ASCII, cut to 256 bytes with "..."; the
  whole prompt is in iXML NOTE), Originator ``audiohost``, OriginatorReference = the take's unique
  id, OriginationDate/Time = when it was rendered (local wall-clock time, as recorders write it),
  TimeReference (samples since midnight), Version 2, LoudnessValue/MaxTruePeakLevel as measured
  (0x7FFF, "not computed", otherwise), CodingHistory (EBU R 98 lines ``A=PCM,F=...,W=...,M=...,T=...``
  whose free text names the host, the model and the chain).
- ``iXML``: PROJECT, SCENE (cue or stem name), TAKE (take number), NOTE (the prompt), FILE_UID (the
  take id), SPEED (sample rate and the same TimeReference), TRACK_LIST, HISTORY/PARENT_FILENAME for
  takes made from an input, and an ``AUDIOHOST`` block with the settings that made it (seed,
  steps, guidance, model and revision, preset, ...).

**Takes made from an input.** :func:`read_carried` reads what an input holds besides its audio.
An inpainted take is written in its input's own format and keeps every chunk the input had
(:data:`host.output.riff.AUDIO_CHUNKS` aside: the audio, its format and summaries of the samples),
byte for byte, with two merges where the take must speak for itself:

- ``bext``: the take's Description, Originator, OriginatorReference, date and time and loudness
  replace the input's; the input's **TimeReference stays** (the take is sample-aligned with it, so
  a DAW puts it back where the stem came from); the input's CodingHistory lines stay and the
  take's line is appended (R 98: the history accumulates); the UMID is cleared (a UMID names one
  piece of material, and the take is a new one).
- ``iXML``: the input's document is kept whole (TRACK_LIST, SPEED with its timecode, vendor
  blocks); the production's PROJECT, SCENE, TAKE and TAPE stay when it has them (conform and
  relink depend on them) and are filled in from the take when it does not; NOTE, FILE_UID,
  HISTORY (PARENT_FILENAME, PARENT_UID = the input's FILE_UID) and the AUDIOHOST block are the
  take's. An input iXML that is not a well-formed ``BWFXML`` document (or declares a DTD) is
  replaced by the take's.

FLAC inputs keep their Vorbis comments the same way (our keys win; TIME_REFERENCE, PROJECT,
SCENE, TAKE of the input stay). Restyled and super-resolved takes are new audio at a new rate, so
they carry nothing but the input's TimeReference, rescaled to their rate
(:func:`input_time_reference`).

The chunk bytes are written by :mod:`host.output.riff` (see there why not a library); FLAC
comments by mutagen.
"""

from __future__ import annotations

import io

import json
import math
import re
import struct
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Mapping, Optional, Sequence

from host.errors import InputError
from host.output.riff import AUDIO_CHUNKS, MAX_CARRIED_CHUNK, Chunk, fmt_fields, read_chunk, read_layout

ORIGINATOR = "audiohost"
BEXT_VERSION = 2
BEXT_FIXED = 602  # bytes before CodingHistory
LOUDNESS_UNKNOWN = 0x7FFF  # Tech 3285 v2: "not computed"
IXML_VERSION = "2.10"
BLOCK = "AUDIOHOST"  # our own iXML block, as vendors (STEINBERG, ...) add theirs

_BEXT = struct.Struct("<256s32s32s10s8sQH64shhhhh180s")
assert _BEXT.size == BEXT_FIXED
_TREF_END = 256 + 32 + 32 + 10 + 8 + 8  # TimeReference is whole in a bext at least this long


@dataclass(frozen=True)
class TakeMetadata:
    """Everything a take says about itself (plain values; build it where the take is written).

    ``coding_history`` is this take's own R 98 line without CR/LF (:func:`coding_history_line`).
    ``time_reference`` is in samples since midnight at ``sample_rate``: 0 for foley, the input's
    (rescaled: :func:`input_time_reference`) for restyled, inpainted and super-resolved takes.
    ``settings`` become the iXML AUDIOHOST block: keys are written upper-cased
    (``seed`` -> ``<SEED>``); values are text, numbers, booleans or JSON-able lists/dicts.
    """

    take_id: str  # unique; bext OriginatorReference (max 32 ASCII), iXML FILE_UID
    prompt: str
    project: str
    scene: str  # the cue or stem name
    take: int  # the take number, as in the file name
    origination: datetime  # when it was rendered; naive = local time
    sample_rate: int
    channels: int
    coding_history: str
    time_reference: int = 0
    settings: Mapping[str, Any] = field(default_factory=dict)
    loudness: Optional[float] = None  # integrated LUFS as delivered
    true_peak: Optional[float] = None  # dBTP as delivered
    parent: Optional[str] = None  # the input's file name
    originator: str = ORIGINATOR

    def __post_init__(self) -> None:
        if not self.take_id or len(self.take_id) > 32 or not self.take_id.isascii() or not self.take_id.isprintable():
            raise ValueError(f"take_id must be 1-32 printable ASCII characters (bext OriginatorReference), got {self.take_id!r}")
        if self.take < 0 or self.sample_rate <= 0 or self.channels < 1:
            raise ValueError("take must be >= 0, sample_rate > 0 and channels >= 1")
        if not 0 <= self.time_reference < 2**64:
            raise ValueError(f"time_reference must fit in 64 bits, got {self.time_reference}")
        if "\r" in self.coding_history or "\n" in self.coding_history:
            raise ValueError("coding_history is one line, without CR/LF")


def coding_history_line(sample_rate: int, bit_depth: int, channels: int, text: str, float_samples: bool = False) -> str:
    """One EBU R 98 coding-history line (without CR/LF), e.g.
    ``A=PCM,F=48000,W=24,M=mono,T=audiohost 0.1.0; model tiny@abc; chain HighpassFilter Reverb``.

    R 98 separates fields with commas, so commas in ``text`` become semicolons. ``M=`` is given
    for mono and stereo; other channel counts are said in the text."""
    mode = {1: ",M=mono", 2: ",M=stereo"}.get(channels, "")
    extra = "" if channels in (1, 2) else f"; {channels} channels"
    kind = "; 32-bit float" if float_samples else ""
    free = _ascii(f"{text}{kind}{extra}").replace(",", ";")
    return f"A=PCM,F={int(sample_rate)},W={int(bit_depth)}{mode},T={free}"


# --------------------------------------------------------------------------- bext


@dataclass(frozen=True)
class Bext:
    """The fields of a ``bext`` chunk, as read."""

    description: str
    originator: str
    originator_reference: str
    origination_date: str
    origination_time: str
    time_reference: int
    version: int
    umid: bytes
    loudness: tuple[int, int, int, int, int]  # raw: value, range, true peak, momentary, short-term (x100)
    coding_history: str


def bext_payload(meta: TakeMetadata, history: str = "", time_reference: Optional[int] = None) -> bytes:
    """The ``bext`` chunk payload for ``meta``. ``history``: earlier CodingHistory lines (an
    input's) to keep before this take's line; ``time_reference`` overrides ``meta``'s."""
    when = meta.origination.astimezone() if meta.origination.tzinfo else meta.origination
    lines = [line for line in re.split(r"\r\n|\r|\n", history) if line.strip()]
    lines.append(meta.coding_history)
    coding = "".join(_ascii(line) + "\r\n" for line in lines).encode("ascii")
    fixed = _BEXT.pack(
        _field(_cut(_ascii(meta.prompt), 256), 256),
        _field(_ascii(meta.originator), 32),
        _field(meta.take_id, 32),
        when.strftime("%Y-%m-%d").encode("ascii"),
        when.strftime("%H:%M:%S").encode("ascii"),
        meta.time_reference if time_reference is None else time_reference,
        BEXT_VERSION,
        b"",
        _centi(meta.loudness),
        LOUDNESS_UNKNOWN,
        _centi(meta.true_peak),
        LOUDNESS_UNKNOWN,
        LOUDNESS_UNKNOWN,
        b"",
    )
    return _even(fixed + coding)


def parse_bext(data: bytes) -> Bext:
    """Read a ``bext`` payload; a short (damaged) one is padded with zeros, so a file with a
    truncated bext reads as far as it goes rather than failing (a TimeReference it cuts off
    reads as 0)."""
    raw = data[:BEXT_FIXED].ljust(BEXT_FIXED, b"\0")
    (desc, orig, ref, date, time_, tref, version, umid, *loud, _reserved) = _BEXT.unpack(raw)
    return Bext(
        description=_text(desc),
        originator=_text(orig),
        originator_reference=_text(ref),
        origination_date=_text(date),
        origination_time=_text(time_),
        time_reference=tref if len(data) >= _TREF_END else 0,  # a cut-off number is no number
        version=version,
        umid=umid,
        loudness=tuple(loud),  # type: ignore[arg-type]
        coding_history=_text(data[BEXT_FIXED:]),
    )


def merge_bext(input_bext: bytes, meta: TakeMetadata, input_rate: Optional[int] = None) -> bytes:
    """The take's ``bext`` for a take made from an input that had ``input_bext``: the input's
    TimeReference (rescaled from ``input_rate`` to the take's rate when they differ) and
    CodingHistory stay, everything else is the take's (see the module docstring)."""
    old = parse_bext(input_bext)
    tref = rescale(old.time_reference, input_rate or meta.sample_rate, meta.sample_rate)
    return bext_payload(meta, history=old.coding_history, time_reference=tref)


# --------------------------------------------------------------------------- iXML


def ixml_payload(meta: TakeMetadata) -> bytes:
    """The ``iXML`` chunk payload (UTF-8 XML) for ``meta``."""
    root = ET.Element("BWFXML")
    _set(root, "IXML_VERSION", IXML_VERSION)
    _set(root, "PROJECT", meta.project)
    _set(root, "SCENE", meta.scene)
    _set(root, "TAKE", str(meta.take))
    _take_fields(root, meta)
    speed = _set(root, "SPEED", None)
    _set(speed, "FILE_SAMPLE_RATE", str(meta.sample_rate))
    _set(speed, "TIMESTAMP_SAMPLE_RATE", str(meta.sample_rate))
    _set(speed, "TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_HI", str(meta.time_reference >> 32))
    _set(speed, "TIMESTAMP_SAMPLES_SINCE_MIDNIGHT_LO", str(meta.time_reference & 0xFFFFFFFF))
    tracks = _set(root, "TRACK_LIST", None)
    _set(tracks, "TRACK_COUNT", str(meta.channels))
    for i in range(1, meta.channels + 1):
        track = ET.SubElement(tracks, "TRACK")
        _set(track, "CHANNEL_INDEX", str(i))
        _set(track, "INTERLEAVE_INDEX", str(i))
        _set(track, "NAME", meta.scene if meta.channels == 1 else f"{meta.scene} {i}")
    return _xml_bytes(root)


def merge_ixml(input_ixml: bytes, meta: TakeMetadata) -> bytes:
    """The take's ``iXML`` for a take made from an input that had ``input_ixml`` (see the module
    docstring for what stays and what is the take's)."""
    root = _parse_ixml(input_ixml)
    if root is None:
        return ixml_payload(meta)
    for tag, value in (("PROJECT", meta.project), ("SCENE", meta.scene), ("TAKE", str(meta.take))):
        element = root.find(tag)
        if element is None or not (element.text or "").strip():
            _set(root, tag, value)
    parent_uid = root.findtext("FILE_UID")
    _take_fields(root, meta, parent_uid=parent_uid)
    return _xml_bytes(root)


def parse_ixml_note(data: bytes) -> Optional[str]:
    root = _parse_ixml(data)
    return None if root is None else root.findtext("NOTE")


# --------------------------------------------------------------------------- smpl


def smpl_chunk(sample_rate: int, loop_start: int, loop_end: int, frames: Optional[int] = None, unity_note: int = 60) -> Chunk:
    """A ``smpl`` chunk with one forward loop over frames ``[loop_start, loop_end)`` (end
    exclusive, Python style; the chunk stores the last frame played, ``loop_end - 1``, as the
    RIFF spec defines dwEnd), looping forever, MIDI unity note ``unity_note`` (60 = middle C),
    no fine tuning, no SMPTE offset. ``frames``, when given, is checked: the loop must lie inside.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    if not 0 <= loop_start < loop_end:
        raise ValueError(f"a loop needs 0 <= start < end, got [{loop_start}, {loop_end})")
    if frames is not None and loop_end > frames:
        raise ValueError(f"the loop ends at frame {loop_end}, after the file's {frames} frames")
    if loop_end - 1 > 0xFFFFFFFF:
        raise ValueError("a smpl loop point must fit in 32 bits")
    if not 0 <= unity_note <= 127:
        raise ValueError(f"unity_note must be a MIDI note 0-127, got {unity_note}")
    period_ns = round(1e9 / sample_rate)
    header = struct.pack("<9I", 0, 0, period_ns, unity_note, 0, 0, 0, 1, 0)
    loop = struct.pack("<6I", 0, 0, loop_start, loop_end - 1, 0, 0)  # id, forward, start, end, fraction, forever
    return Chunk(b"smpl", header + loop)


# --------------------------------------------------------------------------- what an input carries


@dataclass(frozen=True)
class Carried:
    """What an input holds besides its audio, for a take made from it."""

    sample_rate: int = 0  # 0: unknown (not a WAV or FLAC file)
    time_reference: int = 0  # samples since midnight at ``sample_rate`` (bext, or FLAC TIME_REFERENCE)
    chunks: tuple[Chunk, ...] = ()  # WAV/RF64 inputs: every chunk but the audio ones, in file order
    fmt: Optional[bytes] = None  # WAV inputs: the fmt payload (keeps an extensible channel mask)
    tags: tuple[tuple[str, str], ...] = ()  # FLAC inputs: Vorbis comments

    def time_reference_at(self, rate: int) -> int:
        return rescale(self.time_reference, self.sample_rate or rate, rate)

    def chunk(self, chunk_id: bytes) -> Optional[Chunk]:
        return next((c for c in self.chunks if c.id == chunk_id), None)


def read_carried(path: Path | str, data: Optional[bytes] = None) -> Carried:
    """Read an input's metadata: WAV/RF64/BW64 chunks, FLAC Vorbis comments; any other format
    carries nothing. ``data``: the file's bytes as already read (the render reads a stem once,
    confined, and takes its samples and its chunks from the same bytes); else the file at
    ``path`` is read. Raises :class:`InputError` naming the file when a WAV or FLAC is unreadable."""
    where = str(path)
    try:
        with (io.BytesIO(data) if data is not None else open(path, "rb")) as f:
            magic = f.read(4)
            if magic in (b"RIFF", b"RF64", b"BW64"):
                return _read_wav(f, where)
    except OSError as err:
        raise InputError(where, f"cannot read: {err.strerror or err}") from None
    if magic == b"fLaC" or (magic[:3] == b"ID3" and Path(path).suffix.lower() == ".flac"):
        return _read_flac(io.BytesIO(data) if data is not None else path, where)
    return Carried()


def input_time_reference(path: Path | str, rate: int) -> int:
    """The input's TimeReference in samples at ``rate`` (the take's rate); 0 if it has none."""
    return read_carried(path).time_reference_at(rate)


def take_time_reference(carried: Optional[Carried], rate: int, offset_seconds: float = 0.0) -> int:
    """A take made from an input belongs where the input does: the input's TimeReference at the
    take's ``rate``, plus ``offset_seconds`` into the input where the take starts (a region
    restyle's start). 0 for an input without one and no offset."""
    base = carried.time_reference_at(rate) if carried is not None else 0
    return base + max(0, int(round(offset_seconds * rate)))


def rescale(samples: int, from_rate: int, to_rate: int) -> int:
    """A sample position at ``from_rate`` as the nearest one at ``to_rate`` (exact integers)."""
    if from_rate == to_rate or samples == 0:
        return samples
    return (samples * to_rate + from_rate // 2) // from_rate


# --------------------------------------------------------------------------- putting it together


def take_chunks(meta: TakeMetadata, carried: Optional[Carried] = None, extra: Sequence[Chunk] = ()) -> list[Chunk]:
    """The chunks a delivered WAV take gets: ``bext``, ``iXML``, then every chunk ``carried``
    from the input (merged as the module docstring says), then ``extra`` (e.g. :func:`smpl_chunk`),
    which replaces a carried chunk of the same kind."""
    carried = carried or Carried()
    old_bext, old_ixml = carried.chunk(b"bext"), carried.chunk(b"iXML")
    bext = merge_bext(old_bext.data, meta, carried.sample_rate or None) if old_bext else bext_payload(meta)
    ixml = merge_ixml(old_ixml.data, meta) if old_ixml else ixml_payload(meta)
    replaced = {c.key for c in extra} | {b"bext", b"iXML"}
    out = [] if b"bext" in {c.key for c in extra} else [Chunk(b"bext", bext)]
    out += [] if b"iXML" in {c.key for c in extra} else [Chunk(b"iXML", ixml)]
    out += [c for c in carried.chunks if c.key not in replaced]  # LIST keys include the list type
    out += list(extra)
    return out


def flac_tags(meta: TakeMetadata, carried: Optional[Carried] = None) -> list[tuple[str, str]]:
    """Vorbis comments for a FLAC take: the bext fields under the names ffmpeg uses for them
    (DESCRIPTION, ORIGINATOR, ORIGINATOR_REFERENCE, ORIGINATION_DATE, ORIGINATION_TIME,
    TIME_REFERENCE, CODING_HISTORY), the iXML ones (PROJECT, SCENE, TAKE, NOTE), and
    ``AUDIOHOST_<SETTING>``. A FLAC input's comments are kept; ours replace same-named ones,
    except the input's TIME_REFERENCE, PROJECT, SCENE and TAKE, which stay (as in iXML)."""
    carried = carried or Carried()
    old = {k.upper(): v for k, v in carried.tags}
    when = meta.origination.astimezone() if meta.origination.tzinfo else meta.origination
    history = [line for line in re.split(r"\r\n|\r|\n", old.get("CODING_HISTORY", "")) if line.strip()]
    ours: dict[str, str] = {
        "DESCRIPTION": meta.prompt,
        "ORIGINATOR": meta.originator,
        "ORIGINATOR_REFERENCE": meta.take_id,
        "ORIGINATION_DATE": when.strftime("%Y-%m-%d"),
        "ORIGINATION_TIME": when.strftime("%H:%M:%S"),
        "TIME_REFERENCE": str(meta.time_reference),
        "CODING_HISTORY": "\r\n".join([*history, meta.coding_history]),
        "PROJECT": meta.project,
        "SCENE": meta.scene,
        "TAKE": str(meta.take),
        "NOTE": meta.prompt,
    }
    for key in ("PROJECT", "SCENE", "TAKE"):
        if old.get(key, "").strip():
            ours[key] = old[key]
    if carried.time_reference:  # the input's, at the take's rate (it is aligned with the input)
        ours["TIME_REFERENCE"] = str(carried.time_reference_at(meta.sample_rate))
    for key, value in meta.settings.items():
        ours[f"{BLOCK}_{_tag_name(key)}"] = _setting_text(value)
    kept = [(k, v) for k, v in carried.tags if k.upper() not in ours]
    return kept + [(k, _xml_safe(v)) for k, v in ours.items()]


def write_flac_tags(fileobj: BinaryIO, tags: Sequence[tuple[str, str]]) -> None:
    """Replace the Vorbis comments of the FLAC in ``fileobj`` (read/write/seek) with ``tags``."""
    from mutagen.flac import FLAC  # lazy: only FLAC deliveries need it

    fileobj.seek(0)
    flac = FLAC(fileobj)
    if flac.tags is None:
        flac.add_tags()
    flac.tags.clear()  # type: ignore[union-attr]
    for key, value in tags:
        flac.tags.append((key, value))  # type: ignore[union-attr]
    fileobj.seek(0)
    flac.save(fileobj)


# --------------------------------------------------------------------------- helpers


def _read_wav(f: BinaryIO, where: str) -> Carried:
    layout = read_layout(f, where)
    fmt = read_chunk(f, layout.find(b"fmt "), where)  # type: ignore[arg-type]
    try:
        rate = fmt_fields(fmt)[2]
    except ValueError:
        raise InputError(where, "fmt chunk is shorter than 16 bytes") from None
    chunks = tuple(Chunk(ref.id, read_chunk(f, ref, where)) for ref in layout.chunks if ref.id not in AUDIO_CHUNKS)
    bext = next((c for c in chunks if c.id == b"bext"), None)
    tref = parse_bext(bext.data).time_reference if bext is not None else 0
    return Carried(sample_rate=rate, time_reference=tref, chunks=chunks, fmt=fmt)


def _read_flac(path: Path | str, where: str) -> Carried:
    from mutagen import MutagenError
    from mutagen.flac import FLAC

    try:
        flac = FLAC(path)
    except (MutagenError, OSError, ValueError) as err:
        raise InputError(where, f"not a readable FLAC file ({type(err).__name__})") from None
    tags = tuple((k, v) for k, v in (flac.tags or []))
    tref = 0
    for key, value in tags:
        if key.upper() == "TIME_REFERENCE" and value.strip().isdigit() and int(value) < 2**64:
            tref = int(value)
    return Carried(sample_rate=int(flac.info.sample_rate), time_reference=tref, tags=tags)


def _take_fields(root: ET.Element, meta: TakeMetadata, parent_uid: Optional[str] = None) -> None:
    """NOTE, FILE_UID, HISTORY and the AUDIOHOST block: always the take's own."""
    _set(root, "NOTE", meta.prompt)
    _set(root, "FILE_UID", meta.take_id)
    if meta.parent is not None:
        history = _set(root, "HISTORY", None)
        _set(history, "PARENT_FILENAME", meta.parent)
        if parent_uid:
            _set(history, "PARENT_UID", parent_uid)
    block = _set(root, BLOCK, None)
    for key, value in meta.settings.items():
        _set(block, _tag_name(key), _setting_text(value))


def _set(parent: ET.Element, tag: str, text: Optional[str]) -> ET.Element:
    """The child ``tag`` of ``parent`` (replaced if it exists), holding ``text``."""
    for old in parent.findall(tag):
        parent.remove(old)
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = _xml_safe(text)
    return element


def _parse_ixml(data: bytes) -> Optional[ET.Element]:
    text = data.rstrip(b"\0 \r\n\t")
    if b"<!DOCTYPE" in text or b"<!ENTITY" in text:
        return None  # no DTDs from outside: nothing here needs them
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    return root if root.tag == "BWFXML" else None


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    return _even(b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n")


def _even(payload: bytes) -> bytes:
    """Our chunks have even sizes (a trailing NUL ends the text), so no reader trips on a pad byte."""
    return payload + b"\0" if len(payload) % 2 else payload


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    """Drop the characters XML 1.0 cannot hold (control characters; lone surrogates)."""
    text = _XML_BAD.sub("", text)
    return text.encode("utf-8", "replace").decode("utf-8") if any(0xD800 <= ord(c) <= 0xDFFF for c in text) else text


def _tag_name(key: str) -> str:
    name = re.sub(r"[^A-Z0-9_]", "_", str(key).upper())
    return name if name[:1].isalpha() else f"X_{name}"


def _setting_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # exact: recall reads it back
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _ascii(text: str) -> str:
    """Text as bext holds it (ASCII, Tech 3285): accents folded, others '?', controls as spaces."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = "".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in folded)
    return folded.encode("ascii", "replace").decode("ascii")


def _cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: cut at a word boundary with "..." when too long."""
    if len(text) <= limit:
        return text
    head = text[: limit - 3]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip() + "..."


def _field(text: str, size: int) -> bytes:
    return text.encode("ascii")[:size]  # struct pads with NULs


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1")


def _centi(value: Optional[float]) -> int:
    if value is None or not math.isfinite(value):
        return LOUDNESS_UNKNOWN
    return max(-32768, min(32766, int(round(value * 100))))


__all__ = [
    "Bext",
    "Carried",
    "MAX_CARRIED_CHUNK",
    "TakeMetadata",
    "bext_payload",
    "coding_history_line",
    "flac_tags",
    "input_time_reference",
    "ixml_payload",
    "merge_bext",
    "merge_ixml",
    "parse_bext",
    "read_carried",
    "rescale",
    "smpl_chunk",
    "take_chunks",
    "take_time_reference",
    "write_flac_tags",
]
