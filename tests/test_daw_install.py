"""``audiohost daw install reaper|ableton`` into temporary folders (files land where REAPER and
Live look; installing twice is harmless) and ``audiohost daw start``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import host
from host.cli import main
from host.daw import amxd, install
from host.daw.install import ACTIONS, command_id, kb_with_actions
from tests.oscpeer import free_udp_port

SCR = re.compile(r'^SCR 4 0 (RS[0-9a-f]{40}) "Custom: ([^"]+)" "([^"]+)"$')


@pytest.fixture
def reaper(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(install, "reaper_running", lambda: False)
    resource = tmp_path / "REAPER"
    resource.mkdir()
    return resource


def scr_lines(kb: Path) -> list[tuple[str, str, str]]:
    return [m.groups() for m in map(SCR.match, kb.read_text().splitlines()) if m]


def test_reaper_install_puts_the_actions_where_reaper_looks_and_registers_them(reaper, capsys):
    assert main(["daw", "install", "reaper", "--resource-path", str(reaper)]) == 0
    scripts = reaper / "Scripts" / "audiohost"
    assert sorted(p.name for p in scripts.iterdir()) == sorted([*ACTIONS, "audiohost_lib.lua", "audiohost_config.lua"])
    lines = scr_lines(reaper / "reaper-kb.ini")
    assert len(lines) == len(ACTIONS)
    for cmd, name, path in lines:
        assert (reaper / "Scripts" / path).is_file()  # REAPER resolves it under Scripts/
        assert name == ACTIONS[Path(path).name] and cmd == command_id(Path(path).name)
    assert "registered them" in capsys.readouterr().out


def test_installing_twice_is_harmless(reaper):
    kb = reaper / "reaper-kb.ini"
    kb.write_bytes(b'KEY 1 65 _RSabc 0\r\nSCR 4 0 RSabc "Custom: mine.lua" "mine.lua"\r\n')
    assert main(["daw", "install", "reaper", "--resource-path", str(reaper)]) == 0
    first = kb.read_bytes()
    assert main(["daw", "install", "reaper", "--resource-path", str(reaper)]) == 0
    assert kb.read_bytes() == first
    text = first.decode()
    assert text.startswith('KEY 1 65 _RSabc 0\r\nSCR 4 0 RSabc "Custom: mine.lua" "mine.lua"\r\n')  # the user's lines kept
    assert text.count("\r\n") == text.count("\n")  # its line endings kept
    assert len(scr_lines(kb)) == len(ACTIONS)
    assert (reaper / "reaper-kb.ini.before-audiohost").read_bytes().startswith(b"KEY 1 65")


def test_an_action_the_user_loaded_by_hand_is_not_registered_twice():
    mine = 'SCR 4 0 RS1234 "Custom: audiohost_foley_at_cursor.lua" "audiohost/audiohost_foley_at_cursor.lua"\n'
    text, added = kb_with_actions(mine)
    assert added == len(ACTIONS) - 1
    assert text.count("audiohost/audiohost_foley_at_cursor.lua") == 1 and text.startswith(mine)


def test_while_reaper_runs_the_action_list_is_left_alone_and_the_clicks_are_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(install, "reaper_running", lambda: True)
    resource = tmp_path / "REAPER"
    resource.mkdir()
    (resource / "reaper-kb.ini").write_text("KEY 1 65 0 0\n")
    assert main(["daw", "install", "reaper", "--resource-path", str(resource)]) == 0
    assert (resource / "reaper-kb.ini").read_text() == "KEY 1 65 0 0\n"
    assert (resource / "Scripts" / "audiohost" / "audiohost_foley_at_cursor.lua").is_file()
    out = capsys.readouterr().out
    assert "Actions > Show action list" in out and "Load ReaScript" in out


def test_a_missing_resource_folder_is_refused_and_nothing_is_created(tmp_path, capsys):
    missing = tmp_path / "no-reaper-here"
    assert main(["daw", "install", "reaper", "--resource-path", str(missing)]) == 2
    assert not missing.exists()
    assert "is REAPER installed" in capsys.readouterr().err


def test_the_installed_config_runs_this_audiohost(reaper):
    install.install_reaper(reaper, osc_port=9123, running=False)
    config = (reaper / "Scripts" / "audiohost" / "audiohost_config.lua").read_text()
    command = re.findall(r'"((?:[^"\\]|\\.)*)"', re.search(r"command = \{(.*)\}", config).group(1))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # REAPER does not have ours
    result = subprocess.run([c.replace("\\\\", "\\") for c in command] + ["--version"], capture_output=True, text=True, env=env, cwd="/", timeout=60)
    assert result.stdout.strip() == f"audiohost {host.__version__}"
    assert "port = 9123" in config


def test_ableton_install_puts_the_device_where_live_lists_max_audio_effects(tmp_path, capsys):
    library = tmp_path / "User Library"
    library.mkdir()
    assert main(["daw", "install", "ableton", "--user-library", str(library)]) == 0
    folder = library / "Presets" / "Audio Effects" / "Max Audio Effect" / "audiohost"
    assert sorted(p.name for p in folder.iterdir()) == ["audiohost.amxd", "audiohost_device.js"]
    device_type, text = amxd.unpack((folder / "audiohost.amxd").read_bytes())
    assert device_type == amxd.AUDIO_EFFECT and text == (install.ABLETON_DEVICE / "audiohost.maxpat").read_text()
    first = (folder / "audiohost.amxd").read_bytes()
    assert main(["daw", "install", "ableton", "--user-library", str(library)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["audiohost.amxd", "audiohost_device.js"]
    assert (folder / "audiohost.amxd").read_bytes() == first


def test_ableton_install_without_a_user_library_says_what_to_give(tmp_path, capsys):
    assert main(["daw", "install", "ableton", "--user-library", str(tmp_path / "missing")]) == 2
    assert "User Library" in capsys.readouterr().err
    if sys.platform.startswith("linux"):
        assert main(["daw", "install", "ableton"]) == 2
        assert "--user-library" in capsys.readouterr().err


def test_daw_start_leaves_a_daemon_running_in_the_background_with_its_output_in_the_state_folder(tmp_path):
    session = tmp_path / "song"
    session.mkdir()
    state = tmp_path / "state"
    port = free_udp_port()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "host", "daw", "start", "--project", str(session / "audiohost"), "--root", str(session),
         "--osc-port", str(port), "--model", "tiny", "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30  # it does not wait for the daemon
    pid = int(re.search(r"pid (\d+)", result.stdout).group(1))
    try:
        assert (session / "audiohost").is_dir()
        deadline = time.monotonic() + 120
        answered = None
        while answered is None and time.monotonic() < deadline:
            answered = subprocess.run([sys.executable, "-m", "host", "request", "projects", "--port", str(port), "--json", "--timeout", "2"],
                                      capture_output=True, text=True, timeout=60)
            answered = answered if answered.returncode == 0 else None
        assert answered is not None, (state / "serve-output.log").read_text()[-2000:]
        assert str((session / "audiohost").resolve()) in answered.stdout
        assert (state / "serve-output.log").is_file() and (state / "audiohost.log").is_file()
    finally:
        os.kill(pid, signal.SIGTERM)  # not our child (it left with a session of its own): wait for it to go
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
