"""A stand-in for REAPER in which the audiohost Lua actions run (Lua 5.4, embedded with lupa).

``reaper`` and ``gfx`` are stub tables that record every call. Only functions of REAPER's real
API exist on them (a misspelt or invented one raises, which the actions would show as a script
error), and the ones the actions depend on behave as REAPER documents: InsertMedia mode 1 puts
the file on a new track at the edit cursor and selects the new item, mode 3 adds it as a take
of the selected items, AddTakeToMediaItem / SetMediaItemTake_Source / take values, ext states,
GetUserInputs answers and message box answers come from queues the test fills, and defer()
queues functions the test runs step by step.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Callable, Optional

import lupa.lua54 as lupa

STUB = r"""
local sim = { calls = {}, deferred = {}, inputs = {}, answers = {}, ext = {}, projext = {},
  os = "Linux", rpp = "", cursor = 0.0, ts = { 0.0, 0.0 }, key = 0, tracks = {}, item_list = {}, clock_offset = 0 }

local function record(name, ...)
  sim.calls[#sim.calls + 1] = { name = name, args = table.pack(...) }
end

local impl = {}
local function source(file, length) return { kind = "source", file = file, length = length or 1.0 } end
sim.source = source

local function new_take(item, src)
  local take = { kind = "take", item = item, source = src, info = { D_STARTOFFS = 0.0, D_PLAYRATE = 1.0 }, name = "" }
  item.takes[#item.takes + 1] = take
  return take
end

function sim.new_track(name)
  local track = { kind = "track", name = name or "" }
  sim.tracks[#sim.tracks + 1] = track
  return track
end

function sim.new_item(track, position, length, file, source_length, offset, rate)
  local item = { kind = "item", track = track, info = { D_POSITION = position, D_LENGTH = length, I_CURTAKE = 0 }, takes = {},
    selected = false, alive = true }
  if file then
    local take = new_take(item, source(file, source_length))
    take.info.D_STARTOFFS = offset or 0.0
    take.info.D_PLAYRATE = rate or 1.0
  end
  sim.item_list[#sim.item_list + 1] = item
  return item
end

local function selected()
  local out = {}
  for _, item in ipairs(sim.item_list) do if item.selected and item.alive then out[#out + 1] = item end end
  return out
end

impl.GetOS = function() return sim.os end
impl.EnumProjects = function(idx) return { kind = "project" }, sim.rpp end
impl.GetProjExtState = function(proj, section, key)
  local v = sim.projext[section .. "/" .. key]
  return v and 1 or 0, v or ""
end
impl.SetProjExtState = function(proj, section, key, value) sim.projext[section .. "/" .. key] = value; return 1 end
impl.GetExtState = function(section, key) return sim.ext[section .. "/" .. key] or "" end
impl.SetExtState = function(section, key, value, persist) sim.ext[section .. "/" .. key] = value end
impl.GetUserInputs = function(title, n, captions, defaults)
  local answer = table.remove(sim.inputs, 1)
  if not answer then return false, "" end
  return answer[1], answer[2]
end
impl.ShowMessageBox = function(msg, title, kind) return table.remove(sim.answers, 1) or 1 end
impl.GetCursorPosition = function() return sim.cursor end
impl.SetEditCurPos = function(t, moveview, seekplay) sim.cursor = t end
impl.ExecProcess = function(cmd, timeout) return sim.on_exec(cmd, timeout) end
impl.RecursiveCreateDirectory = function(path, ignored) return sim.on_mkdir(path) end
impl.time_precise = function() return sim.clock() + sim.clock_offset end
impl.defer = function(fn) sim.deferred[#sim.deferred + 1] = fn end
impl.GetResourcePath = function() return sim.resource or "" end
impl.file_exists = function(path) return io.open(path, "rb") ~= nil end

impl.SelectAllMediaItems = function(proj, state) for _, item in ipairs(sim.item_list) do item.selected = state end end
impl.CountSelectedMediaItems = function(proj) return #selected() end
impl.GetSelectedMediaItem = function(proj, i) return selected()[i + 1] end
impl.CountMediaItems = function(proj) return #sim.item_list end
impl.GetMediaItem = function(proj, i) return sim.item_list[i + 1] end
impl.InsertMedia = function(file, mode)
  if mode == 1 then -- a new track, an item at the edit cursor, selected alone
    local track = sim.new_track("")
    for _, other in ipairs(sim.item_list) do other.selected = false end
    local item = sim.new_item(track, sim.cursor, 1.0, file, 1.0)
    item.selected = true
    sim.cursor = sim.cursor + 1.0 -- REAPER may move the edit cursor past what it inserted
    return 1
  elseif mode == 3 then -- a take of each selected item
    for _, item in ipairs(selected()) do new_take(item, source(file)) end
    return 1
  end
  error("InsertMedia mode " .. tostring(mode) .. " is not simulated")
end
impl.CountTakes = function(item) return #item.takes end
impl.GetTake = function(item, i) return item.takes[i + 1] end
impl.GetActiveTake = function(item) return item.takes[(item.info.I_CURTAKE or 0) + 1] end
impl.SetActiveTake = function(take)
  for i, t in ipairs(take.item.takes) do if t == take then take.item.info.I_CURTAKE = i - 1 end end
end
impl.TakeIsMIDI = function(take) return take.midi == true end
impl.GetMediaItem_Track = function(item) return item.track end
impl.GetMediaItemInfo_Value = function(item, key) return item.info[key] or 0.0 end
impl.SetMediaItemInfo_Value = function(item, key, value) item.info[key] = value; return true end
impl.GetMediaItemTakeInfo_Value = function(take, key) return take.info[key] or 0.0 end
impl.SetMediaItemTakeInfo_Value = function(take, key, value) take.info[key] = value; return true end
impl.GetSetMediaItemTakeInfo_String = function(take, key, value, set)
  if set then take.name = value end
  return true, take.name
end
impl.GetMediaItemTake_Source = function(take) return take.source end
impl.GetMediaSourceFileName = function(src, buf) return src.file end
impl.GetMediaSourceLength = function(src) return src.length, false end
impl.AddTakeToMediaItem = function(item) return new_take(item, nil) end
impl.PCM_Source_CreateFromFile = function(file) return sim.on_source(file) end
impl.PCM_Source_Destroy = function(src) end
impl.SetMediaItemTake_Source = function(take, src) take.source = src; return true end
impl.ValidatePtr2 = function(proj, ptr, kind) return ptr ~= nil and ptr.alive ~= false end
impl.GetSet_LoopTimeRange = function(set, loop, a, b, seek) return sim.ts[1], sim.ts[2] end
impl.CountTracks = function(proj) return #sim.tracks end
impl.GetTrack = function(proj, i) return sim.tracks[i + 1] end
impl.InsertTrackAtIndex = function(idx, defaults) table.insert(sim.tracks, idx + 1, { kind = "track", name = "" }) end
impl.GetSetMediaTrackInfo_String = function(track, key, value, set)
  if set then track.name = value end
  return true, track.name
end
impl.AddMediaItemToTrack = function(track)
  local item = sim.new_item(track, 0.0, 0.0)
  return item
end
for _, name in ipairs({ "Undo_BeginBlock", "Undo_EndBlock", "PreventUIRefresh", "UpdateArrange", "Main_OnCommand",
  "MarkProjectDirty", "ShowConsoleMsg" }) do
  impl[name] = function() end
end

reaper = setmetatable({}, { __index = function(_, name)
  local f = impl[name]
  if not f then error("reaper." .. tostring(name) .. " is not a REAPER API function the simulator knows", 2) end
  return function(...)
    record(name, ...)
    return f(...)
  end
end })

local gfx_impl = {
  init = function() sim.window = true end,
  quit = function() sim.window = false end,
  set = function() end, rect = function() end, drawstr = function() end, update = function() end,
  getchar = function() return sim.key end,
}
gfx = setmetatable({ w = 460, h = 92, x = 0, y = 0 }, { __index = function(_, name)
  local f = gfx_impl[name]
  if not f then error("gfx." .. tostring(name) .. " is not simulated", 2) end
  return function(...) record("gfx." .. name, ...); return f(...) end
end })

return sim
"""


class ReaperSim:
    def __init__(self, on_exec: Optional[Callable[[str], None]] = None):
        self.lua = lupa.LuaRuntime(unpack_returned_tuples=True)
        self.sim = self.lua.execute(STUB)
        self.commands: list[str] = []
        self._on_exec = on_exec
        self.sim.on_exec = self._exec
        self.sim.on_mkdir = lambda path: (Path(path).mkdir(parents=True, exist_ok=True), 1)[1]
        self.sim.on_source = lambda file: self.sim.source(file, _length(file))
        self.sim.clock = time.monotonic

    # -- the world
    def _exec(self, cmd, timeout):
        self.commands.append(cmd)
        if self._on_exec is not None:
            self._on_exec(cmd)
        return ""

    def table(self, values: list):
        return self.lua.table_from(values)

    def answer_inputs(self, *values: str, ok: bool = True) -> None:
        self.sim.inputs[len(self.sim.inputs) + 1] = self.table([ok, "\n".join(values)])

    def answer_boxes(self, *answers: int) -> None:
        for a in answers:
            self.sim.answers[len(self.sim.answers) + 1] = a

    # -- running
    def run_script(self, path: Path) -> None:
        self.lua.globals().dofile(str(path))

    def step(self) -> int:
        """Run what was deferred so far (one pass of REAPER's defer loop); how many ran."""
        pending = _items(self.sim.deferred)
        self.sim.deferred = self.lua.table()
        for fn in pending:
            fn()
        return len(pending)

    def run_until(self, predicate: Callable[[], bool], timeout: float = 60.0, between: Callable[[], None] = lambda: None) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; calls so far: {self.call_names()[-20:]}")
            between()
            self.step()
            time.sleep(0.01)

    def idle(self) -> bool:
        return len(self.sim.deferred) == 0

    def items(self) -> list:
        return _items(self.sim.item_list)

    def tracks(self) -> list:
        return _items(self.sim.tracks)

    # -- what happened
    def calls(self, name: Optional[str] = None) -> list[tuple]:
        out = []
        for call in _items(self.sim.calls):
            if name is None or call.name == name:
                out.append(tuple(call.args[i] for i in range(1, call.args.n + 1)))
        return out

    def call_names(self) -> list[str]:
        return [call.name for call in _items(self.sim.calls)]

    def boxes(self) -> list[str]:
        return [args[0] for args in self.calls("ShowMessageBox")]

    def launched(self, k: int = -1) -> tuple[list[str], Path]:
        """The arguments (from the args file) of the k-th command launched, and its result file."""
        cmd = self.commands[k]
        parts = shlex.split(cmd)
        assert parts[-1].startswith("@"), cmd
        args = Path(parts[-1][1:]).read_text(encoding="utf-8").splitlines()
        result = Path(args[args.index("--result") + 1]) if "--result" in args else None
        return args, result


def _length(file: str) -> float:
    try:
        import soundfile as sf

        info = sf.info(file)
        return info.frames / info.samplerate
    except Exception:  # noqa: BLE001 - a file the simulator cannot read has no length
        return 0.0


def _items(table) -> list:
    """A Lua array's values, in order."""
    return [table[i] for i in range(1, len(table) + 1)]
