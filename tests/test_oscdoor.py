"""The OSC door under attack: a real ``audiohost serve`` spoken to over UDP with datagrams that
froze, flooded or fooled it before, plus the pure pieces behind it (limits, reply fitting,
log escaping, the allowlist note and the drop-line throttle)."""

from __future__ import annotations

import logging
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage

from host.daemon.announce import DONE, build, clip_bytes, done_fits, fit
from host.daemon.config import DaemonConfig
from host.daemon.logtext import OneLineFormatter, escape_controls
from host.intake import limits
from host.intake.osc import Throttle
from host.jobs.journal import Journal
from tests.oscpeer import Daemon, OscPeer
from tests.test_daemon import done_or_failed, job_id_of, make_project

THE_20_BYTES = b"#bundle\x00" + bytes(7) + b"\x01" + struct.pack(">i", -4)
EMOJI = "\U0001f3b5"  # four bytes of UTF-8 in one character


class Peer(OscPeer):
    """An OscPeer that sends and listens from a chosen loopback address and keeps the size of
    every reply datagram."""

    def __init__(self, ip: str = "127.0.0.1"):
        self.daemon = ("127.0.0.1", 0)
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listen.bind((ip, 0))
        self.reply_port = self.listen.getsockname()[1]
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.out.bind((ip, 0))
        self.received: list[tuple[str, list]] = []
        self.sizes: list[tuple[str, int]] = []

    def poll(self, timeout: float):
        self.listen.settimeout(timeout)
        try:
            data, _ = self.listen.recvfrom(65536)
        except socket.timeout:
            return None
        msg = OscMessage(data)
        item = (msg.address, list(msg.params))
        self.received.append(item)
        self.sizes.append((msg.address, len(data)))
        return item

    def error_for(self, *args, timeout: float = 10.0) -> str:
        """Send a request and return the reason of the /audiohost/error it gets."""
        self.received.clear()
        self.send(*args)
        return self.wait_for(lambda m: m[0] == "/audiohost/error" and m[1][0] == args[0], timeout)[1][1]

    def stats(self) -> list:
        self.received.clear()
        self.send("/audiohost/stats")
        return self.wait_for(lambda m: m[0] == "/audiohost/stats", 10)[1]


def start(project: Path, state: Path, peer: Peer, extra=(), config: Path | None = None) -> Daemon:
    daemon = Daemon([project], state, peer.reply_port, extra=list(extra), config=config).start()
    peer.daemon = ("127.0.0.1", daemon.port)
    return daemon


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    """A daemon serving a project whose path is long (so take paths fill a reply), and a peer."""
    base = tmp_path_factory.mktemp("door")
    project = make_project(base / ("d" * 90) / ("e" * 90) / "proj")
    peer = Peer()
    daemon = start(project, base / "state", peer)
    try:
        daemon.wait_ready(peer)
        yield daemon, peer, project, base / "state"
    finally:
        code = daemon.stop()
        peer.close()
    assert code == 0, daemon.log.read_text()[-2000:]


# ====================================================================== 0. the listener is never stuck
def test_the_twenty_byte_bundle_does_not_freeze_the_listener(door):
    daemon, peer, _, state = door
    log_before = daemon.log.stat().st_size
    peer.send_raw(THE_20_BYTES)
    assert peer.ping(timeout=10)  # the watchdog: on the old parser this never answers
    time.sleep(0.5)
    assert daemon.log.stat().st_size - log_before < 10_000  # no endless warnings either
    assert peer.stats()[2] >= 1  # counted as malformed


def test_bundles_at_every_size_boundary_leave_the_door_answering(door):
    _, peer, _, _ = door
    ping = b"/audiohost/ping\x00,\x00\x00\x00"
    head = b"#bundle\x00" + bytes(7) + b"\x01"
    malformed_before = peer.stats()[2]
    bad = 0
    for size in (-(2**31), -8, -4, -1, 0, 1, 3, 4, 16, 19, 21, 24, 2**31 - 1):
        for nested in (False, True):
            inner = head + struct.pack(">i", size) + ping
            data = head + struct.pack(">i", len(inner)) + inner if nested else inner
            peer.send_raw(data)
            bad += size != len(ping)
    peer.send_raw(head + struct.pack(">i", len(ping)) + ping + struct.pack(">i", len(ping)) + ping)  # two pings in one
    peer.received.clear()
    deadline = time.monotonic() + 10
    while sum(1 for m in peer.received if m[0] == "/audiohost/pong") < 2 and time.monotonic() < deadline:
        peer.poll(0.2)
    assert sum(1 for m in peer.received if m[0] == "/audiohost/pong") == 2
    assert peer.stats()[2] - malformed_before == bad


