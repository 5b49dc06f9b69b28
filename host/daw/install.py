"""``audiohost daw install reaper|ableton`` and ``audiohost daw start``.

1. Reaper: the Lua actions shipped in ``host/daw/reaper/`` are copied into REAPER's resource
   folder under ``Scripts/audiohost/``, with ``audiohost_config.lua`` naming the command that
   runs this very audiohost; they are registered in ``reaper-kb.ini`` (the action list) unless
   REAPER is running (it rewrites that file on exit), in which case the two clicks that load
   them are printed instead. Installing again replaces the files and adds no second entry.
2. Ableton Live: the device kept as readable patcher JSON (``host/daw/ableton/audiohost.maxpat``)
   is built into ``audiohost.amxd`` and copied with its js file into the User Library's
   Max Audio Effect folder.
3. ``daw start``: a daemon for a DAW project, started in the background with its output in
   the state folder; the Reaper actions offer it when no daemon answers.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import host
from host.daw import amxd
from host.errors import InputError

HERE = Path(__file__).resolve().parent
REAPER_SCRIPTS = HERE / "reaper"
ABLETON_DEVICE = HERE / "ableton"
SUBFOLDER = "audiohost"

# script file -> its name in REAPER's action list
ACTIONS = {
    "audiohost_foley_at_cursor.lua": "audiohost: foley at edit cursor",
    "audiohost_restyle_selected_items.lua": "audiohost: restyle selected items",
    "audiohost_fill_gap.lua": "audiohost: fill gap (time selection)",
    "audiohost_render_cue_sheet.lua": "audiohost: render cue sheet",
    "audiohost_set_project_folder.lua": "audiohost: set project folder",
}
SHARED = ["audiohost_lib.lua"]
CONFIG = "audiohost_config.lua"


# ---------------------------------------------------------------------- where things go
def reaper_resource_path() -> Path:
    """REAPER's resource folder on this system (Options > Show REAPER resource path)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "REAPER"
    if os.name == "nt":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "REAPER"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "REAPER"


def live_user_library() -> Path:
    """Live's default User Library (Preferences > Library shows the one in use)."""
    if sys.platform == "darwin":
        return Path.home() / "Music" / "Ableton" / "User Library"
    if os.name == "nt":
        return Path(os.environ.get("USERPROFILE") or Path.home()) / "Documents" / "Ableton" / "User Library"
    raise InputError("--user-library", "Ableton Live runs on macOS and Windows; give the User Library folder with --user-library DIR")


def device_folder(user_library: Path) -> Path:
    """Where Live lists Max audio effects of the User Library (browser: Max for Live > Max Audio Effect)."""
    return Path(user_library) / "Presets" / "Audio Effects" / "Max Audio Effect" / SUBFOLDER


