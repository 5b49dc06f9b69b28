"""The ``.amxd`` container Live opens: a small chunked file around a Max patcher's JSON.

Each chunk is a four-letter tag, a little-endian 32-bit length and that many bytes:

- ``ampf`` (length 4): the device type, ``aaaa`` audio effect, ``mmmm`` MIDI effect, ``iiii`` instrument;
- ``meta`` (length 4): a 32-bit flag word (7 in what current Max writes for an unfrozen device);
- ``ptch``: the patcher JSON, UTF-8, NUL-terminated.

Frozen devices put an ``mx@c`` archive inside ``ptch`` instead; ours is never frozen (its one
dependency, the js file, is installed beside it), so the patcher JSON stays readable.
"""

from __future__ import annotations

import json
import struct

AUDIO_EFFECT, MIDI_EFFECT, INSTRUMENT = b"aaaa", b"mmmm", b"iiii"
META_FLAGS = 7


def chunk(tag: bytes, payload: bytes) -> bytes:
    return tag + struct.pack("<I", len(payload)) + payload


def pack(patcher_json: str, device_type: bytes = AUDIO_EFFECT) -> bytes:
    """A ``.amxd`` around ``patcher_json`` (checked to be a Max patcher first)."""
    document = json.loads(patcher_json)
    if not isinstance(document, dict) or "patcher" not in document:
        raise ValueError("not a Max patcher: the top level has no 'patcher'")
    if device_type not in (AUDIO_EFFECT, MIDI_EFFECT, INSTRUMENT):
        raise ValueError(f"unknown device type {device_type!r}")
    return (
        chunk(b"ampf", device_type)
        + chunk(b"meta", struct.pack("<I", META_FLAGS))
        + chunk(b"ptch", patcher_json.encode("utf-8") + b"\x00")
    )


def unpack(data: bytes) -> tuple[bytes, str]:
    """(device type, patcher JSON) of a ``.amxd``; ValueError if it is not one we can read."""
    chunks: dict[bytes, bytes] = {}
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            raise ValueError(f"truncated chunk header at byte {offset}")
        tag = data[offset : offset + 4]
        (length,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        if offset + 8 + length > len(data):
            raise ValueError(f"chunk {tag!r} at byte {offset} runs past the end of the file")
        chunks[tag] = data[offset + 8 : offset + 8 + length]
        offset += 8 + length
    if data[:4] != b"ampf" or len(chunks.get(b"ampf", b"")) != 4:
        raise ValueError("not an .amxd file (no 'ampf' header)")
    patch = chunks.get(b"ptch")
    if patch is None:
        raise ValueError("no 'ptch' chunk")
    if patch.startswith(b"mx@c"):
        raise ValueError("a frozen device (mx@c archive) is not read here")
    return chunks[b"ampf"], patch.rstrip(b"\x00").decode("utf-8")
