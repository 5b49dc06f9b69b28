"""Is an audio file whole? Its container's own sizes against the bytes that are there.

A DAW rendering into a drop folder, a copy in progress or a session drive that was pulled out
leave files that still decode, just shorter: libsndfile quietly reads a WAV truncated mid-data
as a shorter WAV. So before a stem is used its container must agree with its length:

- WAV (RIFF, RIFX), RF64 and BW64: the RIFF size (or ds64's) is the file's length, every chunk
  (the data chunk above all) lies inside the file and the chunks end where the file ends;
- Wave64: the riff size is the file's length;
- AIFF and AIFC: the FORM size is the file's length, the chunks fit, the sound data holds
  every frame COMM declares (uncompressed AIFF);
- FLAC: the metadata blocks fit and audio frames follow; after decoding, ``frames_problem``
  compares the frames decoded with STREAMINFO's total (a FLAC that ends mid-frame decodes short).

Other containers (Ogg, MP3, CAF) get the decoded-frames check only. A FLAC written without a
total (streaming encoders write 0) cannot be told from one cut at a frame boundary.
"""

from __future__ import annotations

import struct
from typing import Optional

INCOMPLETE = "incomplete (still being written?)"
_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"


def container_problem(data: bytes) -> Optional[str]:
    """Why the bytes of an audio file are not a whole file, or None when its container agrees
    with its length (or the container is not one checked here). The reason starts with
    ``INCOMPLETE``."""
    head = data[:4]
    if head in (b"RIFF", b"RIFX"):
        return _riff(data, "<" if head == b"RIFF" else ">")
    if head in (b"RF64", b"BW64"):
        return _rf64(data)
    if data[:16] == _W64_RIFF:
        return _w64(data)
    if head == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return _aiff(data)
    if head == b"fLaC":
        return _flac(data)
    return None


# what a file's name promises, by the first bytes each container starts with
_MAGIC = {
    "wav": (b"RIFF", b"RIFX", b"RF64", b"BW64"),
    "rf64": (b"RF64", b"BW64", b"RIFF"),
    "aiff": (b"FORM",),
    "flac": (b"fLaC", b"ID3"),
    "ogg": (b"OggS",),
    "caf": (b"caff",),
    "au": (b".snd", b"dns."),
}
_SUFFIX_KIND = {
    ".wav": "wav", ".wave": "wav", ".bwf": "wav", ".rf64": "rf64", ".aif": "aiff", ".aiff": "aiff", ".aifc": "aiff",
    ".flac": "flac", ".ogg": "ogg", ".oga": "ogg", ".opus": "ogg", ".caf": "caf", ".au": "au", ".snd": "au",
}


def looks_like_audio(head: bytes, suffix: str = "") -> bool:
    """Whether a file's first bytes are those of the container its name says (``suffix``, e.g.
    ".wav"), or for a name that says none, of any container the host reads. A file that is not
    what it claims is not handed to libsndfile, which would try every decoder on it (MPEG's
    prints its own resync notes on stderr, and random bytes often start like an MPEG frame)."""
    kind = _SUFFIX_KIND.get(suffix.lower())
    if kind is not None:
        return head[:4] in _MAGIC[kind] or (kind == "flac" and head[:3] == b"ID3")
    if suffix.lower() == ".w64":
        return head[:16] == _W64_RIFF
    if head[:4] in {m for magics in _MAGIC.values() for m in magics} or head[:3] == b"ID3" or head[:16] == _W64_RIFF:
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0  # an MPEG audio frame (.mp3)


def frames_problem(declared: int, decoded: int, fmt: str) -> Optional[str]:
    """The frames a header declared against the frames that decoded (0 declared: unknown)."""
    if declared > 0 and decoded != declared:
        return f"{INCOMPLETE}: the {fmt} header declares {declared} frames, {decoded} decode"
    return None


def _short(what: str, declared: int, have: int) -> str:
    return f"{INCOMPLETE}: {what} declares {declared} bytes, the file has {have}"


def _walk(data: bytes, start: int, end: int, endian: str, pad: bool = True, sizes: Optional[dict] = None):
    """(chunk id, payload offset, payload size) for each chunk from ``start`` to ``end``;
    raises ValueError with the reason when a chunk runs past the file."""
    off = start
    while off < end:
        if off + 8 > len(data):
            raise ValueError(f"{INCOMPLETE}: a chunk header is cut off at byte {off}")
        cid = data[off : off + 4]
        (size,) = struct.unpack(endian + "I", data[off + 4 : off + 8])
        if sizes and cid in sizes and size == 0xFFFFFFFF:
            size = sizes[cid]
        body = off + 8
        if body + size > len(data):
            raise ValueError(f"{INCOMPLETE}: chunk '{cid.decode('latin-1')}' declares {size} bytes, {len(data) - body} are there")
        yield cid, body, size
        off = body + size + (size & 1 if pad else 0)


