-- @description audiohost: render cue sheet
-- Renders the project's cues.toml and inserts what is new at the edit cursor: one track per cue
-- (named after it, reused when it exists), the cue's takes as takes of one item.

local lib = dofile((debug.getinfo(1, "S").source:gsub("^@", "")):match("^(.*[/\\])") .. "audiohost_lib.lua")

local function source_length(path)
  local source = reaper.PCM_Source_CreateFromFile(path)
  if not source then return nil end
  local length = reaper.GetMediaSourceLength(source)
  reaper.PCM_Source_Destroy(source)
  return length
end

local function main()
  local folder = lib.project_folder()
  local cursor = reaper.GetCursorPosition()
  lib.request(folder, { "render", folder }, "audiohost: cue sheet", "cues", function(result)
    local seen = lib.files_in_project()
    local inserted = 0
    lib.begin_edit()
    for _, job in ipairs(result.jobs or {}) do
      local new = {}
      for _, path in ipairs(job.paths or {}) do
        if not seen[path] then new[#new + 1] = path end
      end
      if #new > 0 then
        local track = lib.track_named(job.name)
        if not track then
          reaper.InsertTrackAtIndex(reaper.CountTracks(0), true)
          track = reaper.GetTrack(0, reaper.CountTracks(0) - 1)
          reaper.GetSetMediaTrackInfo_String(track, "P_NAME", job.name, true)
        end
        local item = reaper.AddMediaItemToTrack(track)
        reaper.SetMediaItemInfo_Value(item, "D_POSITION", cursor)
        reaper.SetMediaItemInfo_Value(item, "D_LENGTH", source_length(new[1]) or 1)
        for _, path in ipairs(new) do lib.add_take(item, path, 0, 1.0) end
        reaper.SetMediaItemInfo_Value(item, "I_CURTAKE", 0)
        inserted = inserted + 1
      end
    end
    lib.finish_edit("audiohost: cue sheet")
    if inserted == 0 then lib.show_error("audiohost: the cue sheet has nothing new (everything is already in this project).") end
  end)
end

lib.guard(main)
