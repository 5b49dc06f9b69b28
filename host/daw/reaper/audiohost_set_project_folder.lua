-- @description audiohost: set project folder
-- Chooses the audiohost project (a folder) this REAPER project uses; kept in the .rpp.
-- Empty means the default: audiohost/ beside the .rpp.

local lib = dofile((debug.getinfo(1, "S").source:gsub("^@", "")):match("^(.*[/\\])") .. "audiohost_lib.lua")

local function main()
  local _, current = reaper.GetProjExtState(0, lib.SECTION, "project")
  local values = lib.ask("audiohost: project folder", { "Folder (empty: audiohost/ beside the .rpp)" }, { current or "" })
  if not values then return end
  local folder = (values[1] or ""):match("^%s*(.-)%s*$")
  reaper.SetProjExtState(0, lib.SECTION, "project", folder)
  reaper.MarkProjectDirty(0)
  if folder == "" then
    reaper.ShowMessageBox("This project uses audiohost/ beside its .rpp.", "audiohost", 0)
  else
    reaper.ShowMessageBox("This project uses " .. folder .. ".", "audiohost", 0)
  end
end

lib.guard(main)