# ====================================================================== 0b. limits answered, replies fitted, logs one line each
def test_a_datagram_over_the_largest_accepted_is_answered_with_the_limit(door):
    _, peer, _, _ = door
    head = b"/audiohost/ping\x00,b\x00\x00"
    for total, expect in ((limits.MAX_DATAGRAM_BYTES, "takes at most 0 arguments"), (limits.MAX_DATAGRAM_BYTES + 4, f"largest accepted is {limits.MAX_DATAGRAM_BYTES} bytes"), (60000, "the datagram is 60000 bytes")):
        blob = total - len(head) - 4
        peer.received.clear()
        peer.send_raw(head + struct.pack(">i", blob) + bytes(blob))
        reply = peer.wait_for(lambda m: m[0] == "/audiohost/error", 10)[1]
        assert reply[0] == "/audiohost/ping" and expect in reply[1], (total, reply)
    assert peer.ping()


def test_text_fields_are_refused_past_their_documented_limits(door):
    _, peer, _, _ = door
    p, t, path = limits.MAX_PROMPT_CHARS, limits.MAX_TAG_CHARS, limits.MAX_PATH_CHARS
    # at the limit the field passes and the request fails later for its own reason
    assert "unknown project" in peer.error_for("/audiohost/foley", "nosuch", "x" * p, 1.0, 1, 1, "t" * t)
    assert peer.error_for("/audiohost/foley", "proj", "x" * (p + 1)) == f"prompt or preset is {p + 1} characters long; the longest accepted is {p}"
    assert peer.error_for("/audiohost/foley", "proj", "quick", 1.0, 1, 1, "t" * (t + 1)) == f"tag is {t + 1} characters long; the longest accepted is {t}"
    assert "unknown project" in peer.error_for("/audiohost/foley", "p" * path, "quick")
    assert peer.error_for("/audiohost/foley", "p" * (path + 1), "quick").startswith(f"project is {path + 1} characters long")
    assert peer.error_for("/audiohost/restyle", "proj", "s/" * 600, "quick").startswith("input path is 1200 characters long")
    assert peer.error_for("/audiohost/render", "proj", "c" * 101).startswith("cue is 101 characters long; the longest accepted is 100")


def test_integers_out_of_range_are_refused_naming_the_field(door):
    daemon, peer, _, _ = door
    assert peer.error_for("/audiohost/cancel", 1e30).startswith("job id must be between 1 and ")
    assert peer.error_for("/audiohost/status", 1e30).startswith("job id must be between 1 and ")
    assert peer.error_for("/audiohost/status", 0).startswith("job id must be between 1 and ")
    assert peer.error_for("/audiohost/foley", "proj", "quick", 1.0, 1e30).startswith("seed must be between")
    assert peer.error_for("/audiohost/foley", "proj", "quick", 1.0, 5.0, 1e30).startswith("takes must be between")
    assert peer.error_for("/audiohost/foley", "proj", "quick", 1.0, 5.0, 40).startswith("takes: must be between 1 and 32")
    assert peer.error_for("/audiohost/subscribe", 1e30).startswith("port must be between 0 and 65535")
    assert peer.error_for("/audiohost/subscribe", 70000).startswith("port must be between 0 and 65535")
    log = daemon.log.read_text()
    assert "internal error" not in log and "Traceback" not in log


def test_the_done_reply_carries_every_path_and_clips_the_tag_to_fit(door):
    _, peer, project, _ = door
    tag = EMOJI * limits.MAX_TAG_CHARS  # 1 KB of tag: with these long paths the reply would pass 4 KB
    peer.received.clear()
    peer.sizes.clear()
    peer.send("/audiohost/foley", "proj", "quick", 1.0, 4321, 12, tag)
    job_id = peer.wait_for(lambda m: m[0] == "/audiohost/job/queued", 10)[1][0]
    address, args = done_or_failed(peer, job_id, 180)
    assert address == "/audiohost/job/done", args
    paths = [Path(p) for p in args[1:-1]]
    assert len(paths) == 12 and all(p.is_file() and p.parent == project / "renders" / "foley" / "quick" for p in paths)
    assert args[-1].startswith(EMOJI * 10) and args[-1].endswith("...") and len(args[-1]) < len(tag)
    assert all(size <= limits.MAX_REPLY_BYTES for _, size in peer.sizes), peer.sizes
    assert max(size for a, size in peer.sizes if a == DONE) > limits.MAX_REPLY_BYTES - 16  # it was filled, not emptied
    queued = next(m for m in peer.received if m[0] == "/audiohost/job/queued")
    assert queued[1][-1] == tag  # small replies keep the whole tag


