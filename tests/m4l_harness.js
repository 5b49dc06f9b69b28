// Runs the Max for Live device's js (host/daw/ableton/audiohost_device.js) in Node with the Max
// globals it uses (outlet, post, arrayfromargs, Task, LiveAPI) recorded instead of acted on.
// Usage: node m4l_harness.js DEVICE.js SCENARIO.json -> prints {"out": [...], "live": [...]}
// A scenario: {"live": {"version": [12, 0, 5], "track": "Track", "slots": [1, 0, 0]}, "steps": [["init"], ["__tick"], ...]}

const fs = require("fs");
const vm = require("vm");

const [, , deviceFile, scenarioFile] = process.argv;
const scenario = JSON.parse(fs.readFileSync(scenarioFile, "utf8"));
const model = scenario.live || { version: [12, 0, 5], track: "Track", slots: [0] };
const out = [];
const live = [];
const tasks = [];

class Task {
  constructor(fn, owner) { this.fn = fn; this.owner = owner; this.active = false; this.interval = 0; tasks.push(this); }
  repeat(n) { this.active = true; this.left = n; }
  schedule() { this.active = true; this.left = 1; }
  cancel() { this.active = false; }
}

class LiveAPI {
  constructor(callback, path) {
    this.path = path;
    this.id = "1";
    this.type = path === "this_device canonical_parent" ? model.track : (path.indexOf("clip_slots") >= 0 ? "ClipSlot" : "");
    if (path === "live_set view detail_clip") {
      this.id = model.clip ? "5" : "0";
    }
  }
  get(prop) {
    if (prop === "has_clip") {
      const i = Number(this.path.split(" ").pop());
      return [model.slots[i]];
    }
    if (prop === "is_audio_clip") return [model.clip ? 1 : 0];
    if (prop === "file_path") return [model.clip || ""];
    return [0];
  }
  getcount(prop) { return prop === "clip_slots" ? model.slots.length : 0; }
  call(name, ...args) {
    live.push([this.path, name, ...args]);
    if (name === "get_major_version") return model.version[0];
    if (name === "get_minor_version") return model.version[1];
    if (name === "get_bugfix_version") return model.version[2];
    if (name === "create_audio_clip") {
      const i = Number(this.path.split(" ").pop());
      if (model.slots[i]) throw new Error("slot is not empty");
      model.slots[i] = 1;
    }
    return 0;
  }
}

const context = {
  outlet: (n, ...args) => out.push([n, ...args.flat()]),
  post: () => {},
  arrayfromargs: (args) => Array.prototype.slice.call(args),
  Task,
  LiveAPI,
  Math: Object.assign(Object.create(Math), { random: () => 0.5 }),
};
vm.createContext(context);
vm.runInContext(fs.readFileSync(deviceFile, "utf8"), context, { filename: deviceFile });

for (const [name, ...args] of scenario.steps) {
  if (name === "__tick") {
    for (const t of tasks) if (t.active && t.left > 0) { t.left -= 1; t.fn.call(t.owner); }
    continue;
  }
  if (typeof context[name] !== "function") throw new Error("the device has no function " + name);
  context[name](...args);
}
process.stdout.write(JSON.stringify({ out, live, declared: { inlets: context.inlets, outlets: context.outlets } }));
