"""``audiohost request`` end to end against a real daemon on loopback ports, plus the daemon
additions the DAW clients rely on (reply ports, paged listings, serving a folder on request,
restyle of a region). One daemon serves the whole module."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from pythonosc.osc_message import OscMessage

from host.config.presets import preset_library
from host.jobs.journal import Journal
from tests.conftest import write_tone
from tests.oscpeer import Daemon, OscPeer, free_udp_port
from tests.test_daemon import make_project

# long names so that the preset listing needs several 4 KB pages
MANY = [f"many-{k:02d}-{'x' * 70}" for k in range(60)]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("request")
    project = make_project(base / "proj", cues='[[cue]]\nname = "cue-a"\npreset = "quick"\nseed = 1\n\n[[cue]]\nname = "cue-b"\npreset = "quick"\nseed = 2\n')
    for name in MANY:
        (project / "presets" / f"{name}.toml").write_text('kind = "foley"\nprompt = "x"\nsteps = 3\nduration = 1.0\n')
    roots = base / "sessions"
    roots.mkdir()
    daw = OscPeer(0)  # a DAW listening on the daemon's reply port: the client must never reach it
    proc = Daemon([project], base / "state", daw.reply_port, extra=["--root", str(roots)]).start()
    daw.daemon = ("127.0.0.1", proc.port)
    try:
        proc.wait_ready(daw)
        while daw.poll(0.5) is not None:  # the pongs of wait_ready
            pass
        daw.received.clear()
        yield {"daemon": proc, "daw": daw, "project": project, "roots": roots, "state": base / "state", "base": base}
    finally:
        code = proc.stop()
        daw.close()
    assert code == 0, proc.log.read_text()[-2000:]


def request(d, *args, timeout: float = 240, check_daw: bool = True) -> subprocess.CompletedProcess:
    """Run the client as a DAW script would; the DAW on the reply port must hear nothing of it."""
    cmd = [sys.executable, "-m", "host", "request", *args[:1], "--port", str(d["daemon"].port), *args[1:]]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(d["base"]))
    if check_daw:
        assert d["daw"].poll(0.05) is None, "a reply went to the DAW's port"
    return result


def as_json(result: subprocess.CompletedProcess) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, (result.stdout, result.stderr)
    return json.loads(lines[0])


def job_state(d, job_id: int) -> str:
    journal = Journal(d["state"] / "journal.sqlite")
    try:
        return journal.get(job_id).state
    finally:
        journal.close()


# ---------------------------------------------------------------------- the client
def test_ping_answers_with_exit_0(daemon):
    import host

    result = request(daemon, "ping")
    assert result.returncode == 0, result.stderr
    assert host.__version__ in result.stdout


def test_foley_wait_json_delivers_whole_takes_and_their_sidecars(daemon):
    result = request(daemon, "foley", "proj", "quick", "1", "1234", "2", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    data = as_json(result)
    assert data["state"] == "done" and data["error"] is None and isinstance(data["job"], int)
    assert len(data["paths"]) == 2 and len(data["sidecars"]) == 2
    for path, sidecar in zip(data["paths"], data["sidecars"]):
        assert Path(path).parent == daemon["project"] / "renders" / "foley" / "quick"
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == (48000, 1, 48000)
        recorded = json.loads(Path(sidecar).read_text())
        assert recorded["seed"] in (1234, 1235) and recorded["file"] == Path(path).name
    assert data["jobs"][0]["name"] == "quick"
    assert job_state(daemon, data["job"]) == "done"


def test_foley_wait_prints_paths_one_per_line_and_progress_on_stderr(daemon):
    result = request(daemon, "foley", "proj", "quick", "1", "99", "1", "--wait")
    assert result.returncode == 0, result.stderr
    paths = result.stdout.splitlines()
    assert len(paths) == 1 and Path(paths[0]).is_file()
    assert "done" in result.stderr  # plain progress lines: stderr is not a terminal here


def test_without_wait_the_job_id_is_printed_once_queued(daemon):
    result = request(daemon, "foley", "proj", "quick", "1", "7", "1")
    assert result.returncode == 0, result.stderr
    job_id = int(result.stdout.strip())
    deadline = time.monotonic() + 120
    while job_state(daemon, job_id) != "done" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job_state(daemon, job_id) == "done"


def chirp(path: Path, seconds: float, rate: int) -> np.ndarray:
    """A sweep: every part of it differs from every other, so a misplaced region shows."""
    t = np.arange(int(round(seconds * rate))) / rate
    wave = 0.4 * np.sin(2 * np.pi * (200 * t + 600 * t**2))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.stack([wave, wave], axis=1), rate, subtype="PCM_24")
    return wave


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def test_restyle_of_a_region_delivers_exactly_that_part_of_the_file(daemon):
    wave = chirp(daemon["project"] / "stems" / "sweep.wav", 3.0, 44100)
    # strength 0 keeps the audio: what comes back must be the region, nothing before or after it
    result = request(daemon, "restyle", "proj", "stems/sweep.wav", "quick-restyle", "0", "--region", "0.5", "1.25", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    data = as_json(result)
    [path] = data["paths"]
    audio, rate = sf.read(path)
    assert rate == 48000 and len(audio) == round(round(1.25 * 44100) * 48000 / 44100)
    heard = soxr.resample(audio, 48000, 16000)
    region = soxr.resample(wave[round(0.5 * 44100) : round(1.75 * 44100)], 44100, 16000)
    later = soxr.resample(wave[round(0.6 * 44100) : round(1.85 * 44100)], 44100, 16000)
    assert similarity(heard, region) > 0.95
    assert similarity(heard, later) < 0.5
    assert json.loads(Path(data["sidecars"][0]).read_text())["region"] == [0.5, 1.25]


def test_restyle_without_a_region_is_as_long_as_the_stem_and_a_negative_strength_is_the_presets(daemon):
    original = write_tone(daemon["project"] / "stems" / "take.wav", 1.5, 44100, channels=2)
    result = request(daemon, "restyle", "proj", "stems/take.wav", "quick-restyle", "-1", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    data = as_json(result)
    assert sf.info(data["paths"][0]).frames == round(len(original) * 48000 / 44100)
    assert json.loads(Path(data["sidecars"][0]).read_text())["strength"] == 0.5  # quick-restyle's


def test_inpaint_wait_json_fills_the_gap_and_keeps_everything_else(daemon):
    source = daemon["project"] / "stems" / "gap.wav"
    write_tone(source, 2.5, 44100, channels=2, subtype="PCM_24")
    result = request(daemon, "inpaint", "proj", "stems/gap.wav", "1.0", "1.4", "quick-inpaint", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    data = as_json(result)
    [path] = data["paths"]
    filled, rate = sf.read(path, dtype="int32")
    original, _ = sf.read(str(source), dtype="int32")
    assert rate == 44100 and filled.shape == original.shape
    edge = int(0.01 * rate)
    a, b = round(1.0 * rate) - edge, round(1.4 * rate) + edge
    assert np.array_equal(filled[:a], original[:a]) and np.array_equal(filled[b:], original[b:])
    assert not np.array_equal(filled[a:b], original[a:b])


def test_inpaint_without_a_preset_uses_the_projects(daemon):
    write_tone(daemon["project"] / "stems" / "gap2.wav", 2.0, 16000)
    result = request(daemon, "inpaint", "proj", "stems/gap2.wav", "0.8", "1.0", "--wait", "--json", "--tag", "my-tag")
    assert result.returncode == 0, result.stderr
    data = as_json(result)
    assert data["tag"] == "my-tag" and len(data["paths"]) >= 1
    assert json.loads(Path(data["sidecars"][0]).read_text())["preset"]["name"] == "inpaint-seamless"


def test_render_waits_for_every_cue_of_the_sheet(daemon):
    result = request(daemon, "render", "proj", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    data = as_json(result)
    assert sorted(j["name"] for j in data["jobs"]) == ["cue-a", "cue-b"]
    assert all(j["state"] == "done" and len(j["paths"]) == 1 for j in data["jobs"])


def test_a_refused_request_exits_2_with_one_line(daemon):
    result = request(daemon, "foley", "nosuchproject", "rain", "--wait", "--json")
    assert result.returncode == 2
    data = as_json(result)
    assert data["state"] == "refused" and "unknown project 'nosuchproject'" in data["error"]
    assert result.stderr.strip().count("\n") == 0 and "unknown project" in result.stderr
    result = request(daemon, "restyle", "proj", "stems/sweep.wav", "quick-restyle", "--region", "2.5", "1.0", "--wait")
    assert result.returncode == 2 and "ends past the end of 'sweep.wav'" in result.stderr


def test_a_failed_job_exits_1_naming_the_file(daemon, tmp_path):
    """A job that is accepted and then fails: its stem is gone by the time the worker gets to it."""
    stem = daemon["project"] / "stems" / "vanishing.wav"
    write_tone(stem, 1.0, 44100)
    blocker = as_json(request(daemon, "foley", "proj", "slow", "3.0", "77", "1", "--json"))["job"]
    deadline = time.monotonic() + 60
    while job_state(daemon, blocker) != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    result_file = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "host", "request", "restyle", "--port", str(daemon["daemon"].port), "proj", "stems/vanishing.wav",
           "quick-restyle", "--wait", "--json", "--result", str(result_file)]
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(daemon["base"]))
    while not (result_file.exists() and json.loads(result_file.read_text()).get("job")) and time.monotonic() < deadline:
        time.sleep(0.1)
    stem.unlink()  # accepted (checked and hashed), then deleted before it renders
    assert request(daemon, "cancel", str(blocker)).returncode == 0
    out, err = client.communicate(timeout=240)
    assert client.returncode == 1, err
    data = json.loads(out.strip().splitlines()[-1])
    assert data["state"] == "failed" and "vanishing.wav" in data["error"] and "not there any more" in data["error"]
    assert job_state(daemon, data["job"]) == "failed"


def test_no_daemon_exits_3_saying_how_to_start_one(daemon, tmp_path):
    port = free_udp_port()  # nobody listens there
    started = time.monotonic()
    cmd = [sys.executable, "-m", "host", "request", "foley", "--port", str(port), "--timeout", "1", "proj", "rain", "--wait", "--result", str(tmp_path / "r.json")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert time.monotonic() - started < 30
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no audiohost daemon answered" in lines[0] and "audiohost serve" in lines[0]
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["state"] == "no-daemon" and data["final"] is True


def start_slow(daemon, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "host", "request", "foley", "--port", str(daemon["daemon"].port), "proj", "slow", "2", str(int(time.time()) % 100000), "1", "--wait", "--json", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(daemon["base"]))


def wait_running(result_file: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = json.loads(result_file.read_text())
            if data["state"] == "running" and data["progress"] > 0:
                return data
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError("the job never started running")


def test_ctrl_c_while_waiting_cancels_the_job(daemon, tmp_path):
    result_file = tmp_path / "r.json"
    proc = start_slow(daemon, "--result", str(result_file))
    running = wait_running(result_file)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    data = json.loads(out.strip().splitlines()[-1])
    assert data["state"] == "cancelled" and data["paths"] == []
    assert job_state(daemon, running["job"]) == "cancelled"


def test_a_cancel_file_cancels_as_ctrl_c_does(daemon, tmp_path):
    result_file = tmp_path / "r.json"
    proc = start_slow(daemon, "--result", str(result_file))
    running = wait_running(result_file)
    assert running["final"] is False and running["pid"] == proc.pid
    Path(str(result_file) + ".cancel").write_text("cancel\n")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    final = json.loads(result_file.read_text())
    assert final["state"] == "cancelled" and final["final"] is True
    assert job_state(daemon, running["job"]) == "cancelled"


def test_arguments_from_a_file_reach_the_daemon_untouched(daemon, tmp_path):
    prompt = 'a "quoted" $HOME `door`, creaking; 100% wood & glass'
    args = tmp_path / "args"
    args.write_text("\n".join(["request", "foley", "--port", str(daemon["daemon"].port), "proj", prompt, "1", "5", "1", "--wait", "--json"]) + "\n")
    result = subprocess.run([sys.executable, "-m", "host", f"@{args}"], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    data = as_json(result)
    assert json.loads(Path(data["sidecars"][0]).read_text())["prompt"] == prompt


def test_two_identical_requests_each_get_their_takes(daemon):
    args = ["foley", "--port", str(daemon["daemon"].port), "proj", "slow", "2", "4242", "1", "--wait", "--json"]
    first = subprocess.Popen([sys.executable, "-m", "host", "request", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    second = subprocess.run([sys.executable, "-m", "host", "request", *args], capture_output=True, text=True, timeout=240)
    out, _ = first.communicate(timeout=240)
    # whatever the daemon does, neither client waits forever
    assert json.loads(out.strip().splitlines()[-1])["state"] == "done"
    data = as_json(second)
    assert second.returncode == 0 and data["state"] == "done" and len(data["paths"]) == 1, data


# ---------------------------------------------------------------------- the daemon additions
class RawPeer:
    """A socket that sends and hears raw datagrams, to measure them."""

    def __init__(self, port: int):
        self.daemon = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def send(self, address: str, *args) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        msg = OscMessageBuilder(address=address)
        for a in args:
            msg.add_arg(a)
        self.sock.sendto(msg.build().dgram, self.daemon)

    def receive(self, timeout: float = 10.0) -> tuple[bytes, str, list]:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65536)
        msg = OscMessage(data)
        return data, msg.address, list(msg.params)

    def close(self) -> None:
        self.sock.close()


def test_replyport_sends_the_replies_of_a_socket_where_it_asks(daemon):
    peer = RawPeer(daemon["daemon"].port)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    try:
        peer.send("/audiohost/replyport")  # no port: the port it sends from
        _, address, args = peer.receive()
        assert (address, args[0]) == ("/audiohost/replyport", peer.port)
        peer.send("/audiohost/ping")
        assert peer.receive()[1] == "/audiohost/pong"
        peer.send("/audiohost/replyport", other.getsockname()[1], "t")  # elsewhere from now on
        other.settimeout(10)
        assert OscMessage(other.recvfrom(65536)[0]).address == "/audiohost/replyport"
        peer.send("/audiohost/foley", "nosuchproject", "rain")
        assert OscMessage(other.recvfrom(65536)[0]).address == "/audiohost/error"
        peer.send("/audiohost/replyport", 70000)
        assert "port must be between 0 and 65535" in OscMessage(other.recvfrom(65536)[0]).params[1]
    finally:
        peer.close()
        other.close()
    assert daemon["daw"].poll(0.2) is None


def test_presets_come_in_pages_that_each_fit_the_reply_limit(daemon):
    peer = RawPeer(daemon["daemon"].port)
    try:
        peer.send("/audiohost/replyport")
        peer.receive()
        listed, page, pages = [], 0, 1
        while page < pages:
            peer.send("/audiohost/presets", "proj", page, "t" * 256)  # the longest tag a request takes
            data, address, args = peer.receive()
            assert address == "/audiohost/presets" and len(data) <= 4096
            assert args[:2] == ["proj", page] and args[-1] == "t" * 256
            pages = args[2]
            listed += list(zip(args[3:-1:2], args[4:-1:2]))
            page += 1
        assert pages >= 2
        library, _ = preset_library(daemon["project"])
        assert sorted(listed) == sorted((name, entry.preset.kind) for name, entry in library.items())
        peer.send("/audiohost/presets", "proj", pages)
        assert "no page" in peer.receive()[2][1]
        peer.send("/audiohost/presets", "proj", 0, "t" * 257)
        assert "tag" in peer.receive()[2][1]
    finally:
        peer.close()
    result = request(daemon, "presets", "proj", "--json")
    assert result.returncode == 0
    assert len(as_json(result)["presets"]) == len(listed)


def test_serving_a_folder_inside_a_root_creates_and_serves_it(daemon):
    folder = daemon["roots"] / "song" / "audiohost"
    result = request(daemon, "serve", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    assert as_json(result)["project"] == {"name": "audiohost", "folder": str(folder.resolve())}
    assert (folder / "renders").is_dir() and (folder / "restyle").is_dir()
    listed = as_json(request(daemon, "projects", "--json"))["projects"]
    assert {"name": "audiohost", "folder": str(folder.resolve())} in listed
    again = request(daemon, "serve", str(folder))  # harmless a second time
    assert again.returncode == 0
    # a request may name it by its folder, and presets list for it
    assert request(daemon, "presets", str(folder)).returncode == 0


def test_serving_refuses_anything_outside_the_roots_and_creates_nothing(daemon, tmp_path):
    outside = tmp_path / "elsewhere" / "audiohost"
    result = request(daemon, "serve", str(outside))
    assert result.returncode == 2 and "outside the project roots" in result.stderr
    assert not outside.exists() and not outside.parent.exists()
    link = daemon["roots"] / "escape"
    link.symlink_to(tmp_path, target_is_directory=True)
    result = request(daemon, "serve", str(link / "audiohost"))
    assert result.returncode == 2 and "outside the project roots" in result.stderr
    assert not (tmp_path / "audiohost").exists()
    inside_project = daemon["project"] / "sub"
    assert request(daemon, "serve", str(inside_project)).returncode == 2
    assert request(daemon, "serve", "relative/folder").returncode == 2


def test_foley_with_serve_renders_into_a_new_project_beside_a_session(daemon):
    folder = daemon["roots"] / "film" / "audiohost"
    (folder / "presets").mkdir(parents=True)
    (folder / "presets" / "tick.toml").write_text('kind = "foley"\nprompt = "a tick"\nduration = 1.0\nsteps = 2\ntakes = 1\n')
    result = request(daemon, "foley", str(folder), "tick", "--serve", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    data = as_json(result)
    assert Path(data["paths"][0]).parent == folder.resolve() / "renders" / "foley" / "tick"


def test_a_region_needs_both_numbers_inside_the_file(daemon):
    chirp(daemon["project"] / "stems" / "short.wav", 1.0, 22050)
    peer = RawPeer(daemon["daemon"].port)
    try:
        peer.send("/audiohost/replyport")
        peer.receive()
        for args, reason in [
            ((0.5, 0.2), "needs both"),  # a strength and a start without a length
            ((0.5, 0.5, -1.0), "length at least"),
            ((0.5, 0.5, 0.0), "length at least"),
            ((0.5, -0.1, 0.5), "start must be >= 0"),
            ((0.5, 0.2, 0.9), "ends past the end"),
        ]:
            peer.send("/audiohost/restyle", "proj", "stems/short.wav", "quick-restyle", *args)
            _, address, reply = peer.receive()
            assert address == "/audiohost/error" and reason in reply[1], (args, reply)
    finally:
        peer.close()


def test_bad_datagrams_to_the_new_addresses_get_one_line_each_and_the_daemon_keeps_answering(daemon):
    peer = RawPeer(daemon["daemon"].port)
    try:
        peer.send("/audiohost/replyport")
        peer.receive()
        cases = [
            ("/audiohost/replyport", [12, 13]),
            ("/audiohost/replyport", [1.5]),
            ("/audiohost/replyport", [-3]),
            ("/audiohost/replyport", [65536]),
            ("/audiohost/presets", []),
            ("/audiohost/presets", [42]),
            ("/audiohost/presets", ["proj", 1.5]),
            ("/audiohost/presets", ["proj", -1]),
            ("/audiohost/presets", ["proj", float("nan")]),
            ("/audiohost/presets", ["nosuchproject"]),
            ("/audiohost/projects", [9]),
            ("/audiohost/projects", ["x" * 600]),
            ("/audiohost/serve", []),
            ("/audiohost/serve", [""]),
            ("/audiohost/serve", ["relative/path"]),
            ("/audiohost/serve", ["/" + "a" * 5000]),
            ("/audiohost/serve", [str(daemon["roots"]) + "/../outside"]),
            ("/audiohost/restyle", ["proj", "stems/sweep.wav", "quick-restyle", 0.5, float("inf"), 1.0]),
            ("/audiohost/restyle", ["proj", "stems/sweep.wav", "quick-restyle", 0.5, 0.0, "long"]),
            ("/audiohost/restyle", ["proj", "stems/sweep.wav", "quick-restyle", 2.0]),
        ]
        for address, args in cases:
            peer.send(address, *args)
            data, reply, values = peer.receive()
            assert reply == "/audiohost/error" and values[0] == address, (address, args, values)
            assert len(values[1]) < 400 and "\n" not in values[1] and "Traceback" not in values[1]
            assert len(data) <= 4096
        peer.send("/audiohost/ping")
        assert peer.receive()[1] == "/audiohost/pong"
    finally:
        peer.close()
    assert not (daemon["roots"].parent / "outside").exists()


def test_the_readme_example_of_scripting_the_osc_api_works(daemon):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("**Scripting the OSC API yourself**") :]
    code = section[section.index("```python") + len("```python") : section.index("```", section.index("```python") + 9)]
    code = code.replace("9010", str(daemon["daemon"].port)).replace('"myproject", "footsteps-gravel", 4.0', '"proj", "quick", 1.0')
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("/audiohost/job/done [") and "quick_t" in result.stdout
