"""The Max for Live device: its patcher JSON is a valid patch whose OSC objects use the README's
OSC reference, its .amxd round-trips, and its js logic (run in Node with the Max and Live API
globals recorded, tests/m4l_harness.js) connects on a port of its own, fills its menus from
the daemon's paged listings, sends the request the panel describes and loads the first take
into the next empty clip slot."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from host.daemon.config import DaemonConfig
from host.daw import amxd
from host.daw.install import ABLETON_DEVICE, build_device

ROOT = Path(__file__).resolve().parents[1]
PATCHER = ABLETON_DEVICE / "audiohost.maxpat"
DEVICE_JS = ABLETON_DEVICE / "audiohost_device.js"
HARNESS = Path(__file__).with_name("m4l_harness.js")


@pytest.fixture(scope="module")
def patch() -> dict:
    return json.loads(PATCHER.read_text(encoding="utf-8"))["patcher"]


def boxes(patch: dict) -> dict[str, dict]:
    return {b["box"]["id"]: b["box"] for b in patch["boxes"]}


def by_text(patch: dict, prefix: str) -> list[dict]:
    return [b for b in boxes(patch).values() if str(b.get("text", "")).split(" ")[0] == prefix]


def readme_addresses() -> tuple[set[str], set[str]]:
    """(request addresses, reply addresses) of the README's OSC reference tables."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### OSC reference") :]
    requests_table, replies_table = section.split("| reply | arguments |", 1)
    first_column = re.compile(r"^\| `(/audiohost/[a-z/]+)` \|", re.M)
    return set(first_column.findall(requests_table)), set(first_column.findall(replies_table.split("\n\n")[0]))


# ---------------------------------------------------------------------- the patch
def test_the_patcher_is_json_with_unique_ids_and_consistent_outlets(patch):
    ids = [b["box"]["id"] for b in patch["boxes"]]
    assert len(ids) == len(set(ids))
    for box in boxes(patch).values():
        if box["numoutlets"]:
            assert len(box["outlettype"]) == box["numoutlets"], box["id"]
    assert patch["openinpresentation"] == 1 and patch["devicewidth"] > 0


def test_every_connection_joins_an_existing_outlet_to_an_existing_inlet(patch):
    known = boxes(patch)
    assert patch["lines"]
    for line in patch["lines"]:
        (src, outlet), (dst, inlet) = line["patchline"]["source"], line["patchline"]["destination"]
        assert src in known and dst in known, line
        assert 0 <= outlet < known[src]["numoutlets"], line
        assert 0 <= inlet < known[dst]["numinlets"], line


def test_route_has_an_outlet_per_address_plus_the_rest(patch):
    [route] = by_text(patch, "route")
    n = len(route["text"].split()) - 1
    assert route["numoutlets"] == n + 1 and route["numinlets"] == n + 1


def test_the_osc_objects_use_the_readmes_addresses_and_ports(patch):
    requests, replies = readme_addresses()
    [send] = by_text(patch, "udpsend")
    _, host, port = send["text"].split()
    assert (host, int(port)) == ("127.0.0.1", DaemonConfig().osc_port)
    assert f"osc_port = {port}" in (ROOT / "README.md").read_text()
    [receive] = by_text(patch, "udpreceive")
    assert int(receive["text"].split()[1]) != DaemonConfig().reply_port  # never the DAW's 9011
    [route] = by_text(patch, "route")
    routed = route["text"].split()[1:]
    assert set(routed) <= replies, set(routed) - replies
    assert {"/audiohost/job/progress", "/audiohost/job/done", "/audiohost/job/failed", "/audiohost/error"} <= set(routed)
    sent = set(re.findall(r'"(/audiohost/[a-z/]+)"', DEVICE_JS.read_text()))
    assert sent <= requests, sent - requests
    assert {"/audiohost/replyport", "/audiohost/foley", "/audiohost/restyle", "/audiohost/presets", "/audiohost/projects", "/audiohost/cancel"} <= sent