def test_a_request_whose_paths_cannot_fit_one_reply_is_refused_up_front(door):
    _, peer, project, state = door
    widest = str(project / "renders" / "foley" / "quick" / "quick_t9999.flac")
    most = max(n for n in range(1, 33) if done_fits([widest] * n))
    assert 12 <= most < 32  # this project's paths: the 12 takes above fit, 32 do not
    journal = Journal(state / "journal.sqlite")
    before = sum(journal.counts().values())
    reason = peer.error_for("/audiohost/foley", "proj", "quick", 1.0, 5, 32, "many")
    assert reason == f"takes: 32 takes of 'quick' have paths of up to {len(widest)} bytes, more than one 4096-byte reply holds; at most {most} per request here"
    assert "reply holds" not in peer.error_for("/audiohost/foley", "proj", "quick", 1.0, 5, most, "t" * 300)  # refused for the tag, not the takes
    assert sum(journal.counts().values()) == before
    journal.close()


def test_a_newline_in_a_project_name_cannot_forge_a_log_line(door):
    daemon, peer, _, state = door
    forged = "2099-01-01 00:00:00,000 INFO host.daemon: job 1 done"
    peer.error_for("/audiohost/foley", f"evil\n{forged}\x1b[2J", "rain", 1.0, -1, 1, "tag\r\nx")
    time.sleep(0.3)
    for log in (state / "audiohost.log", daemon.log):
        lines = log.read_text().splitlines()
        assert not any(line.startswith("2099-01-01") for line in lines)
        refused = [line for line in lines if "unknown project 'evil" in line]
        assert len(refused) == 1 and "\\n2099-01-01" in refused[0] and "\\x1b[2J" in refused[0]
        assert "\x1b" not in log.read_text()


# ====================================================================== 0c. wider than loopback, dropped datagrams
def test_bound_wider_than_loopback_with_the_default_allowlist_says_so_at_start(tmp_path):
    project = make_project(tmp_path / "proj")
    peer = Peer()
    daemon = start(project, tmp_path / "state", peer, extra=["--osc-host", "0.0.0.0"])
    try:
        deadline = time.monotonic() + 60
        while b"listening for OSC" not in daemon.log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        lines = [line for line in daemon.log.read_text().splitlines() if "only loopback clients" in line]
        assert len(lines) == 1
        assert "listening on 0.0.0.0" in lines[0] and 'allow = ["127.0.0.0/8", "192.168.1.0/24"]' in lines[0]
        assert peer.ping(timeout=10)  # loopback is still served
    finally:
        daemon.stop()
        peer.close()


def test_datagrams_from_outside_the_allowlist_are_counted_and_their_log_lines_limited(tmp_path):
    project = make_project(tmp_path / "proj")
    config = tmp_path / "host.toml"
    config.write_text('allow = ["127.0.0.2/32"]\n')
    peer = Peer("127.0.0.2")  # the one allowed client
    daemon = start(project, tmp_path / "state", peer, config=config)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    try:
        daemon.wait_ready(peer)  # from 127.0.0.2, the allowed client
        stats = peer.stats()
        # dropped is the sixth field; the render replicas are appended after it (one, in-process)
        assert len(stats) == 12 and stats[5] == 0 and stats[6:8] == [1, 0] and stats[9] == "cpu"
        for k in range(300):
            stranger.sendto(b"/audiohost/ping\x00,\x00\x00\x00" if k % 2 else b"junk", ("127.0.0.1", daemon.port))
            if k % 20 == 19:
                time.sleep(0.05)  # within the socket's receive buffer on a busy machine
        deadline = time.monotonic() + 10
        while peer.stats()[5] < 300 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert peer.stats()[5] == 300
        assert peer.stats()[2] == 0  # dropped, not counted as malformed
        lines = [line for line in daemon.log.read_text().splitlines() if "dropped a datagram from 127.0.0.1" in line]
        assert len(lines) == 1 and "allow = [...] in the config file" in lines[0]
    finally:
        stranger.close()
        daemon.stop()
        peer.close()


# ====================================================================== real clients nobody here wrote: liblo
OSCSEND, OSCDUMP = shutil.which("oscsend"), shutil.which("oscdump")