def _chunks(data: bytes, start: int, end: int, endian: str, sizes: Optional[dict] = None) -> tuple[Optional[str], dict]:
    found: dict = {}
    try:
        for cid, body, size in _walk(data, start, end, endian, sizes=sizes):
            found.setdefault(cid, (body, size))
    except ValueError as err:
        return str(err), found
    return None, found


def _riff(data: bytes, endian: str) -> Optional[str]:
    if len(data) < 12:
        return f"{INCOMPLETE}: the file ends inside its header"
    (size,) = struct.unpack(endian + "I", data[4:8])
    total = 8 + size
    if not (total <= len(data) <= total + 1) and not (len(data) == total - 1 and size & 1):
        return _short("the RIFF header", total, len(data))
    problem, found = _chunks(data, 12, min(total, len(data)), endian)
    if problem:
        return problem
    if b"data" not in found:
        return f"{INCOMPLETE}: no data chunk"
    return None


def _rf64(data: bytes) -> Optional[str]:
    if len(data) < 12 + 8 + 24 or data[12:16] != b"ds64":
        return f"{INCOMPLETE}: the RF64 header (ds64) is missing or cut off"
    riff_size, data_size = struct.unpack("<QQ", data[20:36])
    total = 8 + riff_size
    if not (total <= len(data) <= total + 1):
        return _short("the RF64 header (ds64)", total, len(data))
    problem, found = _chunks(data, 12, min(total, len(data)), "<", sizes={b"data": data_size})
    if problem:
        return problem
    if b"data" not in found:
        return f"{INCOMPLETE}: no data chunk"
    return None


def _w64(data: bytes) -> Optional[str]:
    if len(data) < 24:
        return f"{INCOMPLETE}: the file ends inside its header"
    (size,) = struct.unpack("<Q", data[16:24])
    if size != len(data):
        return _short("the Wave64 header", size, len(data))
    return None


def _aiff(data: bytes) -> Optional[str]:
    (size,) = struct.unpack(">I", data[4:8])
    total = 8 + size
    if not (total <= len(data) <= total + 1) and not (len(data) == total - 1 and size & 1):
        return _short("the AIFF FORM header", total, len(data))
    problem, found = _chunks(data, 12, min(total, len(data)), ">")
    if problem:
        return problem
    if b"SSND" not in found or b"COMM" not in found:
        return f"{INCOMPLETE}: no {'SSND' if b'SSND' not in found else 'COMM'} chunk"
    comm_at, comm_size = found[b"COMM"]
    ssnd_at, ssnd_size = found[b"SSND"]
    if comm_size >= 8 and ssnd_size >= 8 and data[8:12] == b"AIFF":
        channels, frames, bits = struct.unpack(">hIh", data[comm_at : comm_at + 8])
        (offset,) = struct.unpack(">I", data[ssnd_at : ssnd_at + 4])
        needed = frames * max(channels, 0) * ((max(bits, 0) + 7) // 8)
        if ssnd_size - 8 - offset < needed:
            return f"{INCOMPLETE}: COMM declares {frames} frames, the sound data holds fewer"
    return None


def _flac(data: bytes) -> Optional[str]:
    off = 4
    last = False
    while not last:
        if off + 4 > len(data):
            return f"{INCOMPLETE}: the FLAC metadata is cut off"
        header = data[off]
        last = bool(header & 0x80)
        length = int.from_bytes(data[off + 1 : off + 4], "big")
        off += 4 + length
        if off > len(data):
            return f"{INCOMPLETE}: a FLAC metadata block declares {length} bytes, fewer are there"
    if off >= len(data) and flac_total_samples(data) != 0:
        return f"{INCOMPLETE}: the FLAC file has no audio frames yet"
    return None


def flac_total_samples(data: bytes) -> Optional[int]:
    """STREAMINFO's total samples per channel (0 = not known to the encoder), or None."""
    if data[:4] != b"fLaC" or len(data) < 8 + 34 or data[4] & 0x7F != 0:
        return None
    (bits,) = struct.unpack(">Q", data[8 + 10 : 8 + 18])  # rate 20, channels 3, bps 5, total 36
    return bits & ((1 << 36) - 1)


__all__ = ["INCOMPLETE", "container_problem", "flac_total_samples", "frames_problem"]
