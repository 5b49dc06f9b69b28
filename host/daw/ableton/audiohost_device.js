// audiohost device for Ableton Live (Max for Live): the logic behind the panel.
//
// Talks OSC to the audiohost daemon through [udpsend 127.0.0.1 9010] (outlet 0) and hears it
// through its own [udpreceive] (outlet 1 moves it to a port of this device instance's own and
// /audiohost/replyport tells the daemon to answer there, so two devices never fight over one
// port, nor with a DAW on 9011). Replies come in through [route] as "<name> args...".
//
// Outlets: 0 OSC out, 1 udpreceive control, 2 preset menu, 3 project menu, 4 progress (0..1),
// 5 status line, 6 take paths.

autowatch = 0;
inlets = 1;
outlets = 7;

var OUT_OSC = 0, OUT_RECEIVE = 1, OUT_PRESETS = 2, OUT_PROJECTS = 3, OUT_PROGRESS = 4, OUT_STATUS = 5, OUT_PATHS = 6;

var state = {
    port: 0,
    connected: false,
    tries: 0,
    project: "",
    projects: [],
    presets: [],
    preset: "",
    prompt: "",
    mode: 0, // 0 foley, 1 restyle
    duration: 4.0,
    takes: 2,
    strength: 0.5,
    tag: "m4l" + Math.floor(Math.random() * 1e9),
    job: -1,
    busy: false
};

var retry = new Task(connect, this);

function status(text) {
    outlet(OUT_STATUS, "set", text);
}

function osc() {
    outlet(OUT_OSC, arrayfromargs(arguments));
}

// ------------------------------------------------------------------ connecting
function init() {
    state.tries = 0;
    state.connected = false;
    retry.interval = 1500;
    retry.repeat(8);
}

function connect() {
    if (state.connected) {
        retry.cancel();
        return;
    }
    state.tries += 1;
    // a new port each try: one another program holds never answers
    state.port = 20000 + Math.floor(Math.random() * 40000);
    outlet(OUT_RECEIVE, "port", state.port);
    osc("/audiohost/replyport", state.port);
    status(state.tries > 2 ? "looking for audiohost on 127.0.0.1:9010 (is `audiohost serve` running?)" : "connecting...");
}

function replyport(port) {
    if (port !== state.port) return;
    state.connected = true;
    retry.cancel();
    status("audiohost connected");
    refresh();
}

function refresh() {
    osc("/audiohost/projects", 0, state.tag);
}

function pong(version) {
    status("audiohost " + version);
}

// ------------------------------------------------------------------ menus
function projects() {
    var a = arrayfromargs(arguments);
    var page = a[0], pages = a[1];
    if (page === 0) state.projects = [];
    for (var i = 2; i + 1 < a.length - 1; i += 2) state.projects.push(String(a[i + 1]));
    if (page + 1 < pages) {
        osc("/audiohost/projects", page + 1, state.tag);
        return;
    }
    outlet(OUT_PROJECTS, "clear");
    for (var k = 0; k < state.projects.length; k++) outlet(OUT_PROJECTS, "append", state.projects[k]);
    if (state.projects.length === 0) {
        status("the daemon serves no project: start it with --project DIR");
        return;
    }
    if (state.projects.indexOf(state.project) < 0) state.project = state.projects[0];
    outlet(OUT_PROJECTS, "setsymbol", state.project);
    osc("/audiohost/presets", state.project, 0, state.tag);
}

function presets() {
    var a = arrayfromargs(arguments);
    var page = a[1], pages = a[2];
    if (page === 0) state.presets = [];
    for (var i = 3; i + 1 < a.length - 1; i += 2) state.presets.push({ name: String(a[i]), kind: String(a[i + 1]) });
    if (page + 1 < pages) {
        osc("/audiohost/presets", state.project, page + 1, state.tag);
        return;
    }
    fill_presets();
}

function fill_presets() {
    var kind = state.mode === 0 ? "foley" : "restyle";
    outlet(OUT_PRESETS, "clear");
    outlet(OUT_PRESETS, "append", "(prompt)");
    for (var i = 0; i < state.presets.length; i++) {
        if (state.presets[i].kind === kind) outlet(OUT_PRESETS, "append", state.presets[i].name);
    }
    state.preset = "";
}

// ------------------------------------------------------------------ controls
function project() {
    state.project = arrayfromargs(arguments).join(" ");
    osc("/audiohost/presets", state.project, 0, state.tag);
}

function preset() {
    var name = arrayfromargs(arguments).join(" ");
    state.preset = name === "(prompt)" ? "" : name;
}

function prompt() {
    var a = arrayfromargs(arguments);
    if (a.length && a[0] === "text") a.shift();
    state.prompt = a.join(" ");
}

