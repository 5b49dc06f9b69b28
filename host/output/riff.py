"""WAV containers chunk by chunk: read the chunk table of a RIFF/RF64/BW64 WAVE file, take out
its metadata chunks, and write a WAV with extra chunks around audio that soundfile wrote.

Why our own code: nothing maintained on PyPI writes arbitrary WAV chunks. mutagen's WAVE support
writes only an ``id3 `` chunk; ``wavinfo`` (used by the tests as the independent reader) only
reads; the ``bwfmetaedit`` wrappers (``autobwf``) drive the FADGI command-line tool, which is not
a Python package; libsndfile can write a ``bext`` chunk, but soundfile does not expose that, it
cannot write ``iXML``, ``smpl`` or arbitrary chunks, and it cannot carry another file's chunks.
A RIFF chunk is four bytes of id, a little-endian 32-bit size and the payload, padded to an even
length; that is small enough to do right here, in one place.

Writing (:func:`write_wav`) copies soundfile's output to a new file object: the ``RIFF``/``RF64``
header, ``fmt `` (and ``fact``/``PEAK`` that libsndfile writes for float), then the given chunks,
then ``data`` streamed in 1 MiB pieces. Metadata goes *before* the audio, where broadcast
recorders put it, so a reader that stops at ``data`` still finds it. The audio bytes are copied
unchanged, so every sample is bit-identical.

Size: a RIFF file cannot exceed 4 GiB (32-bit sizes). If the result would, it is written as RF64
(EBU Tech 3306: ``RF64`` header, a ``ds64`` chunk holding the 64-bit sizes, ``data`` size
0xFFFFFFFF), which soundfile, libsndfile and wavinfo read; otherwise it is a plain RIFF WAVE.
In an RF64 file, odd-sized chunks go after ``data``: libsndfile 1.2 skips RF64 chunks without
their pad byte and would lose the audio behind one.
soundfile itself writes RF64 only when asked (``format="RF64"``): :func:`container_for` says which
to ask for, and :func:`write_wav` accepts either as its source.

Reading (:func:`read_layout`) never trusts a size it cannot check: a chunk that claims more bytes
than the file holds, an id that is not text, a truncated header or a RIFF size that lies end the
walk or raise one :class:`~host.errors.InputError` naming the file and the reason. Every step moves
forward by at least 8 bytes and the walk stops after ``MAX_CHUNKS`` chunks, so it cannot hang.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Optional, Sequence

from host.errors import InputError

RIFF_LIMIT = 0xFFFFFFFF  # the largest size a 32-bit RIFF field holds; above it, RF64
UNKNOWN_SIZE = 0xFFFFFFFF  # RF64's "see ds64" (and a streaming writer's "never came back")
MAX_CHUNKS = 10_000  # more is not a WAV file, it is an attack or a broken writer
MAX_CARRIED_CHUNK = 64 * 1024 * 1024  # metadata chunks are kilobytes; refuse to load absurd ones
COPY_PIECE = 1 << 20

FORMS = (b"RIFF", b"RF64", b"BW64")

# Chunks that describe the audio bytes themselves: they are never carried from one file to
# another, because the new file's audio (or its container) makes its own.
#   fmt /data/fact: the samples and their format; ds64: RF64 sizes; JUNK/junk/PAD /FLLR/filr:
#   filler; PEAK (libsndfile), levl (EBU peak envelope) and md5 : summaries of the samples
#   that a changed sample would make wrong.
AUDIO_CHUNKS = frozenset(
    {b"fmt ", b"data", b"fact", b"ds64", b"JUNK", b"junk", b"PAD ", b"FLLR", b"filr", b"PEAK", b"levl", b"md5 ", b"MD5 "}
)


@dataclass(frozen=True)
class Chunk:
    """One chunk to write: a four-character id and its payload (without the pad byte)."""

    id: bytes
    data: bytes

    def __post_init__(self) -> None:
        if not (isinstance(self.id, bytes) and len(self.id) == 4 and _is_text_id(self.id)):
            raise ValueError(f"a chunk id is four printable ASCII characters, got {self.id!r}")
        if len(self.data) > 0xFFFFFFFF:
            raise ValueError(f"chunk {self.name!r} is {len(self.data)} bytes; only 'data' may exceed 4 GiB")

    @property
    def name(self) -> str:
        return self.id.decode("ascii")

    @property
    def key(self) -> bytes:
        """What makes two chunks "the same kind": the id, and for LIST also its list type."""
        return self.id + self.data[:4] if self.id == b"LIST" else self.id


@dataclass(frozen=True)
class ChunkRef:
    """Where a chunk's payload lies in a file."""

    id: bytes
    offset: int  # of the payload, after the 8-byte header
    size: int

    @property
    def name(self) -> str:
        return self.id.decode("ascii", "replace")


