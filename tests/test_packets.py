"""The OSC datagram check that runs before python-osc's parser: structured cases at and around
every size boundary, mutations of real packets, packets built by other encoders (python-osc's
builders, liblo's oscsend), and random bytes. The invariant throughout: the check answers at
once, and whatever it passes python-osc parses quickly, without an error or a warning, into
the number of messages the check counted."""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from host.intake import limits
from host.intake.packets import BUNDLE, check, peek_address

THE_20_BYTES = b"#bundle\x00" + bytes(7) + b"\x01" + struct.pack(">i", -4)
SIZES_AROUND = (-(2**31), -8, -4, -1, 0, 1, 2, 3, 5, 2**31 - 1)


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail instead of hanging: python-osc's bundle parser can loop forever."""

    def expired(*_):
        raise TimeoutError(f"parsing took longer than {seconds}s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def agrees_with_parser(data: bytes):
    """The check's verdict on ``data``; if it passes, python-osc must parse it cleanly."""
    with deadline(2.0):
        verdict = check(data)
    if verdict.ok:
        warnings = _Warnings()
        logging.getLogger().addHandler(warnings)
        try:
            with deadline(2.0):
                packet = OscPacket(data)
        finally:
            logging.getLogger().removeHandler(warnings)
        assert len(packet.messages) == verdict.messages, data
        assert not warnings.records, [r.getMessage() for r in warnings.records]
    else:
        assert verdict.reason and verdict.messages == 0
    return verdict


def message(address: str, *args) -> bytes:
    msg = OscMessageBuilder(address=address)
    for a in args:
        msg.add_arg(a)
    return msg.build().dgram


def bundle(*elements: bytes, timetag: bytes = bytes(7) + b"\x01") -> bytes:
    """A bundle by hand, so sizes can be anything."""
    return BUNDLE + timetag + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def size_fields(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(offset, value) of every element size field in a well-formed bundle, nested ones included."""
    end = len(data) if end is None else end
    found, i = [], start + 16
    while i < end:
        size = struct.unpack(">i", data[i : i + 4])[0]
        found.append((i, size))
        if data.startswith(BUNDLE, i + 4):
            found += size_fields(data, i + 4, i + 4 + size)
        i += 4 + size
    return found


PING = message("/audiohost/ping")
FOLEY = message("/audiohost/foley", "proj", "rain on a tin roof", 4.0, 7, 2, "clip7")
EVERY_TYPE = message("/t", 1, 2**40, 1.5, "text", b"\x01\x02\x03\x04\x05", True, False, None, [1, ["x", 2.5]])
NESTED = bundle(PING, bundle(FOLEY, bundle(EVERY_TYPE)), message("/audiohost/status", 3))


# ---------------------------------------------------------------------- the datagram that froze the daemon
def test_the_twenty_byte_bundle_with_a_negative_element_size_is_malformed():
    assert len(THE_20_BYTES) == 20
    verdict = agrees_with_parser(THE_20_BYTES)
    assert not verdict.ok and "size -4 is not positive" in verdict.reason


# ---------------------------------------------------------------------- well-formed packets pass
@pytest.mark.parametrize("data", [PING, FOLEY, EVERY_TYPE, NESTED, bundle(), bundle(PING), b"/a\x00\x00"])
def test_well_formed_messages_and_bundles_pass_with_their_message_count(data):
    verdict = agrees_with_parser(data)
    assert verdict.ok, verdict.reason
    assert verdict.messages == {PING: 1, FOLEY: 1, EVERY_TYPE: 1, NESTED: 4, bundle(): 0, bundle(PING): 1}.get(data, 1)


# ---------------------------------------------------------------------- bundle element sizes at every boundary
@pytest.mark.parametrize("packet", [bundle(PING, FOLEY), NESTED, bundle(bundle(bundle(PING)))])
def test_every_element_size_set_to_every_boundary_value(packet):
    assert check(packet).ok
    for offset, size in size_fields(packet):
        room = len(packet) - offset - 4  # bytes after this size field
        for value in {*SIZES_AROUND, size - 4, size - 1, size + 1, size + 4, room, room + 1, room + 4}:
            if value == size or not -(2**31) <= value < 2**31:
                continue
            mutated = packet[:offset] + struct.pack(">i", value) + packet[offset + 4 :]
            verdict = agrees_with_parser(mutated)
            if value <= 0 or value % 4 or value > room:
                assert not verdict.ok, (offset, value)
                assert str(value) in verdict.reason


def test_size_reasons_name_what_is_wrong():
    assert check(bundle() + struct.pack(">i", 0)).reason == "bundle element size 0 is not positive"
    assert check(bundle() + struct.pack(">i", 6) + PING + b"\0\0").reason == "bundle element size 6 is not a multiple of 4"
    assert check(bundle() + struct.pack(">i", 24) + PING).reason == "bundle element size 24 runs past the packet (20 bytes left)"
    assert check(bundle(PING) + b"\0\0").reason == "bundle element size cut short"
    assert check(BUNDLE + bytes(7)).reason == "bundle time tag cut short"
    assert check(bundle(b"\0\0\0\0")).reason == "bundle element is neither a message nor a bundle"


def test_every_cut_of_a_packet_is_judged_like_the_parser_would():
    for packet in (NESTED, EVERY_TYPE, FOLEY):
        for n in range(len(packet)):
            agrees_with_parser(packet[:n])  # a cut at an element boundary may still be whole


def test_every_byte_of_a_nested_bundle_replaced_by_boundary_values():
    for i in range(len(NESTED)):
        for value in {0x00, 0x01, 0x03, 0x04, 0x7F, 0x80, 0xFF, NESTED[i] ^ 0x01}:
            agrees_with_parser(NESTED[:i] + bytes([value]) + NESTED[i + 1 :])


# ---------------------------------------------------------------------- bounds
def nest(depth: int) -> bytes:
    packet = PING
    for _ in range(depth):
        packet = bundle(packet)
    return packet


def test_bundles_nest_up_to_the_limit_and_no_deeper():
    assert agrees_with_parser(nest(limits.MAX_BUNDLE_DEPTH)).ok
    verdict = agrees_with_parser(nest(limits.MAX_BUNDLE_DEPTH + 1))
    assert not verdict.ok and f"nested more than {limits.MAX_BUNDLE_DEPTH} deep" in verdict.reason
    assert not check(nest(400)).ok  # python-osc would recurse once per level


def test_a_datagram_carries_up_to_the_message_limit_and_no_more():
    n = limits.MAX_MESSAGES_PER_DATAGRAM
    assert agrees_with_parser(bundle(*[PING] * n)).messages == n
    assert not check(bundle(*[PING] * (n + 1))).ok
    assert not check(bundle(bundle(*[PING] * (n // 2)), bundle(*[PING] * (n // 2 + 1)))).ok  # nested ones count too


def test_arrays_nest_up_to_the_limit_and_must_close():
    deep = limits.MAX_ARRAY_DEPTH
    assert agrees_with_parser(b"/a\0\0" + _tags("," + "[" * deep + "]" * deep)).ok
    assert "nested more than" in check(b"/a\0\0" + _tags("," + "[" * (deep + 1) + "]" * (deep + 1))).reason
    assert check(b"/a\0\0" + _tags(",]")).reason == "']' without '[' in the type tags"
    assert check(b"/a\0\0" + _tags(",[")).reason == "'[' without ']' in the type tags"


def _tags(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return raw + bytes(-len(raw) % 4)


# ---------------------------------------------------------------------- messages: every argument type and size
@pytest.mark.parametrize(
    "tag, width",
    [("i", 4), ("f", 4), ("r", 4), ("m", 4), ("h", 8), ("d", 8), ("t", 8)],
)
def test_fixed_width_arguments_need_exactly_their_bytes(tag, width):
    head = b"/a\0\0" + _tags("," + tag)
    for n in range(width + 5):
        verdict = agrees_with_parser(head + bytes(n))
        assert verdict.ok == (n == width), (tag, n, verdict.reason)


def test_blob_sizes_at_and_around_the_data():
    head = b"/a\0\0" + _tags(",b")
    for size in (-(2**31), -4, -1, 0, 1, 3, 4, 5, 7, 8, 2**31 - 1):
        for have in range(0, 13):
            verdict = agrees_with_parser(head + struct.pack(">i", size) + bytes(have))
            assert verdict.ok == (size >= 0 and have == size + (-size % 4)), (size, have)


def test_strings_need_a_nul_zero_padding_and_utf8():
    assert check(b"/a\0\0" + _tags(",s") + b"abcd").reason == "argument 1 ('s') has no terminating NUL"
    assert check(b"/a\0\0" + _tags(",s") + b"ab\0x").reason == "argument 1 ('s') padding is not zero"
    assert check(b"/a\0\0" + _tags(",s") + b"\xff\xfe\0\0").reason == "argument 1 ('s') is not UTF-8"
    assert check(b"/a\0\0" + _tags(",s") + b"ab\0").reason == "argument 1 ('s') padding runs past the packet"
    assert check(b"/a\0\0,s\0").reason == "type tag string padding runs past the packet"
    assert check(b"/a b\0\0\0\0").reason == "address holds characters other than printable ASCII"
    assert check(b"/a\0\0xs\0\0").reason == "type tag string does not start with ','"
    assert check(b"/audiohost/ping\0\0\0\0\0").reason == "type tag string does not start with ','"
    assert check(FOLEY + bytes(4)).reason == "4 bytes after the last argument"
    assert check(b"").reason == "empty datagram"
    assert check(b"hello").reason == "neither an OSC message (/...) nor a bundle (#bundle)"


@pytest.mark.parametrize("tag", ["S", "c", "I", "x", "é"])
def test_type_tags_python_osc_cannot_decode_are_refused(tag):
    verdict = agrees_with_parser(b"/a\0\0" + _tags("," + tag) + bytes(4))
    assert not verdict.ok and repr(tag) in verdict.reason


def test_peek_address_reads_just_enough_to_answer_an_oversized_datagram():
    assert peek_address(FOLEY + bytes(100000)) == "/audiohost/foley"
    assert peek_address(NESTED) == "#bundle"
    assert peek_address(b"/no-nul-within-the-first-bytes" * 20) is None
    assert peek_address(b"/a b\0") is None and peek_address(b"junk") is None


# ---------------------------------------------------------------------- another encoder: liblo's oscsend
OSCSEND = shutil.which("oscsend")


@pytest.mark.skipif(OSCSEND is None, reason="oscsend (liblo-tools) is not installed")
@pytest.mark.parametrize(
    "types, values, ok",
    [
        ("sfi", ["proj", "1.5", "7"], True),
        ("hdTFNm", ["99999999999", "2.5", "00ff0000"], True),
        ("s", ["ünïcødé prompt"], True),
        ("", [], True),
        ("S", ["symbol"], False),  # liblo types python-osc skips without reading their bytes
        ("c", ["x"], False),
        ("I", [], False),
    ],
)
def test_datagrams_written_by_liblo(types, values, ok):
    data = subprocess.run([OSCSEND, "-", "/audiohost/foley", types, *values], capture_output=True, check=True, timeout=10).stdout
    assert agrees_with_parser(data).ok == ok


# ---------------------------------------------------------------------- generated packets and random bytes
def osc_args():
    scalar = st.one_of(
        st.integers(-(2**31), 2**31 - 1),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(width=32, allow_nan=False),
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
        st.binary(min_size=1, max_size=20),
        st.booleans(),
        st.none(),
    )
    return st.lists(st.one_of(scalar, st.lists(scalar, max_size=3)), max_size=8)


addresses = st.from_regex(r"/[a-z]{1,10}(/[a-z0-9_]{1,10}){0,3}", fullmatch=True)
messages = st.builds(lambda a, args: message(a, *args), addresses, osc_args())


def built_bundle(contents: list) -> bytes:
    b = OscBundleBuilder(IMMEDIATELY)
    for c in contents:
        b.add_content(c)
    return b.build().dgram


def _content(dgram: bytes):
    return OscBundle(dgram) if dgram.startswith(BUNDLE) else OscMessage(dgram)


packets_st = st.recursive(
    messages,
    lambda inner: st.lists(inner, max_size=4).map(lambda items: built_bundle([_content(i) for i in items])),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets_st)
def test_packets_built_by_python_osc_pass(data):
    if data.count(BUNDLE) >= limits.MAX_BUNDLE_DEPTH:
        return  # nesting past the limit is refused on purpose
    verdict = agrees_with_parser(data)
    assert verdict.ok, verdict.reason


@settings(max_examples=300, deadline=None)
@given(packets_st, st.data())
def test_built_packets_with_one_int32_overwritten(data, draw):
    offset = draw.draw(st.integers(0, max(0, len(data) - 4)))
    value = draw.draw(st.sampled_from([*SIZES_AROUND, 4, 8, 12, len(data), len(data) - offset]))
    agrees_with_parser(data[:offset] + struct.pack(">i", value) + data[offset + 4 :])


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=60).map(lambda b: BUNDLE + b), st.binary(max_size=60).map(lambda b: b"/a\0\0," + b)))
def test_random_bytes_never_hang_or_crash_the_check(data):
    agrees_with_parser(data)