function mode(v) {
    state.mode = v ? 1 : 0;
    fill_presets();
}

function duration(v) { state.duration = v; }
function takes(v) { state.takes = Math.max(1, Math.round(v)); }
function strength(v) { state.strength = v; }

function render() {
    if (!state.connected) {
        status("not connected to audiohost; start `audiohost serve` and reload the device");
        init();
        return;
    }
    if (state.busy) {
        status("still rendering job " + state.job + " (Cancel first)");
        return;
    }
    var what = state.preset || state.prompt;
    if (!what) {
        status("type a prompt or pick a preset");
        return;
    }
    state.tag = "m4l" + Math.floor(Math.random() * 1e9);
    state.job = -1;
    state.busy = true;
    outlet(OUT_PROGRESS, 0);
    outlet(OUT_PATHS, "set", "");
    if (state.mode === 0) {
        osc("/audiohost/foley", state.project, what, state.duration, -1, state.takes, state.tag);
    } else {
        var input = selected_clip_file();
        if (!input) {
            state.busy = false;
            status("restyle: select an audio clip in the session view first");
            return;
        }
        osc("/audiohost/restyle", state.project, input, what, state.strength, state.tag);
    }
    status("sent; waiting for the daemon");
}

function cancel() {
    if (state.job >= 0 && state.busy) {
        osc("/audiohost/cancel", state.job);
        status("cancelling job " + state.job);
    }
}

// ------------------------------------------------------------------ job events
function queued(id, tag) {
    if (tag !== state.tag) return;
    state.job = id;
    status("job " + id + " queued");
}

function progress(id, fraction) {
    if (id !== state.job) return;
    outlet(OUT_PROGRESS, fraction);
    status("job " + id + ": " + Math.round(fraction * 100) + "%");
}

function cancelling(id) {
    if (id === state.job) status("cancelling job " + id);
}

function done() {
    var a = arrayfromargs(arguments);
    var id = a[0];
    if (id !== state.job) return;
    var paths = a.slice(1, a.length - 1);
    state.busy = false;
    outlet(OUT_PROGRESS, 1);
    outlet(OUT_PATHS, "set", paths.join("\n"));
    if (paths.length === 0) {
        status("job " + id + " done, but no takes came back");
        return;
    }
    var where = load_into_clip_slot(paths[0]);
    status(where ? ("take 1 of " + paths.length + " is in " + where + "; all paths below") : ("done: " + paths.length + " takes; paths below (drag them in from the browser)"));
}

function failed(id, reason) {
    if (id !== state.job) return;
    state.busy = false;
    status("job " + id + " failed: " + reason);
}

function cancelled(id) {
    if (id !== state.job) return;
    state.busy = false;
    outlet(OUT_PROGRESS, 0);
    status("job " + id + " cancelled");
}

function daemonerror(address, reason) {
    if (state.busy && state.job < 0) state.busy = false; // the request itself was refused
    status(address + ": " + reason);
}

function serving(name, folder) {
    status("serving " + name);
}

// ------------------------------------------------------------------ the Live API
function live_version_at_least(major, minor, bugfix) {
    var app = new LiveAPI(null, "live_app");
    var v = [Number(app.call("get_major_version")), Number(app.call("get_minor_version")), Number(app.call("get_bugfix_version"))];
    var want = [major, minor, bugfix];
    for (var i = 0; i < 3; i++) {
        if (v[i] !== want[i]) return v[i] > want[i];
    }
    return true;
}

// The first take into the next empty clip slot of this device's track (Live 12.0.5 and later
// have ClipSlot.create_audio_clip). Returns where it went, or "" (older Live, no track, full).
function load_into_clip_slot(path) {
    try {
        if (!live_version_at_least(12, 0, 5)) return "";
        var track = new LiveAPI(null, "this_device canonical_parent");
        if (track.type !== "Track") return "";
        var count = track.getcount("clip_slots");
        for (var i = 0; i < count; i++) {
            var slot = new LiveAPI(null, "this_device canonical_parent clip_slots " + i);
            if (Number(slot.get("has_clip")) === 0) {
                slot.call("create_audio_clip", path);
                return "clip slot " + (i + 1);
            }
        }
    } catch (e) {
        post("audiohost: could not load the take: " + e + "\n");
    }
    return "";
}

function selected_clip_file() {
    try {
        var clip = new LiveAPI(null, "live_set view detail_clip");
        if (!clip.id || Number(clip.id) === 0) return "";
        if (Number(clip.get("is_audio_clip")) !== 1) return "";
        return String(clip.get("file_path"));
    } catch (e) {
        return "";
    }
}