@dataclass(frozen=True)
class Layout:
    """The chunk table of a WAVE file."""

    form: bytes  # RIFF, RF64 or BW64
    chunks: tuple[ChunkRef, ...]
    file_size: int
    sample_count: Optional[int] = None  # from ds64, for RF64
    damaged: Optional[str] = None  # what the walk had to skip or clamp, for a log line

    def find(self, chunk_id: bytes) -> Optional[ChunkRef]:
        return next((c for c in self.chunks if c.id == chunk_id), None)

    @property
    def data(self) -> ChunkRef:
        ref = self.find(b"data")
        assert ref is not None  # read_layout guarantees it
        return ref


# --------------------------------------------------------------------------- reading


def read_layout(f: BinaryIO, where: str = "WAV file") -> Layout:
    """The chunk table of the WAVE file open in ``f`` (binary, seekable).

    Tolerant where real files are sloppy (a wrong RIFF size, a missing pad byte, a truncated
    ``data`` chunk, which is clamped to the end of the file, trailing bytes after the last
    chunk), strict where guessing would be unsafe. Raises one :class:`InputError` (``where``: the
    file as the user knows it) for anything that is not a WAVE file with ``fmt `` and ``data``.
    """
    f.seek(0, os.SEEK_END)
    file_size = f.tell()
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] not in FORMS or head[8:12] != b"WAVE":
        raise InputError(where, "not a WAV file (no RIFF/RF64 WAVE header)")
    form = head[:4]
    declared = struct.unpack("<I", head[4:8])[0]
    declared_end: Optional[int] = 8 + declared if declared != UNKNOWN_SIZE else None
    big: dict[bytes, int] = {}
    sample_count = None
    rf64 = form != b"RIFF"

    chunks: list[ChunkRef] = []
    damaged: Optional[str] = None
    seen_data = False
    pos = 12
    while pos + 8 <= file_size:
        if len(chunks) >= MAX_CHUNKS:
            raise InputError(where, f"more than {MAX_CHUNKS} chunks; not a WAV file a recorder or DAW writes")
        if declared_end is not None and pos == declared_end and seen_data:
            if pos < file_size:
                damaged = f"{file_size - pos} bytes after the end of the RIFF ignored"
            break  # what follows lies outside the RIFF (an appended tag, garbage)
        f.seek(pos)
        header = f.read(8)
        chunk_id, size = header[:4], struct.unpack("<I", header[4:8])[0]
        if not _is_text_id(chunk_id):
            damaged = f"bytes at offset {pos} are not a chunk; the rest of the file was ignored"
            break
        payload = pos + 8
        if rf64 and not chunks:
            if chunk_id != b"ds64":
                raise InputError(where, f"{form.decode()} file whose first chunk is not ds64")
            if size < 28 or payload + size > file_size:
                raise InputError(where, "ds64 chunk is too short or runs past the end of the file")
            ds64 = f.read(min(size, 28 + 12 * 64))
            riff64, data64, sample_count, table_len = struct.unpack("<QQQI", ds64[:28])
            for i in range(min(table_len, (len(ds64) - 28) // 12)):
                big_id, big_size = struct.unpack("<4sQ", ds64[28 + 12 * i : 40 + 12 * i])
                big[big_id] = big_size
            big[b"data"] = data64
            declared_end = 8 + riff64 if declared == UNKNOWN_SIZE else declared_end
        if size == UNKNOWN_SIZE:
            if rf64 and chunk_id in big:
                size = big[chunk_id]
            elif chunk_id == b"data":
                size = file_size - payload  # a streaming writer that never filled in the size
            else:
                raise InputError(where, f"chunk '{_show(chunk_id)}' at offset {pos} has no size (0xFFFFFFFF)")
        if payload + size > file_size:
            if chunk_id == b"data":
                damaged = f"data chunk claims {size} bytes, the file holds {file_size - payload}; read what is there"
                size = file_size - payload
            else:
                damaged = f"chunk '{_show(chunk_id)}' at offset {pos} runs past the end of the file; it and the rest were ignored"
                break
        chunks.append(ChunkRef(chunk_id, payload, size))
        seen_data = seen_data or chunk_id == b"data"
        step = payload + size + (size & 1)
        if size & 1 and not _plausible_header(f, step, file_size) and _plausible_header(f, payload + size, file_size):
            step = payload + size  # a writer that forgot the pad byte
        pos = step

    ids = {c.id for c in chunks}
    if b"fmt " not in ids:
        raise InputError(where, "WAV file without a fmt chunk" + (f" ({damaged})" if damaged else ""))
    if b"data" not in ids:
        raise InputError(where, "WAV file without a data chunk" + (f" ({damaged})" if damaged else ""))
    return Layout(form, tuple(chunks), file_size, sample_count, damaged)


def read_chunk(f: BinaryIO, ref: ChunkRef, where: str = "WAV file", limit: int = MAX_CARRIED_CHUNK) -> bytes:
    """The payload of one (metadata) chunk; refuses chunks larger than ``limit``."""
    if ref.size > limit:
        raise InputError(where, f"chunk '{ref.name}' is {ref.size} bytes; metadata chunks over {limit >> 20} MiB are refused")
    f.seek(ref.offset)
    data = f.read(ref.size)
    if len(data) != ref.size:  # the file changed under us
        raise InputError(where, f"chunk '{ref.name}' is shorter than its header says")
    return data


def carried_chunks(path: Path | str, skip: Iterable[bytes] = AUDIO_CHUNKS) -> list[Chunk]:
    """Every chunk of the WAV file at ``path`` except those in ``skip`` (by default the audio,
    its format and summaries of it, and filler), in file order, byte for byte.

    These are what an inpainted take keeps of its input: ``bext``, ``iXML``, ``LIST``, ``cue ``,
    ``smpl``, ``axml``, vendor chunks. Raises :class:`InputError` naming the file.
    """
    where = str(path)
    skip = frozenset(skip)
    try:
        with open(path, "rb") as f:
            layout = read_layout(f, where)
            return [Chunk(ref.id, read_chunk(f, ref, where)) for ref in layout.chunks if ref.id not in skip]
    except OSError as err:
        raise InputError(where, f"cannot read: {err.strerror or err}") from None


def fmt_fields(fmt: bytes) -> tuple[int, int, int, int, int]:
    """(format code, channels, sample rate, block align, bits) of a ``fmt `` payload; for
    WAVE_FORMAT_EXTENSIBLE the code is the sub-format's."""
    if len(fmt) < 16:
        raise ValueError("fmt chunk shorter than 16 bytes")
    code, channels, rate, _byte_rate, align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if code == 0xFFFE and len(fmt) >= 40:
        code = struct.unpack("<H", fmt[24:26])[0]
    return code, channels, rate, align, bits


# --------------------------------------------------------------------------- writing


def container_for(data_bytes: int) -> str:
    """``"WAV"`` or ``"RF64"``: what to ask soundfile for so ``data_bytes`` of audio fit (with a
    megabyte to spare for metadata chunks)."""
    return "RF64" if data_bytes + (1 << 20) > RIFF_LIMIT else "WAV"


def write_wav(dst: BinaryIO, src: BinaryIO, chunks: Sequence[Chunk] = (), fmt: Optional[bytes] = None) -> None:
    """Write to ``dst`` the WAV in ``src`` (RIFF or RF64, e.g. what soundfile wrote), with
    ``chunks`` placed before ``data``.

    A given chunk replaces ``src``'s chunk of the same kind (same id; for ``LIST`` the same list
    type); the audio bytes are copied unchanged. ``fmt``: a ``fmt `` payload to use instead of
    ``src``'s when it describes the same samples (format code, channels, rate, block align,
    bits), so an input's WAVE_FORMAT_EXTENSIBLE channel mask survives; otherwise ignored.
    The output is RIFF when it fits in 4 GiB, else RF64. Raises ``ValueError`` for two chunks of
    one kind (other than LIST) or a chunk that must not be given (``fmt ``, ``data``, ``ds64``).
    """
    given = list(chunks)
    keys = [c.key for c in given if c.id != b"LIST"]
    if len(keys) != len(set(keys)):
        raise ValueError(f"two chunks of one kind given: {sorted(k.decode('ascii', 'replace') for k in keys)}")
    for c in given:
        if c.id in (b"fmt ", b"data", b"ds64", b"fact"):
            raise ValueError(f"chunk {c.name!r} is the container's own; it cannot be given")

    layout = read_layout(src, "soundfile output")
    replaced = {c.key for c in given}
    plan: list[tuple[bytes, object]] = []  # (id, bytes payload | ChunkRef to copy)
    for ref in layout.chunks:
        if ref.id in (b"ds64", b"JUNK"):
            continue
        if ref.id == b"data":
            plan.extend((c.id, c.data) for c in given)
            plan.append((b"data", ref))
            continue
        payload = read_chunk(src, ref, "soundfile output")
        if ref.id == b"fmt " and fmt is not None and _same_samples(fmt, payload):
            payload = fmt
        if Chunk(ref.id, payload).key in replaced:
            continue
        plan.append((ref.id, payload))

    def size_of(item: object) -> int:
        return item.size if isinstance(item, ChunkRef) else len(item)  # type: ignore[union-attr]

    body = 4 + sum(8 + size_of(p) + (size_of(p) & 1) for _, p in plan)
    data_ref = layout.data
    fmt_payload = next(p for cid, p in plan if cid == b"fmt ")
    align = fmt_fields(fmt_payload)[3] or 1  # type: ignore[arg-type]
    if body <= RIFF_LIMIT and all(size_of(p) <= RIFF_LIMIT for _, p in plan):
        dst.write(b"RIFF" + struct.pack("<I", body) + b"WAVE")
        rf64 = False
    else:
        body += 8 + 28  # the ds64 chunk
        ds64 = struct.pack("<QQQI", body, data_ref.size, data_ref.size // align, 0)
        dst.write(b"RF64" + struct.pack("<I", UNKNOWN_SIZE) + b"WAVE")
        dst.write(b"ds64" + struct.pack("<I", len(ds64)) + ds64)
        rf64 = True
    if rf64:
        # libsndfile (1.2) reads RF64 chunk sizes without their pad byte, so an odd-sized chunk
        # before data hides the audio from it; after data it never looks. Spec readers find both.
        at = next(i for i, (cid, _) in enumerate(plan) if cid == b"data")
        odd = [item for item in plan[:at] if size_of(item[1]) & 1]
        plan = [item for item in plan[:at] if not size_of(item[1]) & 1] + [plan[at]] + odd + plan[at + 1 :]
    for cid, payload in plan:
        size = size_of(payload)
        field = UNKNOWN_SIZE if rf64 and cid == b"data" else size
        dst.write(cid + struct.pack("<I", field))
        if isinstance(payload, ChunkRef):
            _copy(src, dst, payload.offset, payload.size)
        else:
            dst.write(payload)  # type: ignore[arg-type]
        if size & 1:
            dst.write(b"\0")


# --------------------------------------------------------------------------- helpers


def _is_text_id(chunk_id: bytes) -> bool:
    return len(chunk_id) == 4 and all(0x20 <= b <= 0x7E for b in chunk_id)


def _show(chunk_id: bytes) -> str:
    return chunk_id.decode("ascii", "replace")


def _plausible_header(f: BinaryIO, pos: int, file_size: int) -> bool:
    """Whether a chunk header that fits in the file starts at ``pos`` (or the file ends there)."""
    if pos == file_size:
        return True
    if pos + 8 > file_size:
        return False
    f.seek(pos)
    header = f.read(8)
    size = struct.unpack("<I", header[4:8])[0]
    return _is_text_id(header[:4]) and (pos + 8 + size <= file_size or header[:4] == b"data" or size == UNKNOWN_SIZE)


def _same_samples(a: bytes, b: bytes) -> bool:
    try:
        return fmt_fields(a) == fmt_fields(b)
    except ValueError:
        return False


def _copy(src: BinaryIO, dst: BinaryIO, offset: int, size: int) -> None:
    src.seek(offset)
    left = size
    while left > 0:
        piece = src.read(min(COPY_PIECE, left))
        if not piece:
            raise OSError(f"source ended {left} bytes early")
        dst.write(piece)
        left -= len(piece)


__all__ = [
    "AUDIO_CHUNKS",
    "Chunk",
    "ChunkRef",
    "Layout",
    "RIFF_LIMIT",
    "carried_chunks",
    "container_for",
    "fmt_fields",
    "read_chunk",
    "read_layout",
    "write_wav",
]
