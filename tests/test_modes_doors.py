"""Super-resolution and loops through every door: a drop folder, OSC, the cue sheet and
``audiohost request``, end to end against a real daemon on loopback ports; and the bad
requests each door refuses in one line naming the field. One daemon serves the module."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import firwin

from host.config.presets import preset_library
from host.config.project import load_cues, load_project
from host.errors import InputError
from host.intake.drops import stem_from_path
from tests.oscpeer import Daemon, OscPeer

QUICK = 'kind = "foley"\nprompt = "a quick test sound"\nduration = 1.5\nsteps = 2\ntakes = 1\n'
QUICK_SR = 'kind = "superres"\nprompt = "crisp air"\nsteps = 2\ntakes = 1\n'
QUICK_RESTYLE = 'kind = "restyle"\nprompt = "steel drum"\nsteps = 2\nstrength = 0.5\ntakes = 1\n'


def band_limited(path: Path, seconds: float, rate: int, cutoff: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 0.1 * np.convolve(rng.standard_normal(int(seconds * rate)), firwin(1001, cutoff, fs=rate), mode="same")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, rate, subtype="PCM_24")
    return x


def make_project(root: Path) -> Path:
    (root / "presets").mkdir(parents=True)
    (root / "project.toml").write_text('sample_rate = 48000\nloudness = -20.0\nsuperres_preset = "quick-sr"\n')
    for name, text in (("quick", QUICK), ("quick-sr", QUICK_SR), ("quick-restyle", QUICK_RESTYLE)):
        (root / "presets" / f"{name}.toml").write_text(text)
    band_limited(root / "stems" / "phone.wav", 2.5, 44100, 3000.0)
    band_limited(root / "stems" / "archive.wav", 2.0, 8000, 3500.0, seed=1)
    (root / "cues.toml").write_text(
        '[[cue]]\nname = "phone-cue"\npreset = "quick-sr"\ninput = "stems/phone.wav"\ncutoff = 2900.0\nseed = 3\n\n'
        '[[cue]]\nname = "bed-cue"\npreset = "quick"\nloop = true\nseed = 4\n'
    )
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("modes")
    project = make_project(base / "proj")
    peer = OscPeer(0)
    daemon = Daemon([project], base / "state", peer.reply_port, extra=["--root", str(base)]).start()
    peer.daemon = ("127.0.0.1", daemon.port)
    try:
        daemon.wait_ready(peer)
        peer.drain()
        yield {"daemon": daemon, "peer": peer, "project": project, "base": base}
    finally:
        code = daemon.stop()
        peer.close()
    assert code == 0, daemon.log.read_text()[-2000:]


def job_id_of(peer: OscPeer, tag: str, timeout: float = 20.0) -> int:
    return peer.wait_for(lambda m: m[0] == "/audiohost/job/queued" and m[1][-1] == tag, timeout)[1][0]


def ended(peer: OscPeer, job_id: int, timeout: float = 180.0):
    return peer.wait_for(lambda m: m[0] in ("/audiohost/job/done", "/audiohost/job/failed") and m[1][0] == job_id, timeout)


def refusal(peer: OscPeer, address: str, timeout: float = 10.0) -> str:
    return peer.wait_for(lambda m: m[0] == "/audiohost/error" and m[1][0] == address, timeout)[1][1]


def smpl_points(path: Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    at = data.index(b"smpl")
    loop = struct.unpack("<6I", data[at + 8 + 36 : at + 8 + 60])
    return loop[2], loop[3]


# ---------------------------------------------------------------------- OSC
def test_superres_over_osc_with_a_given_cutoff(served):
    peer, project = served["peer"], served["project"]
    peer.send("/audiohost/superres", "proj", "stems/phone.wav", "quick-sr", 2900, "sr-osc")
    address, args = ended(peer, job_id_of(peer, "sr-osc"))
    assert address == "/audiohost/job/done", args
    path = Path(args[1])
    assert path.parent == project / "renders" / "superres" / "phone" and args[-1] == "sr-osc"
    assert sf.info(str(path)).frames == round(2.5 * 48000)
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["cutoff"] == {"hz": 2900.0, "found": False} and side["preset"]["name"] == "quick-sr"


def test_superres_over_osc_finds_the_cutoff_with_the_projects_preset(served):
    peer = served["peer"]
    peer.send("/audiohost/superres", "proj", "stems/archive.wav", "", "sr-found")  # "" = the project's superres preset
    address, args = ended(peer, job_id_of(peer, "sr-found"))
    assert address == "/audiohost/job/done", args
    side = json.loads(Path(args[1]).with_suffix(".json").read_text())
    assert side["cutoff"]["found"] is True and 3300 <= side["cutoff"]["hz"] <= 3500
    assert sf.info(args[1]).frames == 2 * 48000


def test_a_looped_foley_over_osc(served):
    peer = served["peer"]
    peer.send("/audiohost/foley", "proj", "quick", 0, -1, 0, 1, "loop-osc")  # the preset's duration and takes, looped
    address, args = ended(peer, job_id_of(peer, "loop-osc"))
    assert address == "/audiohost/job/done", args
    n = sf.info(args[1]).frames
    assert n == round(1.5 * 48000) and smpl_points(args[1]) == (0, n - 1)
    side = json.loads(Path(args[1]).with_suffix(".json").read_text())
    assert side["loop"]["end"] == n and side["levels"]["measured"] == "looped"


@pytest.mark.parametrize(
    "address, args, field",
    [
        ("/audiohost/superres", ("proj", "stems/phone.wav", "quick-sr", 8001.0), "cutoff"),
        ("/audiohost/superres", ("proj", "stems/phone.wav", "quick-sr", 0.0), "cutoff"),
        ("/audiohost/superres", ("proj", "stems/phone.wav", "quick-sr", -5.0), "cutoff"),
        ("/audiohost/superres", ("proj", "stems/archive.wav", "quick-sr", 4500.0), "cutoff"),  # over its 4 kHz Nyquist
        ("/audiohost/superres", ("proj", "stems/phone.wav", "quick-restyle"), "not superres"),
        ("/audiohost/foley", ("proj", "quick", 600.5), "duration"),
        ("/audiohost/foley", ("proj", "quick", 0, -1, 0, 2), "loop"),
        ("/audiohost/foley", ("proj", "quick", 0.5, -1, 0, 1), "loop"),  # too short to loop
        ("/audiohost/foley", ("proj", "quick", 600.0, -1, 4), "takes"),  # 40 minutes of audio in one job
    ],
)
def test_bad_mode_requests_are_refused_in_one_line_naming_the_field(served, address, args, field):
    peer = served["peer"]
    peer.drain()
    peer.send(address, *args, "bad")
    reason = refusal(peer, address)
    assert field in reason and "\n" not in reason and "Traceback" not in reason
    assert not any(m[0] == "/audiohost/job/queued" and m[1][-1] == "bad" for m in peer.received)


def test_malformed_mode_requests_each_get_one_refusal_and_the_door_keeps_answering(served):
    """Wrong types, non-finite numbers, boundaries and paths out of bounds, one after another."""
    peer = served["peer"]
    peer.drain()
    bad = [
        ("/audiohost/superres", ("proj",), "needs"),
        ("/audiohost/superres", ("proj", "stems/phone.wav", "quick-sr", float("nan")), "cutoff"),
        ("/audiohost/superres", ("proj", "stems/phone.wav", "quick-sr", float("inf")), "cutoff"),
        ("/audiohost/superres", ("proj", "stems/phone.wav", "quick-sr", True), "cutoff"),
        ("/audiohost/superres", ("proj", "stems/phone.wav", "quick-sr", 8000.001), "cutoff"),
        ("/audiohost/superres", ("proj", "stems/phone.wav", "quick-sr", 3000.0, 1.0), "at most"),
        ("/audiohost/superres", ("proj", "../../etc/passwd", "quick-sr"), "outside"),
        ("/audiohost/superres", ("proj", "stems", "quick-sr"), "not a file"),
        ("/audiohost/superres", ("proj", "cues.toml", "quick-sr"), "not a readable audio file"),
        ("/audiohost/foley", ("proj", "quick", 1.5, -1, 1, "yes"), ""),  # a trailing text is a tag: accepted
        ("/audiohost/foley", ("proj", "quick", 1.5, -1, 1, 0.5), "loop"),
        ("/audiohost/foley", ("proj", "quick", 1.5, -1, 1, float("nan")), "loop"),
        ("/audiohost/foley", ("proj", "quick", 600.0001), "duration"),
        ("/audiohost/foley", ("proj", "quick-restyle", 2.0, -1, 1, 1), "not foley"),
    ]
    for address, args, field in bad:
        peer.received.clear()
        peer.send(address, *args)
        if not field:  # the one accepted request: it is queued, not refused
            job_id = peer.wait_for(lambda m: m[0] == "/audiohost/job/queued" and m[1][-1] == "yes", 10)[1][0]
            assert ended(peer, job_id)[0] == "/audiohost/job/done"
            continue
        reason = refusal(peer, address)
        assert field in reason and "\n" not in reason and "Traceback" not in reason, (args, reason)
        time.sleep(0.2)
        peer.poll(0.05)
        assert len([m for m in peer.received if m[0] == "/audiohost/error"]) == 1, (args, peer.received)
        assert not any(m[0] == "/audiohost/job/queued" for m in peer.received), (args, peer.received)
    assert peer.ping()


def test_a_ten_minute_take_is_accepted_reports_progress_over_all_its_windows_and_cancels(served):
    peer, project = served["peer"], served["project"]
    peer.drain()
    peer.send("/audiohost/foley", "proj", "quick", 600.0, 4242, 1, "ten-min")
    job_id = job_id_of(peer, "ten-min")
    first = peer.wait_for(lambda m: m[0] == "/audiohost/job/progress" and m[1][0] == job_id, 60)[1][1]
    assert 0 < first < 0.05  # 156 windows of 2 steps: a step is well under a twentieth of the take
    peer.send("/audiohost/cancel", job_id)
    peer.wait_for(lambda m: m[0] == "/audiohost/job/cancelled" and m[1][0] == job_id, 30)
    time.sleep(0.3)
    assert not any(m[0] == "/audiohost/job/done" and m[1][0] == job_id for m in peer.received)
    assert not any('"seed": 4242' in p.read_text() for p in (project / "renders").rglob("*.json"))
    assert peer.ping()


# ---------------------------------------------------------------------- the drop folder and the cue sheet
def test_a_stem_dropped_into_superres_is_rendered(served):
    project = served["project"]
    source = project / "stems" / "archive.wav"
    (project / "superres" / "quick-sr").mkdir(parents=True, exist_ok=True)
    (project / "superres" / "quick-sr" / "dropped.toml").write_text("cutoff = 3000.0\n")
    (project / "superres" / "quick-sr" / "dropped.wav").write_bytes(source.read_bytes())
    folder = project / "renders" / "superres" / "dropped"
    deadline = time.monotonic() + 180
    while not list(folder.glob("*.wav")) and time.monotonic() < deadline:
        time.sleep(0.3)
    [take] = list(folder.glob("*.wav"))
    time.sleep(0.5)
    assert sf.info(str(take)).frames == 2 * 48000
    assert json.loads(take.with_suffix(".json").read_text())["cutoff"] == {"hz": 3000.0, "found": False}


def test_cues_with_an_input_and_with_a_loop_render_from_the_sheet(served):
    peer, project = served["peer"], served["project"]
    peer.send("/audiohost/render", "proj", "", "sheet")
    ids = []
    deadline = time.monotonic() + 20
    while len(ids) < 2 and time.monotonic() < deadline:
        m = peer.poll(0.5)
        if m and m[0] == "/audiohost/job/queued" and m[1][-1] == "sheet":
            ids.append(m[1][0])
    results = {}
    for job_id in ids:
        address, args = ended(peer, job_id)
        assert address == "/audiohost/job/done", args
        results[Path(args[1]).parent.name] = Path(args[1])
    assert set(results) == {"phone-cue", "bed-cue"}
    side = json.loads(results["phone-cue"].with_suffix(".json").read_text())
    assert side["kind"] == "superres" and side["cutoff"]["hz"] == 2900.0
    assert side["input"]["path"] == str(project / "stems" / "phone.wav")
    n = sf.info(str(results["bed-cue"])).frames
    assert smpl_points(results["bed-cue"]) == (0, n - 1)


# ---------------------------------------------------------------------- audiohost request
def request(served, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "host", "request", args[0], "--port", str(served["daemon"].port), *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(served["base"]))


def test_the_client_asks_for_superres_and_for_a_loop(served):
    result = request(served, "superres", "proj", "stems/phone.wav", "prompt:bright air", "--cutoff", "2800", "--wait", "--json", "--tag", "c1")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["state"] == "done"
    side = json.loads(Path(data["sidecars"][0]).read_text())
    assert side["cutoff"] == {"hz": 2800.0, "found": False} and side["prompt"] == "bright air"

    result = request(served, "foley", "proj", "quick", "--loop", "--wait", "--json", "--tag", "c2")
    assert result.returncode == 0, result.stderr
    [path] = json.loads(result.stdout.strip().splitlines()[-1])["paths"]
    n = sf.info(path).frames
    assert n == round(1.5 * 48000) and smpl_points(path) == (0, n - 1)

    result = request(served, "superres", "proj", "stems/phone.wav", "--cutoff", "9000")
    assert result.returncode == 2 and "cutoff" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------- refusals at the other doors (no daemon)
@pytest.mark.parametrize(
    "cue, field, reason",
    [
        ('preset = "quick-sr"\ninput = "../outside.wav"', "input", "outside the project"),
        ('preset = "quick-sr"\ninput = "stems/missing.wav"', "input", "not a file"),
        ('preset = "quick-sr"\ninput = "stems/phone.wav"\ncutoff = 9000.0', "cutoff", "at most 8000 Hz"),
        ('preset = "quick-restyle"\ninput = "stems/phone.wav"\nloop = true', "loop", "only foley takes loop"),
        ('preset = "quick"\ninput = "stems/phone.wav"', "input", "takes no input"),
        ('preset = "quick"\nduration = 601.0', "duration", "between 0.04 and 600"),
        ('input = "stems/phone.wav"', "preset", "names its preset"),
    ],
)
def test_bad_cues_for_the_new_modes_are_refused_naming_the_field(tmp_path, cue, field, reason):
    project = make_project(tmp_path / "proj")
    (tmp_path / "outside.wav").write_bytes((project / "stems" / "phone.wav").read_bytes())
    (project / "cues.toml").write_text(f'[[cue]]\nname = "x"\n{cue}\n')
    proj = load_project(project)
    cues, errors = load_cues(proj, preset_library(proj.root)[0])
    assert cues == []
    [err] = errors
    assert err.where.endswith(f"(cue[0]).{field}") and reason in err.reason and "\n" not in str(err)


def test_a_stem_dropped_straight_into_superres_gets_the_projects_superres_preset(tmp_path):
    project = make_project(tmp_path / "proj")
    proj = load_project(project)
    stem = project / "superres" / "x.wav"
    stem.parent.mkdir()
    stem.write_bytes((project / "stems" / "phone.wav").read_bytes())
    found = stem_from_path(proj, preset_library(proj.root)[0], stem)
    assert (found.kind, found.preset_name, found.preset.kind) == ("superres", "quick-sr", "superres")


def test_bad_drop_sidecars_are_refused_naming_the_field(tmp_path):
    project = make_project(tmp_path / "proj")
    proj = load_project(project)
    library = preset_library(proj.root)[0]
    for folder, sidecar, field in (("restyle/quick-restyle", "loop = true\n", "loop"), ("superres", "cutoff = 0\n", "cutoff"), ("superres", 'cutoff = "high"\n', "cutoff")):
        stem = project / folder / "x.wav"
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.write_bytes((project / "stems" / "phone.wav").read_bytes())
        stem.with_suffix(".toml").write_text(sidecar)
        with pytest.raises(InputError) as info:
            stem_from_path(proj, library, stem)
        assert info.value.where.endswith(f"x.toml {field}"), str(info.value)
        stem.unlink()
        stem.with_suffix(".toml").unlink()