# ---------------------------------------------------------------------- the command the scripts run
def client_command() -> list[str]:
    """How a DAW script runs this audiohost: this Python with ``-m host``, and on POSIX the
    PYTHONPATH this process found ``host`` through when that Python would not find it alone."""
    python = Path(sys.executable)
    if os.name == "nt" and (python.parent / "pythonw.exe").is_file():
        python = python.parent / "pythonw.exe"  # no console window popping up beside REAPER
    command = [str(python), "-m", "host"]
    package_parent = str(Path(host.__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        found = subprocess.run(
            [sys.executable, "-I", "-c", "import host, pathlib; print(pathlib.Path(host.__file__).resolve().parents[1])"],
            env=env, capture_output=True, text=True, timeout=60,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found = ""
    if found != package_parent and os.name != "nt" and Path("/usr/bin/env").exists():
        command = ["/usr/bin/env", f"PYTHONPATH={package_parent}", *command]
    return command


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def lua_config(command: list[str], osc_host: str, osc_port: int) -> str:
    return (
        "-- Written by `audiohost daw install reaper`: how the audiohost actions run audiohost.\n"
        "-- Install again after moving or upgrading audiohost (it rewrites this file).\n"
        "return {\n"
        f"  command = {{ {', '.join(lua_string(c) for c in command)} }},\n"
        f"  host = {lua_string(osc_host)},\n"
        f"  port = {int(osc_port)},\n"
        f"  version = {lua_string(host.__version__)},\n"
        "}\n"
    )


# ---------------------------------------------------------------------- REAPER
def command_id(script: str) -> str:
    """The action's command id (what a toolbar or key binding refers to as _RS...): stable
    across installs, so bindings survive an upgrade."""
    return "RS" + hashlib.sha1(f"{SUBFOLDER}/{script}".encode()).hexdigest()


_SCR = re.compile(r'^SCR\s+\S+\s+\S+\s+(\S+)\s+"[^"]*"\s+(?:"([^"]*)"|(\S+))\s*$')


def kb_with_actions(text: str) -> tuple[str, int]:
    """``reaper-kb.ini`` text with one SCR line per audiohost action (ours replaced, a line the
    user made by loading the same script kept); returns the text and how many lines it added."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines()
    ours = {command_id(s) for s in ACTIONS}
    kept, present = [], set()
    for line in lines:
        m = _SCR.match(line)
        if m and m.group(1) in ours:
            continue  # written by an earlier install: written again below
        if m:
            present.add((m.group(2) or m.group(3) or "").replace("\\", "/"))
        kept.append(line)
    added = 0
    for script, name in ACTIONS.items():
        relative = f"{SUBFOLDER}/{script}"
        if relative in present:
            continue
        kept.append(f'SCR 4 0 {command_id(script)} "Custom: {name}" "{relative}"')
        added += 1
    return newline.join(kept) + newline, added


def reaper_running() -> bool:
    """Is a REAPER process running on this machine? (Best effort; False when unsure.)"""
    try:
        import psutil  # optional

        return any((p.info.get("name") or "").lower() in ("reaper", "reaper.exe") for p in psutil.process_iter(["name"]))
    except ImportError:
        pass
    if sys.platform.startswith("linux"):
        for comm in Path("/proc").glob("[0-9]*/comm"):
            try:
                if comm.read_text().strip().lower() == "reaper":
                    return True
            except OSError:
                continue
        return False
    try:
        if os.name == "nt":
            out = subprocess.run(["tasklist", "/FI", "IMAGENAME eq reaper.exe"], capture_output=True, text=True, timeout=10).stdout
            return "reaper.exe" in out.lower()
        return subprocess.run(["pgrep", "-x", "REAPER"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def install_reaper(resource: Path, osc_host: str = "127.0.0.1", osc_port: int = 9010, running: Optional[bool] = None) -> list[str]:
    """Copy the actions and register them; returns what to tell the user, line by line."""
    resource = Path(resource).expanduser()
    if not resource.is_dir():
        raise InputError(str(resource), "no such folder: is REAPER installed? (REAPER: Options > Show REAPER resource path; give it with --resource-path)")
    target = resource / "Scripts" / SUBFOLDER
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in [*ACTIONS, *SHARED]:
            shutil.copyfile(REAPER_SCRIPTS / name, target / name)
        _write_replacing(target / CONFIG, lua_config(client_command(), osc_host, osc_port))
    except OSError as err:
        raise InputError(str(target), f"cannot install the scripts: {err.strerror or err}") from None
    report = [f"installed {len(ACTIONS)} REAPER actions in {target}"]
    running = reaper_running() if running is None else running
    kb = resource / "reaper-kb.ini"
    if running:
        report += [
            "REAPER is running, so its action list was left alone (REAPER rewrites reaper-kb.ini when it quits). Load them now:",
            "  1. Actions > Show action list...",
            f"  2. New action > Load ReaScript..., select the five audiohost_*.lua files in {target} except audiohost_lib.lua",
            "(or quit REAPER and run this command again).",
        ]
        return report
    try:
        old = kb.read_bytes().decode("utf-8", errors="surrogateescape") if kb.exists() else ""  # line endings as they are
        new, added = kb_with_actions(old)
        if new != old:
            backup = kb.with_name(kb.name + ".before-audiohost")
            if old and not backup.exists():
                backup.write_bytes(old.encode("utf-8", errors="surrogateescape"))
            _write_replacing(kb, new.encode("utf-8", errors="surrogateescape"))
    except OSError as err:
        raise InputError(str(kb), f"cannot register the actions: {err.strerror or err}") from None
    report.append(f"registered them in {kb}" + ("" if added else " (already there)"))
    report.append("In REAPER: Actions > Show action list, search 'audiohost' to run one or bind it to a key or toolbar.")
    return report


# ---------------------------------------------------------------------- Ableton Live
def build_device() -> bytes:
    return amxd.pack((ABLETON_DEVICE / "audiohost.maxpat").read_text(encoding="utf-8"))


def install_ableton(user_library: Path) -> list[str]:
    user_library = Path(user_library).expanduser()
    if not user_library.is_dir():
        raise InputError(str(user_library), "no such folder (Live: Preferences > Library > Location of User Library)")
    target = device_folder(user_library)
    try:
        target.mkdir(parents=True, exist_ok=True)
        _write_replacing(target / "audiohost.amxd", build_device())
        shutil.copyfile(ABLETON_DEVICE / "audiohost_device.js", target / "audiohost_device.js")
    except OSError as err:
        raise InputError(str(target), f"cannot install the device: {err.strerror or err}") from None
    return [
        f"installed the audiohost device in {target}",
        "In Live: browser > Max for Live > Max Audio Effect > audiohost; drop it on an audio track.",
    ]


def _write_replacing(path: Path, content) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(content, bytes):
        tmp.write_bytes(content)
    else:
        tmp.write_text(content, encoding="utf-8", errors="surrogateescape")
    os.replace(tmp, path)


# ---------------------------------------------------------------------- a daemon for a DAW project
def start_daemon(args) -> int:
    """``audiohost daw start``: ``audiohost serve`` in the background for a DAW project, its
    output in ``serve-output.log`` in the state folder (the daemon's own log is beside it)."""
    from host.daemon.config import default_state_dir

    state = Path(args.state_dir).expanduser() if args.state_dir else default_state_dir()
    project = Path(args.project).expanduser()
    try:
        state.mkdir(parents=True, exist_ok=True)
        project.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(str(project), f"cannot create: {err.strerror or err}") from None
    command = [sys.executable, "-m", "host", "serve", "--project", str(project)]
    for root in args.root or []:
        command += ["--root", str(Path(root).expanduser())]
    for flag, value in (("--osc-port", args.osc_port), ("--model", args.model), ("--state-dir", args.state_dir)):
        if value is not None:
            command += [flag, str(value)]
    log = state / "serve-output.log"
    options: dict = {}
    if os.name == "nt":
        options["creationflags"] = 0x00000008 | 0x00000200 | 0x08000000  # detached, new group, no window
    else:
        options["start_new_session"] = True  # not stopped with the DAW's process group
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=str(state), **options)
    print(f"started audiohost serve for {project} (pid {proc.pid}); its output: {log}")
    return 0


# ---------------------------------------------------------------------- the command line
def add_parser(sub) -> None:
    d = sub.add_parser("daw", help="install the Reaper scripts or the Live device", description="DAW integration: install the clients, start a daemon for a DAW project.")
    dsub = d.add_subparsers(title="actions", metavar="ACTION")
    i = dsub.add_parser("install", help="install the clients of one DAW", description="Install the Reaper actions or the Max for Live device.")
    isub = i.add_subparsers(title="DAWs", metavar="DAW")
    r = isub.add_parser("reaper", help="the Lua actions, into REAPER's resource folder", description="Copy the audiohost actions into REAPER's Scripts/audiohost/ and register them in its action list.")
    r.add_argument("--resource-path", type=Path, help=f"REAPER's resource folder (default here: {reaper_resource_path()})")
    r.add_argument("--osc-host", default="127.0.0.1", help="the daemon's address the actions use (default 127.0.0.1)")
    r.add_argument("--osc-port", type=int, default=9010, help="the daemon's OSC port the actions use (default 9010)")
    r.set_defaults(func=_install_reaper)
    a = isub.add_parser("ableton", help="the Max for Live device, into Live's User Library", description="Build audiohost.amxd and copy it into the User Library's Max Audio Effect folder.")
    a.add_argument("--user-library", type=Path, help="Live's User Library folder (default: Live's default for this system)")
    a.set_defaults(func=_install_ableton)
    i.set_defaults(func=lambda args: (i.print_help(), 2)[1])
    s = dsub.add_parser("start", help="start a daemon for a DAW project in the background", description="Start `audiohost serve` for a project in the background; its output goes to serve-output.log in the state folder.")
    s.add_argument("--project", type=Path, required=True, help="the project folder (created if missing)")
    s.add_argument("--root", type=Path, action="append", help="a folder OSC paths may point into, e.g. the DAW session's (repeatable)")
    s.add_argument("--osc-port", type=int, default=None)
    s.add_argument("--model", default=None)
    s.add_argument("--state-dir", type=Path, default=None)
    s.set_defaults(func=start_daemon)
    d.set_defaults(func=lambda args: (d.print_help(), 2)[1])


def _install_reaper(args) -> int:
    for line in install_reaper(args.resource_path or reaper_resource_path(), args.osc_host, args.osc_port):
        print(line)
    return 0


def _install_ableton(args) -> int:
    for line in install_ableton(args.user_library or live_user_library()):
        print(line)
    return 0