@pytest.mark.skipif(not (OSCSEND and OSCDUMP), reason="oscsend/oscdump (liblo-tools) are not installed")
def test_liblo_oscsend_requests_and_oscdump_reads_every_reply(door):
    _, peer, project, _ = door
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dump_port = s.getsockname()[1]
    dump = subprocess.Popen([OSCDUMP, "-L", str(dump_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.5)

        def oscsend(*args: str) -> None:
            subprocess.run([OSCSEND, "127.0.0.1", str(peer.daemon[1]), *args], check=True, timeout=10)

        peer.received.clear()
        oscsend("/audiohost/subscribe", "i", str(dump_port))  # job events now reach oscdump too
        peer.wait_for(lambda m: m[0] == "/audiohost/subscribed" and m[1][1] == dump_port, 10)
        oscsend("/audiohost/foley", "ssfiis", "proj", "quick", "1.0", "555", "1", "from-liblo")
        job_id = job_id_of(peer, "from-liblo")
        address, args = done_or_failed(peer, job_id, 120)
        assert address == "/audiohost/job/done"
        malformed = peer.stats()[2]
        oscsend("/audiohost/foley", "sSf", "proj", "quick", "1.0")  # a symbol: python-osc cannot decode it
        peer.received.clear()
        oscsend("/audiohost/ping")
        assert peer.wait_for(lambda m: m[0] == "/audiohost/pong", 10)
        malformed = peer.stats()[2] - malformed
        time.sleep(1.0)
    finally:
        dump.terminate()
        out = dump.communicate(timeout=10)[0]
    lines = [line.split(" ", 1)[-1] for line in out.splitlines()]  # oscdump prints "<timetag> <address> <types> <values>"
    assert f'/audiohost/job/queued is {job_id} "from-liblo"' in lines, out
    assert f'{DONE} iss {job_id} "{args[1]}" "from-liblo"' in lines, out
    assert malformed == 1


# ====================================================================== the pure pieces
def test_fit_clips_free_text_never_the_kept_paths():
    paths = ["/p/" + "x" * 290 + f"_t{k:02d}.wav" for k in range(13)]
    args = fit(DONE, [7, *paths, EMOJI * 256], keep=range(1, 14))
    assert args[1:14] == paths and len(build(DONE, args)) <= limits.MAX_REPLY_BYTES
    assert args[-1].endswith("...") and args[-1].startswith(EMOJI)
    assert fit(DONE, [7, *paths * 2, "t"], keep=range(1, 27)) is None  # nothing left to clip
    assert fit("/audiohost/job/failed", [7, "r" * 5000, "t" * 200])[1].endswith("...")
    assert clip_bytes(EMOJI * 3, 9) == EMOJI + "..." and clip_bytes("abc", 3) == "abc" and clip_bytes("abcd", 3) == ""


def test_escape_controls_and_the_formatter_keep_one_call_on_one_line():
    assert escape_controls("a\nb\r\t\x1b[0m\x00\x7f\x85\u2028ü") == "a\\nb\\r\\t\\x1b[0m\\x00\\x7f\\x85\\u2028ü"
    assert escape_controls(escape_controls("x\ny")) == "x\\ny"
    record = logging.LogRecord("host", logging.WARNING, __file__, 1, "refused %s", ("evil\nINFO forged",), None)
    try:
        raise ValueError("boom\nINFO forged too")
    except ValueError:
        record.exc_info = sys.exc_info()
    text = OneLineFormatter("%(levelname)s %(message)s").format(record)
    first, *rest = text.splitlines()
    assert first == "WARNING refused evil\\nINFO forged"
    assert rest and all(line.startswith("    | ") for line in rest)


def test_the_loopback_note_appears_only_when_wide_with_the_default_allowlist():
    assert DaemonConfig(osc_host="0.0.0.0").loopback_only_note()
    assert DaemonConfig(osc_host="::").loopback_only_note()
    assert DaemonConfig(osc_host="myhost.local").loopback_only_note()
    assert DaemonConfig(osc_host="127.0.0.1").loopback_only_note() is None
    assert DaemonConfig(osc_host="localhost").loopback_only_note() is None
    assert DaemonConfig(osc_host="0.0.0.0", allow=["192.168.1.0/24"]).loopback_only_note() is None


def test_throttle_lets_one_line_per_sender_per_period_and_counts_the_rest():
    now = [0.0]
    throttle = Throttle(10.0, 3, clock=lambda: now[0])
    assert throttle.allow("a") == 0
    assert [throttle.allow("a") for _ in range(5)] == [None] * 5
    assert throttle.allow("b") == 0  # another sender has its own line
    now[0] = 10.0
    assert throttle.allow("a") == 5  # the next line says how many were held back
    for k in range(10):
        throttle.allow(f"spoofed-{k}")
    assert len(throttle) == 3  # bounded however many senders there are
