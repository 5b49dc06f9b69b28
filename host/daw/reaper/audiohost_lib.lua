-- audiohost for REAPER: the code every audiohost action shares.
--
-- The actions never talk OSC themselves. They run `audiohost request ...` (the command-line
-- client installed with audiohost) without waiting for it, and follow the JSON result file it
-- keeps current, from a reaper.defer loop: REAPER never freezes, a small window shows the
-- progress, and Esc (or closing that window) cancels by creating RESULT.cancel.
--
-- Installed by `audiohost daw install reaper`, which writes audiohost_config.lua beside this
-- file with the command that runs audiohost.

local M = {}

M.SECTION = "audiohost" -- SetExtState / SetProjExtState section
M.WINDOW = "audiohost"
M.START_SECONDS = 30 -- the client must write its result file within this long
M.QUIET_SECONDS = 30 -- ... and rewrite it at least this often while it runs
M.DAEMON_START_SECONDS = 180 -- a daemon this script started must answer within this long

local unpack = table.unpack or unpack

-- ------------------------------------------------------------------ errors
-- M.fail raises an error the actions turn into one message box; anything else that goes wrong
-- is shown the same way (never REAPER's Lua error dialog).
local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(self) return self.message end

function M.fail(message)
  error(setmetatable({ message = message }, Failure), 0)
end

function M.message_of(err)
  if getmetatable(err) == Failure then
    return err.message
  end
  return "audiohost script error: " .. tostring(err)
end

function M.show_error(message)
  reaper.ShowMessageBox(message, "audiohost", 0)
end

-- Run fn(...) and show whatever it raises as one message box. Returns true if it ran through.
function M.guard(fn, ...)
  local args = { ... }
  local ok, err = xpcall(function() return fn(unpack(args)) end, function(e)
    if getmetatable(e) == Failure then return e end
    return (debug and debug.traceback and debug.traceback(tostring(e), 2)) or tostring(e)
  end)
  if not ok then
    M.show_error(M.message_of(err))
  end
  return ok
end

-- ------------------------------------------------------------------ files and paths
function M.is_windows()
  return reaper.GetOS():match("^Win") ~= nil
end

function M.sep()
  return M.is_windows() and "\\" or "/"
end

function M.dirname(path)
  return path:match("^(.*)[/\\][^/\\]*$") or ""
end

function M.join(a, b)
  if a:sub(-1) == "/" or a:sub(-1) == "\\" then return a .. b end
  return a .. M.sep() .. b
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

function M.write_file(path, text)
  local f, err = io.open(path, "wb")
  if not f then M.fail("cannot write " .. path .. ": " .. tostring(err)) end
  f:write(text)
  f:close()
end

-- the folder this file is in (where the installer put the scripts and the config)
M.dir = M.dirname((debug.getinfo(1, "S").source or ""):gsub("^@", ""))

function M.config()
  if M._config then return M._config end
  local path = M.join(M.dir, "audiohost_config.lua")
  local ok, config = pcall(dofile, path)
  if not ok or type(config) ~= "table" or type(config.command) ~= "table" then
    M.fail("audiohost is not set up for REAPER (" .. path .. " is missing or broken).\n\n"
      .. "Run this in a terminal, then try again:\n    audiohost daw install reaper")
  end
  config.host = config.host or "127.0.0.1"
  config.port = config.port or 9010
  M._config = config
  return config
end

-- ------------------------------------------------------------------ JSON (what the client writes)
local function decode_error(text, pos, what)
  error("bad JSON at " .. pos .. ": " .. what, 0)
end

local function skip(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local function utf8_char(code)
  return utf8 and utf8.char(code) or string.char(code % 256)
end

local decode_value

local function decode_string(text, pos)
  local out, i = {}, pos + 1
  while true do
    local c = text:sub(i, i)
    if c == "" then decode_error(text, i, "unterminated string") end
    if c == '"' then return table.concat(out), i + 1 end
    if c == "\\" then
      local e = text:sub(i + 1, i + 1)
      local simple = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
      if simple[e] then
        out[#out + 1] = simple[e]
        i = i + 2
      elseif e == "u" then
        local code = tonumber(text:sub(i + 2, i + 5), 16)
        if not code then decode_error(text, i, "bad \\u escape") end
        i = i + 6
        if code >= 0xD800 and code <= 0xDBFF and text:sub(i, i + 1) == "\\u" then
          local low = tonumber(text:sub(i + 2, i + 5), 16)
          if low and low >= 0xDC00 and low <= 0xDFFF then
            code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
            i = i + 6
          end
        end
        out[#out + 1] = utf8_char(code)
      else
        decode_error(text, i, "bad escape")
      end
    else
      local j = text:find('["\\]', i)
      if not j then decode_error(text, i, "unterminated string") end
      out[#out + 1] = text:sub(i, j - 1)
      i = j
    end
  end
end

decode_value = function(text, pos)
  pos = skip(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then
    local obj = {}
    pos = skip(text, pos + 1)
    if text:sub(pos, pos) == "}" then return obj, pos + 1 end
    while true do
      if text:sub(pos, pos) ~= '"' then decode_error(text, pos, "expected a key") end
      local key
      key, pos = decode_string(text, pos)
      pos = skip(text, pos)
      if text:sub(pos, pos) ~= ":" then decode_error(text, pos, "expected ':'") end
      obj[key], pos = decode_value(text, pos + 1)
      pos = skip(text, pos)
      local d = text:sub(pos, pos)
      if d == "}" then return obj, pos + 1 end
      if d ~= "," then decode_error(text, pos, "expected ',' or '}'") end
      pos = skip(text, pos + 1)
    end
  elseif c == "[" then
    local arr = {}
    pos = skip(text, pos + 1)
    if text:sub(pos, pos) == "]" then return arr, pos + 1 end
    while true do
      local value
      value, pos = decode_value(text, pos)
      arr[#arr + 1] = value
      pos = skip(text, pos)
      local d = text:sub(pos, pos)
      if d == "]" then return arr, pos + 1 end
      if d ~= "," then decode_error(text, pos, "expected ',' or ']'") end
      pos = pos + 1
    end
  elseif c == '"' then
    return decode_string(text, pos)
  elseif text:sub(pos, pos + 3) == "true" then
    return true, pos + 4
  elseif text:sub(pos, pos + 4) == "false" then
    return false, pos + 5
  elseif text:sub(pos, pos + 3) == "null" then
    return nil, pos + 4
  else
    local num = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if not num or num == "" or not tonumber(num) then decode_error(text, pos, "unexpected character") end
    return tonumber(num), pos + #num
  end
end

function M.json_decode(text)
  local value, pos = decode_value(text, 1)
  if skip(text, pos) <= #text then decode_error(text, pos, "trailing characters") end
  return value
end

-- ------------------------------------------------------------------ the audiohost project
-- The audiohost project a REAPER project uses: the folder set with "audiohost: set project
-- folder" (kept in the .rpp), else audiohost/ beside the saved .rpp.
function M.session_folder()
  local _, rpp = reaper.EnumProjects(-1)
  if not rpp or rpp == "" then return nil end
  return M.dirname(rpp)
end

function M.project_folder()
  local _, chosen = reaper.GetProjExtState(0, M.SECTION, "project")
  if chosen and chosen ~= "" then return chosen end
  local session = M.session_folder()
  if not session then
    M.fail("Save the REAPER project first: audiohost keeps its renders in audiohost/ beside the .rpp.\n\n"
      .. "(Or choose a folder with the action \"audiohost: set project folder\".)")
  end
  return M.join(session, "audiohost")
end

-- ------------------------------------------------------------------ running the client
local function quote(arg)
  if M.is_windows() then
    return '"' .. arg:gsub('"', '\\"') .. '"'
  end
  return '"' .. arg:gsub('(["\\$`])', "\\%1") .. '"'
end

function M.run_dir()
  local dir = M.join(M.dir, "run")
  reaper.RecursiveCreateDirectory(dir, 0)
  return dir
end

M._count = 0

-- Start `audiohost <args...>` without waiting. The arguments travel in a file, one per line,
-- so no prompt ever meets a shell's quoting. Returns a task to follow with M.follow.
function M.launch(args, label)
  local config = M.config()
  M._count = M._count + 1
  local id = string.format("%d-%d-%d", os.time(), math.random(100000, 999999), M._count)
  local dir = M.run_dir()
  local argfile = M.join(dir, "req-" .. id .. ".args")
  local result = M.join(dir, "req-" .. id .. ".json")
  local lines = {}
  for _, a in ipairs(args) do
    a = tostring(a)
    if a:find("[\r\n]") then M.fail("a value cannot span lines: " .. a) end
    lines[#lines + 1] = a
  end
  if args[1] == "request" then
    for _, a in ipairs({ "--result", result, "--host", config.host, "--port", tostring(config.port), "--tag", "reaper" }) do
      lines[#lines + 1] = a
    end
  end
  M.write_file(argfile, table.concat(lines, "\n") .. "\n")
  local parts = {}
  for _, c in ipairs(config.command) do parts[#parts + 1] = quote(c) end
  parts[#parts + 1] = quote("@" .. argfile)
  local cmd = table.concat(parts, " ")
  reaper.ExecProcess(cmd, M.is_windows() and -2 or -1)
  return { id = id, args = args, argfile = argfile, result = result, command = cmd, label = label or args[2],
    started = reaper.time_precise(), data = nil }
end

-- The task's latest result (nil until the client has written one).
function M.poll(task)
  local text = M.read_file(task.result)
  if not text or text == "" then return task.data end
  local ok, data = pcall(M.json_decode, text)
  if ok and type(data) == "table" then
    task.data = data
    task.seen = reaper.time_precise()
  end
  return task.data
end

function M.finished(task)
  return task.data ~= nil and task.data.final == true
end

function M.cancel(task)
  if not M.finished(task) then
    M.write_file(task.result .. ".cancel", "cancel\n")
  end
end

function M.cleanup(task)
  os.remove(task.argfile)
  os.remove(task.result)
  os.remove(task.result .. ".cancel")
end

-- A task whose client never wrote its file, or stopped writing it, gets a final error.
local function check_alive(task, now)
  if M.finished(task) then return end
  if task.data == nil and now - task.started > M.START_SECONDS then
    task.data = { final = true, state = "failed", error = "audiohost did not start (" .. task.command .. ").\n\n"
      .. "Run `audiohost daw install reaper` again from the Python environment audiohost lives in." }
  elseif task.data ~= nil and now - (task.seen or now) > M.QUIET_SECONDS then
    task.data = { final = true, state = "failed", error = "the audiohost client stopped answering" }
  end
end

-- ------------------------------------------------------------------ the progress window
local window = { open = false, closed = false }

local function draw(title, fraction, status)
  if not window.open then
    gfx.init(M.WINDOW, 460, 92)
    window.open, window.closed = true, false
  end
  gfx.set(0.16, 0.16, 0.16)
  gfx.rect(0, 0, gfx.w, gfx.h, 1)
  gfx.set(0.92, 0.92, 0.92)
  gfx.x, gfx.y = 12, 10
  gfx.drawstr(title)
  gfx.set(0.3, 0.3, 0.3)
  gfx.rect(12, 36, 436, 14, 1)
  gfx.set(0.35, 0.72, 0.45)
  gfx.rect(12, 36, math.floor(436 * math.max(0, math.min(1, fraction or 0))), 14, 1)
  gfx.set(0.75, 0.75, 0.75)
  gfx.x, gfx.y = 12, 62
  gfx.drawstr((status or "") .. "   (Esc cancels)")
  gfx.update()
  local key = gfx.getchar()
  if key == 27 then return "cancel" end
  if key < 0 then
    window.open, window.closed = false, true
    return "cancel"
  end
  return nil
end

local function close_window()
  if window.open then gfx.quit() end
  window.open = false
end

local function describe(task)
  local d = task.data
  if d == nil then return "starting audiohost", 0 end
  local state = d.state or "queued"
  if state == "running" then
    return string.format("%s: rendering %d%%", task.label or "", math.floor((d.progress or 0) * 100 + 0.5)), d.progress or 0
  end
  return string.format("%s: %s", task.label or "", state), d.progress or 0
end

-- Follow tasks from a reaper.defer loop until each has ended, then call on_done(tasks).
-- opts.title: the window's headline; opts.next(): another task to start when one ends
-- (for one-at-a-time work), or nil.
function M.follow(tasks, title, on_done, opts)
  opts = opts or {}
  local cancelled = false
  local function step()
    local now = reaper.time_precise()
    local open, fraction, status = 0, 0, nil
    for _, task in ipairs(tasks) do
      M.poll(task)
      check_alive(task, now)
      local text, f = describe(task)
      fraction = fraction + f
      if not M.finished(task) then
        open = open + 1
        status = status or text
      end
    end
    if open == 0 and opts.next and not cancelled then
      local more = opts.next()
      if more then
        tasks[#tasks + 1] = more
        open = 1
      end
    end
    if open == 0 then
      close_window()
      for _, task in ipairs(tasks) do M.cleanup(task) end
      on_done(tasks, cancelled)
      return
    end
    local wish = (not window.closed) and draw(title, fraction / #tasks, (cancelled and "cancelling... " or "") .. (status or "")) or nil
    if wish == "cancel" and not cancelled then
      cancelled = true
      for _, task in ipairs(tasks) do M.cancel(task) end
    end
    reaper.defer(function() M.guard(step) end)
  end
  reaper.defer(function() M.guard(step) end)
end

-- ------------------------------------------------------------------ a daemon to talk to
-- Make sure a daemon answers, offering to start one for this project if none does; then call
-- then_fn(). Every wait is a defer loop.
function M.with_daemon(folder, then_fn)
  local ping = M.launch({ "request", "ping", "--timeout", "3" }, "audiohost")
  M.follow({ ping }, "audiohost: looking for the daemon", function(tasks, cancelled)
    if cancelled then return end
    local d = tasks[1].data or {}
    if d.state == "done" then return then_fn() end
    if d.state ~= "no-daemon" then
      M.fail(d.error or "audiohost did not answer")
    end
    local config = M.config()
    local answer = reaper.ShowMessageBox(
      "No audiohost daemon answers on " .. config.host .. ":" .. config.port .. ".\n\n"
        .. "Start one now for this project (" .. folder .. ")?\n"
        .. "It keeps running in the background; its log is in audiohost's state folder.",
      "audiohost", 4)
    if answer ~= 6 then return end
    M.start_daemon(folder)
    M.wait_for_daemon(reaper.time_precise(), then_fn)
  end)
end

function M.start_daemon(folder)
  reaper.RecursiveCreateDirectory(folder, 0)
  local args = { "daw", "start", "--project", folder }
  local session = M.session_folder()
  if session then
    args[#args + 1] = "--root" -- stems beside the .rpp may be restyled and filled
    args[#args + 1] = session
  end
  local config = M.config()
  args[#args + 1] = "--osc-port"
  args[#args + 1] = tostring(config.port)
  local task = M.launch(args, "start")
  M.cleanup_later = M.cleanup_later or {}
  M.cleanup_later[#M.cleanup_later + 1] = task
end

function M.wait_for_daemon(since, then_fn)
  local ping = M.launch({ "request", "ping", "--timeout", "2" }, "audiohost")
  M.follow({ ping }, "audiohost: starting the daemon", function(tasks, cancelled)
    if cancelled then return end
    if (tasks[1].data or {}).state == "done" then
      for _, t in ipairs(M.cleanup_later or {}) do os.remove(t.argfile) end
      return then_fn()
    end
    if reaper.time_precise() - since > M.DAEMON_START_SECONDS then
      M.fail("The audiohost daemon did not start. Its log is in audiohost's state folder "
        .. "(audiohost.log and serve-output.log in ~/.local/state/audiohost by default).")
    end
    M.wait_for_daemon(since, then_fn)
  end)
end

-- One request, from the daemon check to the end: on_result(data) with the client's final
-- result when it is done; a refusal, a failure or no daemon become one message box.
function M.request(folder, args, title, label, on_result)
  reaper.RecursiveCreateDirectory(folder, 0) -- the daemon serves it (inside its roots) from then on
  M.with_daemon(folder, function()
    local full = { "request", args[1], "--wait", "--serve", "--timeout", "10" }
    for i = 2, #args do full[#full + 1] = args[i] end
    local task = M.launch(full, label)
    M.follow({ task }, title, function(tasks, cancelled)
      local d = tasks[1].data or {}
      if d.state == "done" and not d.error then return on_result(d) end
      if d.state == "cancelled" or cancelled then return end
      M.fail(M.explain(d))
    end)
  end)
end

-- One readable sentence for a result that is not a success.
function M.explain(d)
  local text = d.error or ("the request ended " .. tostring(d.state))
  if d.state == "refused" and text:find("outside the project roots", 1, true) then
    text = text .. "\n\nThe running daemon may only read files inside its projects and roots. "
      .. "Add this session's folder to `roots` in its config file (or stop it and let this script start one)."
  elseif d.state == "refused" and text:find("no roots to create projects", 1, true) then
    text = text .. "\n\nStart the daemon with --root <your sessions folder>, or stop it and let this script start one."
  end
  return "audiohost: " .. text
end

-- ------------------------------------------------------------------ remembered inputs
function M.recall(key, default)
  local value = reaper.GetExtState(M.SECTION, key)
  if value == nil or value == "" then return default end
  return value
end

function M.remember(key, value)
  reaper.SetExtState(M.SECTION, key, tostring(value), true)
end

-- GetUserInputs with one field per line (a prompt may contain commas).
function M.ask(title, captions, defaults)
  local sep = "\n"
  local ok, csv = reaper.GetUserInputs(title, #captions, table.concat(captions, ",") .. ",separator=" .. sep .. ",extrawidth=260",
    table.concat(defaults, sep))
  if not ok then return nil end
  local values = {}
  for v in (csv .. sep):gmatch("(.-)" .. sep) do values[#values + 1] = v end
  return values
end

function M.number(text, name, low, high)
  local n = tonumber(text)
  if not n or n ~= n or n < low or n > high then
    M.fail(string.format("%s must be a number from %g to %g, not '%s'", name, low, high, tostring(text)))
  end
  return n
end

function M.fmt(x)
  return string.format("%.9f", x)
end

-- ------------------------------------------------------------------ items and takes
-- The audio file a take plays and how the item maps onto it.
function M.take_source(item)
  local take = reaper.GetActiveTake(item)
  if not take or reaper.TakeIsMIDI(take) then return nil, "not an audio item" end
  local source = reaper.GetMediaItemTake_Source(take)
  local file = source and reaper.GetMediaSourceFileName(source, "") or ""
  if file == "" then return nil, "its take does not play a plain audio file (a section or a reversed source?)" end
  local length = reaper.GetMediaSourceLength(source)
  return {
    take = take,
    file = file,
    offset = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS"),
    rate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE"),
    position = reaper.GetMediaItemInfo_Value(item, "D_POSITION"),
    length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH"),
    source_length = length,
  }
end

-- A new take on item playing file, its time 0 at item time `start_offset` of the source.
function M.add_take(item, file, start_offset, rate, name)
  local take = reaper.AddTakeToMediaItem(item)
  local source = reaper.PCM_Source_CreateFromFile(file)
  if not source then M.fail("REAPER cannot open " .. file) end
  reaper.SetMediaItemTake_Source(take, source)
  reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", start_offset)
  reaper.SetMediaItemTakeInfo_Value(take, "D_PLAYRATE", rate or 1.0)
  if name then reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", name, true) end
  return take
end

function M.item_alive(item)
  return reaper.ValidatePtr2(0, item, "MediaItem*")
end

-- Every file the project's takes already play (to insert only what is new).
function M.files_in_project()
  local seen = {}
  for i = 0, reaper.CountMediaItems(0) - 1 do
    local item = reaper.GetMediaItem(0, i)
    for t = 0, reaper.CountTakes(item) - 1 do
      local take = reaper.GetTake(item, t)
      local source = take and reaper.GetMediaItemTake_Source(take)
      if source then seen[reaper.GetMediaSourceFileName(source, "")] = true end
    end
  end
  return seen
end

function M.track_named(name)
  for i = 0, reaper.CountTracks(0) - 1 do
    local track = reaper.GetTrack(0, i)
    local _, track_name = reaper.GetSetMediaTrackInfo_String(track, "P_NAME", "", false)
    if track_name == name then return track end
  end
  return nil
end

function M.finish_edit(description)
  reaper.Main_OnCommand(40047, 0) -- Peaks: build any missing peak files
  reaper.PreventUIRefresh(-1)
  reaper.UpdateArrange()
  reaper.Undo_EndBlock(description, -1)
end

function M.begin_edit()
  reaper.Undo_BeginBlock()
  reaper.PreventUIRefresh(1)
end

return M
