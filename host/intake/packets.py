"""OSC datagrams checked before python-osc's parser sees them.

python-osc parses what it is given and trusts the sizes inside: a bundle element whose size is
negative walks its index backwards forever (one 20-byte datagram froze the listener), an unknown
type tag logs a warning and misreads every argument after it, a string that is not UTF-8 raises
an error the library does not wrap. So every datagram is walked here first, byte by byte
against the OSC 1.0 layout, and only one that passes reaches the parser.

The rules (anything else is malformed, with a short reason):

- a message is an address (``/``, printable ASCII), NUL-terminated and zero-padded to 4 bytes,
  then optionally a type tag string starting with ``,``, then exactly the bytes those tags need
  (i f r m: 4; h d t: 8; T F N [ ]: none; s: a padded UTF-8 string; b: a non-negative int32
  size and that many bytes, padded), and nothing after them;
- a bundle is ``#bundle\\0``, an 8-byte time tag, then elements, each an int32 size that is
  positive, a multiple of 4 and inside the packet, followed by a message or a bundle of
  exactly that size;
- bundles nest at most ``MAX_BUNDLE_DEPTH`` deep, arrays ``MAX_ARRAY_DEPTH`` deep, and one
  datagram carries at most ``MAX_MESSAGES_PER_DATAGRAM`` messages.

Pure functions; no I/O. The walk is linear in the datagram's length and never recurses deeper
than the bundle depth limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from host.intake.limits import MAX_ARRAY_DEPTH, MAX_BUNDLE_DEPTH, MAX_MESSAGES_PER_DATAGRAM

BUNDLE = b"#bundle\x00"
FIXED_SIZE = {"i": 4, "f": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8, "T": 0, "F": 0, "N": 0}
TYPE_TAGS = "".join(FIXED_SIZE) + "sb[]"  # what python-osc decodes; nothing else is accepted


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # why not, when not ok: short, fixed wording, no bytes of the datagram
    messages: int = 0  # messages in the datagram, nested bundles included


class _Malformed(Exception):
    pass


def check(data: bytes) -> Verdict:
    """Whether ``data`` is one well-formed OSC packet python-osc can parse as it stands."""
    try:
        if data.startswith(BUNDLE):
            count = _bundle(data, 0, len(data), 1)
        elif data.startswith(b"/"):
            count = _message(data, 0, len(data))
        elif not data:
            raise _Malformed("empty datagram")
        else:
            raise _Malformed("neither an OSC message (/...) nor a bundle (#bundle)")
    except _Malformed as bad:
        return Verdict(False, str(bad))
    return Verdict(True, messages=count)


def peek_address(data: bytes, limit: int = 256) -> Optional[str]:
    """The address a datagram is for, read from its first bytes, or None: enough to answer a
    datagram that is too large to parse. A bundle answers as ``#bundle``."""
    if data.startswith(BUNDLE):
        return "#bundle"
    if not data.startswith(b"/"):
        return None
    end = data.find(b"\x00", 0, limit)
    head = data[: end if end >= 0 else 0]
    if not head or any(b < 0x21 or b > 0x7E for b in head):
        return None
    return head.decode("ascii")


# ---------------------------------------------------------------------- the walk
def _bundle(data: bytes, start: int, end: int, depth: int) -> int:
    i = start + len(BUNDLE)
    if end - i < 8:
        raise _Malformed("bundle time tag cut short")
    i += 8
    count = 0
    while i < end:
        if end - i < 4:
            raise _Malformed("bundle element size cut short")
        size = int.from_bytes(data[i : i + 4], "big", signed=True)
        i += 4
        if size <= 0:
            raise _Malformed(f"bundle element size {size} is not positive")
        if size % 4:
            raise _Malformed(f"bundle element size {size} is not a multiple of 4")
        if size > end - i:
            raise _Malformed(f"bundle element size {size} runs past the packet ({end - i} bytes left)")
        if data.startswith(BUNDLE, i, i + size):
            if depth >= MAX_BUNDLE_DEPTH:
                raise _Malformed(f"bundles nested more than {MAX_BUNDLE_DEPTH} deep")
            count += _bundle(data, i, i + size, depth + 1)
        elif data.startswith(b"/", i, i + size):
            count += _message(data, i, i + size)
        else:
            raise _Malformed("bundle element is neither a message nor a bundle")
        if count > MAX_MESSAGES_PER_DATAGRAM:
            raise _Malformed(f"more than {MAX_MESSAGES_PER_DATAGRAM} messages in one datagram")
        i += size
    return count


def _message(data: bytes, start: int, end: int) -> int:
    address, i = _string(data, start, end, "address")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in address):
        raise _Malformed("address holds characters other than printable ASCII")
    if i == end:
        return 1  # no type tag string: a message without arguments (OSC 1.0 allows it)
    tags, i = _string(data, i, end, "type tag string")
    if not tags.startswith(","):
        raise _Malformed("type tag string does not start with ','")
    depth = 0
    for n, tag in enumerate(tags[1:], 1):
        if tag in FIXED_SIZE:
            size = FIXED_SIZE[tag]
            if end - i < size:
                raise _Malformed(f"argument {n} ('{tag}') cut short")
            i += size
        elif tag == "s":
            _, i = _string(data, i, end, f"argument {n} ('s')")
        elif tag == "b":
            if end - i < 4:
                raise _Malformed(f"argument {n} ('b') size cut short")
            size = int.from_bytes(data[i : i + 4], "big", signed=True)
            if size < 0:
                raise _Malformed(f"argument {n} ('b') size {size} is negative")
            padded = size + (-size % 4)
            if padded > end - i - 4:
                raise _Malformed(f"argument {n} ('b') size {size} runs past the packet")
            if any(data[i + 4 + size : i + 4 + padded]):
                raise _Malformed(f"argument {n} ('b') padding is not zero")
            i += 4 + padded
        elif tag == "[":
            depth += 1
            if depth > MAX_ARRAY_DEPTH:
                raise _Malformed(f"arrays nested more than {MAX_ARRAY_DEPTH} deep")
        elif tag == "]":
            depth -= 1
            if depth < 0:
                raise _Malformed("']' without '[' in the type tags")
        else:
            raise _Malformed(f"type tag {tag!r} is not supported (only {TYPE_TAGS})")
    if depth:
        raise _Malformed("'[' without ']' in the type tags")
    if i != end:
        raise _Malformed(f"{end - i} bytes after the last argument")
    return 1


def _string(data: bytes, start: int, end: int, what: str) -> tuple[str, int]:
    """An OSC string at ``start``: its text and where the next field begins."""
    nul = data.find(b"\x00", start, end)
    if nul < 0:
        raise _Malformed(f"{what} has no terminating NUL")
    stop = start + (nul - start + 4) // 4 * 4
    if stop > end:
        raise _Malformed(f"{what} padding runs past the packet")
    if any(data[nul + 1 : stop]):
        raise _Malformed(f"{what} padding is not zero")
    try:
        text = data[start:nul].decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed(f"{what} is not UTF-8") from None
    return text, stop
