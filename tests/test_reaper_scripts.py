"""The Reaper actions: every Lua file is valid Lua 5.4, and each action, run against a REAPER
stand-in that records its calls (tests/reaper_sim.py), asks, launches the client with the
right arguments, follows its result file without blocking, and puts what comes back on the
timeline the way REAPER expects; errors become one message box. One test runs the actions'
client call against a real daemon."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from host.daw.install import ACTIONS, REAPER_SCRIPTS, install_reaper
from tests.conftest import write_tone

lupa = pytest.importorskip("lupa")

from tests.reaper_sim import ReaperSim  # noqa: E402 - needs lupa


@pytest.fixture
def scripts(tmp_path) -> Path:
    """The actions as installed into a REAPER resource folder."""
    resource = tmp_path / "REAPER"
    resource.mkdir()
    install_reaper(resource, running=False)
    return resource / "Scripts" / "audiohost"


@pytest.fixture
def session(tmp_path) -> Path:
    folder = tmp_path / "song"
    folder.mkdir()
    return folder


def write_result(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"final": data.get("state") in ("done", "failed", "cancelled", "refused", "no-daemon"), **data}))
    tmp.replace(path)


def new_sim(session: Path, cursor: float = 0.0) -> ReaperSim:
    sim = ReaperSim()
    sim.sim.rpp = str(session / "song.rpp")
    sim.sim.cursor = cursor
    return sim


def answer_ping(sim: ReaperSim, k: int = 0) -> None:
    args, result = sim.launched(k)
    assert args[:2] == ["request", "ping"], args
    write_result(result, {"state": "done", "version": "0.1.0"})
    sim.run_until(lambda: len(sim.commands) > k + 1)


def tail_options(result: Path) -> list[str]:
    return ["--result", str(result), "--host", "127.0.0.1", "--port", "9010", "--tag", "reaper"]


def takes(tmp_path: Path, n: int, seconds: float = 1.0) -> list[str]:
    paths = []
    for k in range(n):
        path = tmp_path / "renders" / f"take_t{k + 1:02d}.wav"
        write_tone(path, seconds, 48000, freq=200.0 + 100 * k)
        paths.append(str(path))
    return paths


# ---------------------------------------------------------------------- every script is Lua
@pytest.mark.parametrize("script", sorted(p.name for p in REAPER_SCRIPTS.glob("*.lua")))
def test_every_script_is_valid_lua_5_4(script):
    luac = shutil.which("luac5.4") or shutil.which("luac")
    if luac is None:
        pytest.skip("luac is not installed")
    result = subprocess.run([luac, "-p", str(REAPER_SCRIPTS / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    runtime = lupa.lua54.LuaRuntime()
    assert runtime.eval(f"load({json.dumps((REAPER_SCRIPTS / script).read_text())}) ~= nil")


def test_every_action_is_shipped():
    assert sorted(ACTIONS) == sorted(p.name for p in REAPER_SCRIPTS.glob("audiohost_*.lua") if p.name != "audiohost_lib.lua")


# ---------------------------------------------------------------------- foley at edit cursor
def test_foley_launches_the_client_and_inserts_the_takes_at_the_cursor_on_a_new_track(scripts, session, tmp_path):
    sim = new_sim(session, cursor=12.5)
    sim.answer_inputs("rain, on a tin roof", "3.5", "2")
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    answer_ping(sim)
    args, result = sim.launched(1)
    folder = str(session / "audiohost")
    assert args == ["request", "foley", "--wait", "--serve", "--timeout", "10", folder, "rain, on a tin roof", "3.500000000", "-1", "2", *tail_options(result)]
    assert (session / "audiohost").is_dir()  # created beside the .rpp on first use
    assert sim.calls("ExecProcess")[1][1] == -1  # never waits: REAPER keeps running
    # REAPER is not blocked: the action returns and polls from defer, showing a progress window
    assert not sim.idle()
    write_result(result, {"state": "running", "progress": 0.4})
    sim.step()
    assert sim.sim.window and any("rendering 40%" in str(args[0]) for args in sim.calls("gfx.drawstr"))
    assert not sim.calls("InsertMedia")
    paths = takes(tmp_path, 2)
    write_result(result, {"state": "done", "paths": paths, "jobs": [{"name": "rain-on-a-tin-roof", "paths": paths}]})
    sim.run_until(sim.idle)

    assert sim.calls("InsertMedia") == [(paths[0], 1), (paths[1], 3)]  # a new track, then takes of that item
    [item] = sim.items()
    assert item.info.D_POSITION == 12.5
    assert [item.takes[i].source.file for i in (1, 2)] == paths and len(item.takes) == 2
    assert item.info.I_CURTAKE == 0
    assert item.track.name == "rain-on-a-tin-roof"
    assert sim.sim.cursor == 12.5
    assert sim.boxes() == [] and not sim.sim.window
    assert not result.exists() and not list(result.parent.glob("req-*"))  # cleaned up


def test_foley_prefills_the_last_values(scripts, session, tmp_path):
    sim = new_sim(session)
    sim.answer_inputs("footsteps-gravel", "2", "3")
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    sim.answer_inputs(ok=False)  # the second time: the dialog is cancelled
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    first, second = sim.calls("GetUserInputs")
    assert first[1] == 3 and "separator=\n" in first[2]
    assert second[3] == "footsteps-gravel\n2\n3"
    assert len(sim.commands) == 1  # only the first run launched anything


def test_foley_refuses_bad_input_with_one_message_and_launches_nothing(scripts, session):
    sim = new_sim(session)
    sim.answer_inputs("rain", "lots", "2")
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    [box] = sim.boxes()
    assert "Duration must be a number" in box and "lots" in box
    assert sim.commands == []


def test_an_unsaved_project_gets_one_message(scripts, tmp_path):
    sim = ReaperSim()
    sim.sim.rpp = ""
    sim.answer_inputs("rain", "2", "1")
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    [box] = sim.boxes()
    assert "Save the REAPER project first" in box
    assert sim.commands == []


def test_a_project_folder_set_for_this_project_wins(scripts, session, tmp_path):
    sim = new_sim(session)
    chosen = tmp_path / "elsewhere" / "sfx"
    sim.answer_inputs(str(chosen))
    sim.run_script(scripts / "audiohost_set_project_folder.lua")
    assert sim.calls("SetProjExtState")[0][1:] == ("audiohost", "project", str(chosen))
    sim.answer_inputs("rain", "2", "1")
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    answer_ping(sim)
    args, _ = sim.launched(1)
    assert args[6] == str(chosen)


# ---------------------------------------------------------------------- restyle selected items
def restyle_setup(sim: ReaperSim, source: Path, offset: float, rate: float, position: float = 10.0, length: float = 2.0):
    track = sim.sim.new_track("stems")
    item = sim.sim.new_item(track, position, length, str(source), 5.0, offset, rate)
    item.selected = True
    return item


def test_restyle_passes_the_section_the_item_plays_and_adds_an_aligned_take(scripts, session, tmp_path):
    source = session / "Audio" / "take.wav"
    write_tone(source, 5.0, 44100)
    sim = new_sim(session)
    item = restyle_setup(sim, source, offset=1.5, rate=1.0)
    sim.answer_inputs("quick-restyle", "0.4")
    sim.run_script(scripts / "audiohost_restyle_selected_items.lua")
    answer_ping(sim)
    args, result = sim.launched(1)
    folder = str(session / "audiohost")
    assert args == ["request", "restyle", "--wait", "--serve", "--timeout", "10", folder, str(source), "quick-restyle", "0.400000000",
                    "--region", "1.500000000", "2.000000000", *tail_options(result)]
    [path] = takes(tmp_path, 1, seconds=2.0)
    write_result(result, {"state": "done", "paths": [path], "jobs": [{"name": "take", "paths": [path]}]})
    sim.run_until(sim.idle)
    assert len(item.takes) == 2
    new = item.takes[2]
    assert new.source.file == path
    assert new.info.D_STARTOFFS == 0.0 and new.info.D_PLAYRATE == 1.0  # its first sample is the region's
    assert item.info.I_CURTAKE == 1  # the new take plays
    assert new.name == "restyle: quick-restyle"
    assert item.takes[1].info.D_STARTOFFS == 1.5  # the original take is untouched
    assert sim.boxes() == []


def test_restyle_of_an_item_that_starts_before_its_source_at_double_speed(scripts, session, tmp_path):
    source = session / "Audio" / "fast.wav"
    write_tone(source, 5.0, 44100)
    sim = new_sim(session)
    item = restyle_setup(sim, source, offset=-0.5, rate=2.0, length=2.0)
    sim.answer_inputs("a prompt", "")
    sim.run_script(scripts / "audiohost_restyle_selected_items.lua")
    answer_ping(sim)
    args, result = sim.launched(1)
    # the item plays source seconds -0.5 .. 3.5: the region is the part that exists, 0 .. 3.5
    assert args[7:13] == [str(source), "a prompt", "-1", "--region", "0.000000000", "3.500000000"]
    [path] = takes(tmp_path, 1, seconds=3.5)
    write_result(result, {"state": "done", "paths": [path]})
    sim.run_until(sim.idle)
    new = item.takes[2]
    assert new.info.D_STARTOFFS == -0.5 and new.info.D_PLAYRATE == 2.0


def test_restyle_with_nothing_selected_says_so(scripts, session):
    sim = new_sim(session)
    sim.run_script(scripts / "audiohost_restyle_selected_items.lua")
    assert sim.boxes() == ["Select the audio items to restyle first."]
    assert sim.commands == []


def test_a_refused_request_is_one_message_and_changes_nothing(scripts, session, tmp_path):
    source = session / "Audio" / "take.wav"
    write_tone(source, 5.0, 44100)
    sim = new_sim(session)
    item = restyle_setup(sim, source, offset=0.0, rate=1.0)
    sim.answer_inputs("quick-restyle", "")
    sim.run_script(scripts / "audiohost_restyle_selected_items.lua")
    answer_ping(sim)
    _, result = sim.launched(1)
    write_result(result, {"state": "refused", "error": f"/audiohost/restyle: '{source}' is outside the project roots this host serves"})
    sim.run_until(sim.idle)
    [box] = sim.boxes()
    assert box.startswith("audiohost: /audiohost/restyle:") and "roots" in box
    assert len(item.takes) == 1 and "script error" not in box


def test_a_failed_job_is_one_message(scripts, session, tmp_path):
    source = session / "Audio" / "take.wav"
    write_tone(source, 5.0, 44100)
    sim = new_sim(session)
    restyle_setup(sim, source, offset=0.0, rate=1.0)
    sim.answer_inputs("quick-restyle", "")
    sim.run_script(scripts / "audiohost_restyle_selected_items.lua")
    answer_ping(sim)
    _, result = sim.launched(1)
    write_result(result, {"state": "failed", "error": "job 4: take.wav: not a readable audio file"})
    sim.run_until(sim.idle)
    assert sim.boxes() == ["audiohost: job 4: take.wav: not a readable audio file"]


# ---------------------------------------------------------------------- fill gap
def test_fill_gap_sends_the_time_selection_in_source_seconds_and_adds_an_aligned_take(scripts, session, tmp_path):
    source = session / "Audio" / "dropout.wav"
    write_tone(source, 5.0, 44100)
    sim = new_sim(session)
    item = restyle_setup(sim, source, offset=1.0, rate=1.0, position=10.0, length=4.0)
    sim.sim.ts = sim.table([11.0, 11.5])
    sim.answer_inputs("")
    sim.run_script(scripts / "audiohost_fill_gap.lua")
    answer_ping(sim)
    args, result = sim.launched(1)
    assert args[:12] == ["request", "inpaint", "--wait", "--serve", "--timeout", "10", str(session / "audiohost"), str(source), "2.000000000", "2.500000000", "--result", str(result)]
    [path] = takes(tmp_path, 1, seconds=5.0)
    write_result(result, {"state": "done", "paths": [path]})
    sim.run_until(sim.idle)
    new = item.takes[2]
    assert new.source.file == path and new.info.D_STARTOFFS == 1.0 and new.info.D_PLAYRATE == 1.0
    assert sim.boxes() == []


def test_fill_gap_without_a_time_selection_says_so(scripts, session):
    sim = new_sim(session)
    sim.run_script(scripts / "audiohost_fill_gap.lua")
    assert sim.boxes() == ["Make a time selection over the gap first."]


# ---------------------------------------------------------------------- render cue sheet
def test_render_cue_sheet_inserts_only_what_is_new_on_a_track_per_cue(scripts, session, tmp_path):
    a = takes(tmp_path / "a", 1)
    b = takes(tmp_path / "b", 2)
    sim = new_sim(session, cursor=4.0)
    old_track = sim.sim.new_track("cue-a")
    sim.sim.new_item(old_track, 0.0, 1.0, a[0], 1.0)  # cue-a's take is already in the project
    sim.run_script(scripts / "audiohost_render_cue_sheet.lua")
    answer_ping(sim)
    args, result = sim.launched(1)
    assert args[:7] == ["request", "render", "--wait", "--serve", "--timeout", "10", str(session / "audiohost")]
    write_result(result, {"state": "done", "paths": a + b, "jobs": [{"name": "cue-a", "paths": a}, {"name": "cue-b", "paths": b}]})
    sim.run_until(sim.idle)
    tracks = {t.name: t for t in sim.tracks()}
    assert set(tracks) == {"cue-a", "cue-b"}
    new_items = [i for i in sim.items() if i.track.name == "cue-b"]
    assert len(new_items) == 1 and new_items[0].info.D_POSITION == 4.0
    assert [new_items[0].takes[k].source.file for k in (1, 2)] == b
    assert new_items[0].info.D_LENGTH == pytest.approx(1.0)
    assert len([i for i in sim.items() if i.track.name == "cue-a"]) == 1
    assert sim.boxes() == []


# ---------------------------------------------------------------------- no daemon, cancel, a client that never starts
def test_no_daemon_offers_to_start_one_for_this_project_and_goes_on_once_it_answers(scripts, session, tmp_path):
    sim = new_sim(session)
    sim.answer_inputs("rain", "2", "1")
    sim.answer_boxes(6)  # Yes, start one
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    _, ping = sim.launched(0)
    write_result(ping, {"state": "no-daemon", "error": "no audiohost daemon answered on 127.0.0.1:9010 within 3 s"})
    sim.run_until(lambda: len(sim.commands) >= 3)
    [offer] = sim.calls("ShowMessageBox")
    assert "Start one now for this project" in offer[0] and offer[2] == 4  # Yes / No
    start, _ = sim.launched(1)
    assert start == ["daw", "start", "--project", str(session / "audiohost"), "--root", str(session), "--osc-port", "9010"]
    answer_ping(sim, 2)  # it answers: the request goes out
    args, _ = sim.launched(3)
    assert args[:2] == ["request", "foley"]


def test_no_daemon_and_no_thanks_ends_quietly(scripts, session):
    sim = new_sim(session)
    sim.answer_inputs("rain", "2", "1")
    sim.answer_boxes(7)  # No
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    _, ping = sim.launched(0)
    write_result(ping, {"state": "no-daemon", "error": "no daemon"})
    sim.run_until(sim.idle)
    assert len(sim.commands) == 1 and len(sim.boxes()) == 1


def test_escape_cancels_the_job_through_the_cancel_file(scripts, session, tmp_path):
    sim = new_sim(session)
    sim.answer_inputs("rain", "2", "1")
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    answer_ping(sim)
    _, result = sim.launched(1)
    write_result(result, {"state": "running", "progress": 0.2})
    sim.step()
    sim.sim.key = 27  # Esc in the progress window
    sim.step()
    assert Path(str(result) + ".cancel").is_file()
    write_result(result, {"state": "cancelled"})
    sim.run_until(sim.idle)
    assert sim.boxes() == [] and not sim.calls("InsertMedia")


def test_a_client_that_never_starts_is_reported_not_waited_for_forever(scripts, session):
    sim = new_sim(session)
    sim.answer_inputs("rain", "2", "1")
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    sim.step()
    sim.sim.clock_offset = 31  # half a minute later, still no result file
    sim.run_until(sim.idle)
    [box] = sim.boxes()
    assert "audiohost did not start" in box and "audiohost daw install reaper" in box


def test_a_broken_install_is_one_message(scripts, session):
    (scripts / "audiohost_config.lua").write_text("this is not lua")
    sim = new_sim(session)
    sim.answer_inputs("rain", "2", "1")
    sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
    [box] = sim.boxes()
    assert "audiohost daw install reaper" in box and "script error" not in box


# ---------------------------------------------------------------------- against a real daemon
def test_the_actions_client_call_renders_with_a_real_daemon(scripts, tmp_path):
    from tests.oscpeer import Daemon, OscPeer
    from tests.test_daemon import make_project

    project = make_project(tmp_path / "proj")
    peer = OscPeer(0)
    daemon = Daemon([project], tmp_path / "state", peer.reply_port).start()
    peer.daemon = ("127.0.0.1", daemon.port)
    children = []
    try:
        daemon.wait_ready(peer)
        config = (scripts / "audiohost_config.lua").read_text().replace("port = 9010", f"port = {daemon.port}")
        (scripts / "audiohost_config.lua").write_text(config)
        sim = ReaperSim(on_exec=lambda cmd: children.append(subprocess.Popen(shlex.split(cmd))))
        session = tmp_path / "song"
        session.mkdir()
        sim.sim.rpp = str(session / "song.rpp")
        sim.sim.projext["audiohost/project"] = str(project)
        sim.sim.cursor = 3.0
        sim.answer_inputs("quick", "1", "2")
        sim.run_script(scripts / "audiohost_foley_at_cursor.lua")
        sim.run_until(sim.idle, timeout=240)
        assert sim.boxes() == []
        inserted = [args[0] for args in sim.calls("InsertMedia")]
        assert len(inserted) == 2
        for path in inserted:
            assert Path(path).parent == project / "renders" / "foley" / "quick"
            assert sf.info(path).frames == 48000
        [item] = sim.items()
        assert item.info.D_POSITION == 3.0 and len(item.takes) == 2 and item.track.name == "quick"
    finally:
        for child in children:
            child.wait(timeout=60)
        daemon.stop()
        peer.close()


# ---------------------------------------------------------------------- the result file, as the actions read it
def lib_module(scripts: Path):
    sim = ReaperSim()
    return sim, sim.lua.globals().dofile(str(scripts / "audiohost_lib.lua"))


@pytest.mark.parametrize("value", [
    {"state": "done", "paths": ["/a b/c\"d\\e.wav", "/\u00e9t\u00e9/\u6d4b\u8bd5.wav", "/emoji/\U0001f3b5.wav"], "progress": 0.25},
    {"nested": [[], {}, [1, -2.5e-3, 3e10], {"k": None, "t": True, "f": False}], "ctl": "\t\n\r\b\f\u0001"},
    [],
    "just a string",
])
def test_the_actions_read_what_the_client_writes(scripts, value):
    _, lib = lib_module(scripts)
    decoded = lib.json_decode(json.dumps(value))  # the client writes ASCII JSON (\u escapes)
    assert to_python(decoded) == strip_nulls(value)
    assert to_python(lib.json_decode(json.dumps(value, ensure_ascii=False, indent=1))) == strip_nulls(value)


def test_a_broken_result_file_is_an_error_the_poll_survives(scripts, tmp_path):
    sim, lib = lib_module(scripts)
    result = tmp_path / "r.json"
    task = sim.lua.table_from({"result": str(result)})
    result.write_text('{"state": "running", "progress": 0.5, "final": false}')
    assert lib.poll(task).state == "running"
    for broken in ['{"state": "done", "fin', "", "null trailing", '{"a" 1}', "[1, 2", '"\\x"']:
        result.write_text(broken)
        assert lib.poll(task).state == "running"  # the last good one stands
        if broken:
            ok, _ = sim.lua.eval("pcall")(lib.json_decode, broken)
            assert ok is False


def to_python(value):
    if lupa.lua54.lua_type(value) == "table":
        keys = list(value.keys())
        if all(isinstance(k, int) for k in keys) and keys == list(range(1, len(keys) + 1)):
            return [to_python(value[k]) for k in keys]
        return {k: to_python(value[k]) for k in keys} if keys else []
    return value


def strip_nulls(value):
    """Lua has no null: a JSON null is a missing key, and an empty object reads as an empty list."""
    if isinstance(value, dict):
        out = {k: strip_nulls(v) for k, v in value.items() if v is not None}
        return out if out else []
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value
