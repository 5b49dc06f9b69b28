-- @description audiohost: fill gap (time selection)
-- Inpaints the time selection inside the selected item's source: the filled file (every sample
-- outside the gap identical to the source) becomes a new take on the item, lined up with it.

local lib = dofile((debug.getinfo(1, "S").source:gsub("^@", "")):match("^(.*[/\\])") .. "audiohost_lib.lua")

local function main()
  local t0, t1 = reaper.GetSet_LoopTimeRange(false, false, 0, 0, false)
  if not t0 or t1 - t0 <= 0 then lib.fail("Make a time selection over the gap first.") end
  local item, info
  for i = 0, reaper.CountSelectedMediaItems(0) - 1 do
    local candidate = reaper.GetSelectedMediaItem(0, i)
    local pos = reaper.GetMediaItemInfo_Value(candidate, "D_POSITION")
    local len = reaper.GetMediaItemInfo_Value(candidate, "D_LENGTH")
    if pos <= t0 and t1 <= pos + len then
      item = candidate
      break
    end
  end
  if not item then lib.fail("Select the item that holds the gap (the time selection must lie inside it).") end
  local why
  info, why = lib.take_source(item)
  if not info then lib.fail("Cannot fill this item: " .. why) end
  -- the gap in the source's own seconds
  local g0 = info.offset + (t0 - info.position) * info.rate
  local g1 = info.offset + (t1 - info.position) * info.rate
  if g0 < 0 or g1 > info.source_length then lib.fail("The time selection goes past the end of the item's source file.") end
  local folder = lib.project_folder()
  local values = lib.ask("audiohost: fill gap", { "Prompt or preset (empty: the project's)" }, { lib.recall("fill_what", "") })
  if not values then return end
  local what = (values[1] or ""):match("^%s*(.-)%s*$")
  lib.remember("fill_what", what)
  local args = { "inpaint", folder, info.file, lib.fmt(g0), lib.fmt(g1) }
  if what ~= "" then args[#args + 1] = what end
  lib.request(folder, args, "audiohost: fill gap", "gap", function(result)
    if not lib.item_alive(item) then lib.fail("The item was deleted meanwhile; the filled file is " .. result.paths[1]) end
    lib.begin_edit()
    local first
    for _, path in ipairs(result.paths) do
      -- the filled file is the source again, same length and rate: same offset, same playrate
      local take = lib.add_take(item, path, info.offset, info.rate, "fill: " .. (what ~= "" and what or "gap"))
      first = first or take
    end
    if first then reaper.SetActiveTake(first) end
    lib.finish_edit("audiohost: fill gap")
  end)
end

lib.guard(main)
