"""One daemon per state directory, one writer per project: the loser says who holds the lock."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from host.cli import main
from host.config.project import check_renders, load_project
from host.errors import InputError
from host.locks import LockHeld, lock_project, lock_state_dir, read_holder


class Holder:
    """Another process holding a project's (or a state directory's) lock, as a daemon would."""

    def __init__(self, kind: str, path: Path, command: str = "audiohost serve"):
        code = textwrap.dedent(
            f"""
            import sys, time
            from host.locks import lock_project, lock_state_dir
            held = {"lock_project" if kind == "project" else "lock_state_dir"}({str(path)!r}, {command!r})
            print("held", flush=True)
            time.sleep(600)
            """
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=dict(os.environ))
        assert self.proc.stdout.readline().strip() == b"held"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def __enter__(self) -> "Holder":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.kill9()


def test_the_second_taker_is_refused_with_who_holds_it(tmp_path):
    first = lock_project(tmp_path, "audiohost serve")
    try:
        with pytest.raises(LockHeld) as err:
            lock_project(tmp_path, "audiohost render")
        line = str(err.value)
        assert line.startswith(f"project {tmp_path}: in use by pid {os.getpid()} (audiohost serve) on {socket.gethostname()} since ")
        assert "one writer" in line and "\n" not in line
        assert err.value.holder["pid"] == os.getpid()
    finally:
        first.release()
    again = lock_project(tmp_path, "audiohost render")  # released: free again
    assert read_holder(tmp_path / ".audiohost" / "lock")["command"] == "audiohost render"
    again.release()


def test_a_holder_that_dies_leaves_no_stale_lock(tmp_path):
    with Holder("state", tmp_path / "state") as holder:
        with pytest.raises(LockHeld, match=f"pid {holder.pid} \\(audiohost serve\\)"):
            lock_state_dir(tmp_path / "state")
        holder.kill9()  # kill -9: no clean-up code runs
    lock_state_dir(tmp_path / "state").release()


def test_render_refuses_a_project_a_daemon_is_serving(tmp_path, capsys):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "cues.toml").write_text('[[cue]]\nname = "rain"\nprompt = "rain"\nduration = 1.0\nsteps = 2\ntakes = 1\n')
    with Holder("project", project) as daemon:
        code = main(["render", str(project), "--model", "tiny"])
        out, err = capsys.readouterr()
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith(f"error: project {project.resolve()}: in use by pid {daemon.pid} (audiohost serve)")
    assert not (project / "renders").exists() or not any((project / "renders").rglob("*.wav"))


@pytest.mark.parametrize("layout", ["renders-symlink", "kind-symlink", "renders-file"])
def test_a_project_whose_renders_folder_is_not_its_own_is_refused(tmp_path, layout):
    project = tmp_path / "proj"
    project.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if layout == "renders-symlink":
        (project / "renders").symlink_to(elsewhere, target_is_directory=True)
    elif layout == "kind-symlink":
        (project / "renders").mkdir()
        (project / "renders" / "foley").symlink_to(elsewhere, target_is_directory=True)
    else:
        (project / "renders").write_text("not a folder")
    with pytest.raises(InputError) as err:
        check_renders(load_project(project))
    assert "renders" in err.value.where and "\n" not in str(err.value)


def test_render_refuses_a_renders_symlink_and_deletes_nothing_where_it_points(tmp_path, capsys):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "cues.toml").write_text('[[cue]]\nname = "rain"\nprompt = "rain"\nduration = 1.0\nsteps = 2\ntakes = 1\n')
    elsewhere = tmp_path / "someone-elses-folder"
    elsewhere.mkdir()
    theirs = elsewhere / ".download.wav.0123456789ab.partial"
    theirs.write_bytes(b"a download in progress")
    (project / "renders").symlink_to(elsewhere, target_is_directory=True)
    assert main(["render", str(project), "--model", "tiny"]) == 2
    _, err = capsys.readouterr()
    assert "renders: is a symlink" in err and "will not serve this project" in err and len(err.strip().splitlines()) == 1
    assert theirs.read_bytes() == b"a download in progress" and sorted(p.name for p in elsewhere.iterdir()) == [theirs.name]


def test_lock_file_records_pid_command_host_and_time(tmp_path):
    before = time.time()
    held = lock_state_dir(tmp_path)
    try:
        holder = read_holder(tmp_path / "lock")
    finally:
        held.release()
    assert holder["pid"] == os.getpid() and holder["command"] == "audiohost serve" and holder["host"] == socket.gethostname()
    assert before - 1 <= holder["since"] <= time.time() + 1
