-- @description audiohost: restyle selected items
-- For each selected audio item, the part of its source the item plays (start offset and
-- length, at its playrate) is restyled with a prompt or preset and a strength; every take
-- comes back as a new take on that item, lined up with the original.

local lib = dofile((debug.getinfo(1, "S").source:gsub("^@", "")):match("^(.*[/\\])") .. "audiohost_lib.lua")

local function main()
  local count = reaper.CountSelectedMediaItems(0)
  if count == 0 then lib.fail("Select the audio items to restyle first.") end
  local folder = lib.project_folder()
  local values = lib.ask("audiohost: restyle selected items", { "Prompt or preset", "Strength 0-1 (empty: the preset's)" },
    { lib.recall("restyle_what", "restyle-texture"), lib.recall("restyle_strength", "") })
  if not values then return end
  local what = (values[1] or ""):match("^%s*(.-)%s*$")
  if what == "" then lib.fail("Give a prompt or a restyle preset name (restyle-texture).") end
  local strength = "-1"
  if values[2] and values[2]:match("%S") then strength = lib.fmt(lib.number(values[2], "Strength", 0, 1)) end
  lib.remember("restyle_what", what)
  lib.remember("restyle_strength", values[2] or "")

  -- what each item plays, read now: the user may go on editing while the daemon renders
  local work, skipped = {}, {}
  for i = 0, count - 1 do
    local item = reaper.GetSelectedMediaItem(0, i)
    local info, why = lib.take_source(item)
    if info then
      local start = math.max(0, info.offset)
      local stop = math.min(info.source_length, info.offset + info.length * info.rate)
      if stop - start > 0.01 then
        work[#work + 1] = { item = item, info = info, start = start, length = stop - start }
      else
        skipped[#skipped + 1] = string.format("item %d: it plays nothing of its source", i + 1)
      end
    else
      skipped[#skipped + 1] = string.format("item %d: %s", i + 1, why)
    end
  end
  if #work == 0 then lib.fail("Nothing to restyle:\n" .. table.concat(skipped, "\n")) end

  local function restyle(k)
    if k > #work then
      if #skipped > 0 then lib.show_error("audiohost skipped:\n" .. table.concat(skipped, "\n")) end
      return
    end
    local w = work[k]
    local label = string.format("item %d of %d", k, #work)
    lib.request(folder, { "restyle", folder, w.info.file, what, strength, "--region", lib.fmt(w.start), lib.fmt(w.length) },
      "audiohost: restyle " .. what, label, function(result)
        if not lib.item_alive(w.item) then
          skipped[#skipped + 1] = label .. ": the item was deleted meanwhile; its takes are in " .. table.concat(result.paths, ", ")
        else
          lib.begin_edit()
          local first
          for _, path in ipairs(result.paths) do
            -- the new file starts where the region starts: item time 0 is source time `offset`
            local take = lib.add_take(w.item, path, w.info.offset - w.start, w.info.rate, "restyle: " .. what)
            first = first or take
          end
          if first then reaper.SetActiveTake(first) end
          lib.finish_edit("audiohost: restyle " .. what)
        end
        restyle(k + 1)
      end)
  end
  restyle(1)
end

lib.guard(main)