def test_route_feeds_every_reply_to_a_js_function_of_the_same_name(patch):
    known = boxes(patch)
    [route] = by_text(patch, "route")
    [js] = by_text(patch, "js")
    source = DEVICE_JS.read_text()
    functions = set(re.findall(r"^function (\w+)\(", source, re.M))
    outs = {line["patchline"]["source"][1]: line["patchline"]["destination"][0] for line in patch["lines"] if line["patchline"]["source"][0] == route["id"]}
    for k, address in enumerate(route["text"].split()[1:]):
        prepend = known[outs[k]]
        name = prepend["text"].split()[1]
        assert prepend["text"].startswith("prepend ") and name in functions, address
        assert any(l["patchline"]["source"][0] == prepend["id"] and l["patchline"]["destination"][0] == js["id"] for l in patch["lines"])
    # and every message the panel sends to js has a function
    into_js = [known[l["patchline"]["source"][0]] for l in patch["lines"] if l["patchline"]["destination"][0] == js["id"]]
    for box in into_js:
        word = box["text"].split()[1] if box["text"].startswith("prepend ") else box["text"].split()[0]
        assert word in functions, box["text"]


def test_the_js_box_has_the_inlets_and_outlets_its_script_declares(patch):
    [js] = by_text(patch, "js")
    source = DEVICE_JS.read_text()
    assert js["text"] == "js " + DEVICE_JS.name
    assert js["numinlets"] == int(re.search(r"^inlets = (\d+);", source, re.M).group(1))
    assert js["numoutlets"] == int(re.search(r"^outlets = (\d+);", source, re.M).group(1))
    used = {l["patchline"]["source"][1] for l in patch["lines"] if l["patchline"]["source"][0] == js["id"]}
    assert used == set(range(js["numoutlets"]))  # every outlet goes somewhere


def test_audio_passes_through(patch):
    [plugin] = by_text(patch, "plugin~")
    [plugout] = by_text(patch, "plugout~")
    pairs = {(tuple(l["patchline"]["source"]), tuple(l["patchline"]["destination"])) for l in patch["lines"]}
    assert ((plugin["id"], 0), (plugout["id"], 0)) in pairs and ((plugin["id"], 1), (plugout["id"], 1)) in pairs


# ---------------------------------------------------------------------- the .amxd container
def test_the_built_amxd_round_trips_to_the_same_patcher_json():
    data = build_device()
    assert data[:4] == b"ampf" and struct.unpack("<I", data[4:8])[0] == 4 and data[8:12] == b"aaaa"
    assert data[12:16] == b"meta" and data[24:28] == b"ptch"
    assert struct.unpack("<I", data[28:32])[0] == len(data) - 32
    device_type, text = amxd.unpack(data)
    assert device_type == amxd.AUDIO_EFFECT
    assert text == PATCHER.read_text(encoding="utf-8")
    assert json.loads(text) == json.loads(PATCHER.read_text(encoding="utf-8"))


def test_a_damaged_amxd_is_refused_with_a_value_error_at_every_cut():
    data = build_device()
    for cut in list(range(0, 40)) + [len(data) - 1]:
        with pytest.raises(ValueError):
            amxd.unpack(data[:cut] if cut else b"")
    with pytest.raises(ValueError):
        amxd.unpack(b"xxxx" + data[4:])
    frozen = amxd.chunk(b"ampf", b"aaaa") + amxd.chunk(b"meta", b"\x07\x00\x00\x00") + amxd.chunk(b"ptch", b"mx@c" + bytes(12))
    with pytest.raises(ValueError, match="frozen"):
        amxd.unpack(frozen)
    with pytest.raises(ValueError):
        amxd.pack('{"not": "a patcher"}')


