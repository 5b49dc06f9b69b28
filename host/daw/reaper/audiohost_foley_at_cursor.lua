-- @description audiohost: foley at edit cursor
-- Asks for a prompt or preset, a duration and a number of takes, renders them with the running
-- audiohost daemon and inserts them at the edit cursor on a new track, as takes of one item
-- (switch takes the REAPER way: T, or the take menu). The last values are remembered.

local lib = dofile((debug.getinfo(1, "S").source:gsub("^@", "")):match("^(.*[/\\])") .. "audiohost_lib.lua")

local function insert_takes(paths, name, cursor)
  lib.begin_edit()
  reaper.SelectAllMediaItems(0, false)
  reaper.SetEditCurPos(cursor, false, false)
  reaper.InsertMedia(paths[1], 1) -- 1: on a new track, at the edit cursor
  local item = reaper.GetSelectedMediaItem(0, 0)
  if not item then
    lib.finish_edit("audiohost: foley " .. name)
    lib.fail("REAPER did not insert " .. paths[1])
  end
  for i = 2, #paths do
    reaper.SetEditCurPos(cursor, false, false)
    reaper.InsertMedia(paths[i], 3) -- 3: as a take of the selected item
  end
  for i = reaper.CountTakes(item) + 1, #paths do -- a REAPER that did not add them: add them here
    lib.add_take(item, paths[i], 0, 1.0)
  end
  local track = reaper.GetMediaItem_Track(item)
  reaper.GetSetMediaTrackInfo_String(track, "P_NAME", name, true)
  reaper.SetMediaItemInfo_Value(item, "I_CURTAKE", 0)
  reaper.SetEditCurPos(cursor, false, false)
  lib.finish_edit("audiohost: foley " .. name)
end

local function main()
  local folder = lib.project_folder()
  local values = lib.ask("audiohost: foley at edit cursor", { "Prompt or preset", "Duration (s)", "Takes" },
    { lib.recall("foley_what", ""), lib.recall("foley_duration", "4"), lib.recall("foley_takes", "2") })
  if not values then return end
  local what = (values[1] or ""):match("^%s*(.-)%s*$")
  if what == "" then lib.fail("Give a prompt (\"rain on a tin roof\") or a preset name (footsteps-gravel).") end
  local duration = lib.number(values[2], "Duration", 0.5, 60)
  local takes = math.floor(lib.number(values[3], "Takes", 1, 16))
  lib.remember("foley_what", what)
  lib.remember("foley_duration", values[2])
  lib.remember("foley_takes", takes)
  local cursor = reaper.GetCursorPosition()
  lib.request(folder, { "foley", folder, what, lib.fmt(duration), "-1", tostring(takes) },
    "audiohost: foley", what, function(result)
      local name = (result.jobs and result.jobs[1] and result.jobs[1].name) or what
      if #result.paths == 0 then lib.fail("audiohost delivered no takes") end
      insert_takes(result.paths, name, cursor)
    end)
end

lib.guard(main)