# ---------------------------------------------------------------------- the device's logic
def run_device(steps: list, live: dict, tmp_path: Path) -> dict:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed")
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"live": live, "steps": steps}))
    result = subprocess.run([node, str(HARNESS), str(DEVICE_JS), str(scenario)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


TAG = "m4l500000000"  # the harness makes Math.random() return 0.5
PORT = 40000


def connected_steps() -> list:
    return [
        ["init"], ["__tick"],
        ["replyport", PORT, ""],
        ["projects", 0, 1, "proj", "/sessions/proj", TAG],
        ["presets", "/sessions/proj", 0, 2, "quick", "foley", "restyle-texture", "restyle", TAG],
        ["presets", "/sessions/proj", 1, 2, "rain", "foley", TAG],
    ]


def osc_sent(out: list) -> list:
    return [o[1:] for o in out if o[0] == 0]


def test_the_device_connects_on_its_own_port_and_fills_its_menus_page_by_page(tmp_path):
    result = run_device(connected_steps(), {"version": [12, 1, 0], "track": "Track", "slots": [0]}, tmp_path)
    out = result["out"]
    assert [1, "port", PORT] in out  # udpreceive moved to the device's own port
    sent = osc_sent(out)
    assert sent[0] == ["/audiohost/replyport", PORT]  # ... announced to the daemon
    assert ["/audiohost/projects", 0, TAG] in sent
    assert ["/audiohost/presets", "/sessions/proj", 0, TAG] in sent and ["/audiohost/presets", "/sessions/proj", 1, TAG] in sent
    projects_menu = [o[1:] for o in out if o[0] == 3]
    assert ["append", "/sessions/proj"] in projects_menu
    presets_menu = [o[1:] for o in out if o[0] == 2]
    assert presets_menu[-3:] == [["append", "(prompt)"], ["append", "quick"], ["append", "rain"]]  # foley mode: foley presets


def test_render_sends_foley_then_progress_and_done_load_the_first_take_into_the_next_empty_slot(tmp_path):
    steps = connected_steps() + [
        ["prompt", "text", "rain", "on", "a", "roof"],
        ["duration", 3.5], ["takes", 2],
        ["render"],
        ["queued", 7, TAG],
        ["progress", 8, 0.9, "other"],  # someone else's job
        ["progress", 7, 0.5, TAG],
        ["done", 7, "/r/rain_t01.wav", "/r/rain_t02.wav", TAG],
    ]
    result = run_device(steps, {"version": [12, 0, 5], "track": "Track", "slots": [1, 1, 0, 0]}, tmp_path)
    sent = osc_sent(result["out"])
    assert ["/audiohost/foley", "/sessions/proj", "rain on a roof", 3.5, -1, 2, TAG] in sent
    progress = [o[1] for o in result["out"] if o[0] == 4]
    assert 0.9 not in progress and 0.5 in progress and progress[-1] == 1
    creates = [c for c in result["live"] if c[1] == "create_audio_clip"]
    assert creates == [["this_device canonical_parent clip_slots 2", "create_audio_clip", "/r/rain_t01.wav"]]
    paths = [o[1:] for o in result["out"] if o[0] == 6]
    assert paths[-1] == ["set", "/r/rain_t01.wav\n/r/rain_t02.wav"]
    status = [o[2] for o in result["out"] if o[0] == 5]
    assert "clip slot 3" in status[-1]


def test_older_live_gets_the_paths_only(tmp_path):
    steps = connected_steps() + [["prompt", "rain"], ["render"], ["queued", 3, TAG], ["done", 3, "/r/a.wav", TAG]]
    result = run_device(steps, {"version": [12, 0, 4], "track": "Track", "slots": [0]}, tmp_path)
    assert not [c for c in result["live"] if c[1] == "create_audio_clip"]
    assert [o[1:] for o in result["out"] if o[0] == 6][-1] == ["set", "/r/a.wav"]


def test_restyle_mode_sends_the_clips_file_with_the_strength_and_errors_reach_the_status_line(tmp_path):
    steps = connected_steps() + [
        ["mode", 1], ["preset", "restyle-texture"], ["strength", 0.3], ["render"],
        ["daemonerror", "/audiohost/restyle", "'/x/loop.wav' is outside the project roots this host serves"],
        ["render"], ["queued", 9, TAG], ["failed", 9, "loop.wav: not a readable audio file", TAG],
    ]
    result = run_device(steps, {"version": [12, 1, 0], "track": "Track", "slots": [0], "clip": "/x/loop.wav"}, tmp_path)
    sent = osc_sent(result["out"])
    assert ["/audiohost/restyle", "/sessions/proj", "/x/loop.wav", "restyle-texture", 0.3, TAG] in sent
    status = [o[2] for o in result["out"] if o[0] == 5]
    assert any("outside the project roots" in s for s in status)
    assert status[-1] == "job 9 failed: loop.wav: not a readable audio file"
    presets_menu = [o[1:] for o in result["out"] if o[0] == 2]
    assert presets_menu[-2:] == [["append", "(prompt)"], ["append", "restyle-texture"]]  # restyle mode


def test_cancel_sends_the_jobs_id(tmp_path):
    steps = connected_steps() + [["prompt", "rain"], ["render"], ["queued", 4, TAG], ["cancel"], ["cancelled", 4, TAG]]
    result = run_device(steps, {"version": [12, 1, 0], "track": "Track", "slots": [0]}, tmp_path)
    assert ["/audiohost/cancel", 4] in osc_sent(result["out"])
    assert [o[2] for o in result["out"] if o[0] == 5][-1] == "job 4 cancelled"


def test_the_js_is_valid_javascript():
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run([node, "--check", str(DEVICE_JS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
