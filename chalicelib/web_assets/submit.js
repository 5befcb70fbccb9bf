// Submit Job: every `float submit` option as a form field. The equivalent command line is
// shown as the form changes; what the form sends is what that line would send, because both
// are built from the same table below (and the CLI sends the option texts as typed).
import { allPages, api } from "./api.js";
import { field, h, replace, uid } from "./dom.js";
import { act, go, say } from "./ui.js";

// key: the API field; flag: float submit's; kind: how the value is typed and sent.
//   text: one value; lines: one value per line, the flag repeated; pairs: K=V (or k:v) per
//   line, sent as an object; number: a whole number; check: a flag without a value;
//   script: a text whose file the command line names.
const OPTIONS = [
  { group: "Job", key: "image", flag: "-i", label: "Image", kind: "text", required: true,
    hint: "an App Library name or an image URI" },
  { group: "Job", key: "jobScript", flag: "-j", label: "Job script", kind: "script", file: "job.sh", required: true },
  { group: "Job", key: "name", flag: "-n", label: "Job name", kind: "text" },
  { group: "Job", key: "cpu", flag: "-c", label: "vCPUs", kind: "text", hint: "N or MIN:MAX (default 2)" },
  { group: "Job", key: "mem", flag: "-m", label: "Memory (GB)", kind: "text", hint: "N or MIN:MAX (default 4)" },
  { group: "Job", key: "instType", flag: "--instType", label: "Instance type", kind: "text", hint: "e.g. c5.2xlarge, instead of vCPUs and memory" },
  { group: "Job", key: "env", flag: "-e", label: "Environment", kind: "pairs", separator: "=", hint: "one NAME=value a line" },
  { group: "Job", key: "customTags", flag: "--customTag", label: "Custom tags", kind: "pairs", separator: ":", hint: "one key:value a line" },
  { group: "Job", key: "timeLimit", flag: "--timeLimit", label: "Time limit", kind: "text", hint: "3600, 90s, 30m or 2h: past it the job ends Timedout" },
  { group: "Policies", key: "vmPolicy", flag: "--vmPolicy", label: "VM policy", kind: "text",
    hint: "[spotFirst=true], [spotOnly=true], [onDemand=true], [spotFirst=true,retryLimit=3,retryInterval=600s]",
    presets: ["[spotFirst=true]", "[spotOnly=true]", "[onDemand=true]", "[spotFirst=true,retryLimit=3,retryInterval=600s]"] },
  { group: "Policies", key: "migratePolicy", flag: "--migratePolicy", label: "Migrate policy (WaveRider)", kind: "text",
    hint: "[evadeOOM=true], [cpu.upperBoundRatio=80,cpu.upperBoundDuration=10s], [mem.upperBoundRatio=80,mem.step=8]",
    presets: ["[evadeOOM=true]", "[cpu.upperBoundRatio=80,cpu.upperBoundDuration=10s]", "[mem.upperBoundRatio=80]", "[enable=false]"] },
  { group: "Policies", key: "checkpointInterval", flag: "--checkpointInterval", label: "Checkpoint interval", kind: "text",
    hint: "600, 90s or 30m (at least 10s; 0: none): a reclaim without warning loses at most that much work" },
  { group: "Policies", key: "disableRerun", flag: "--disableRerun", label: "Never start again from the beginning (end CheckpointFailed instead)", kind: "check" },
  { group: "Policies", key: "disableMigrate", flag: "--disableMigrate", label: "Never checkpoint (a reclaim reruns the job)", kind: "check" },
  { group: "Storage", key: "dataVolumes", flag: "--dataVolume", label: "Data volumes", kind: "lines",
    hint: "one a line: [size=GB]:/mnt/x, [mode=r]s3://bucket/prefix:/mnt/x, nfs://server/export:/mnt/x" },
  { group: "Storage", key: "storage", flag: "--storage", label: "Registered storage", kind: "lines", hint: "one name a line (float storage register)" },
  { group: "Instance", key: "gpu", flag: "--gpu", label: "GPUs", kind: "number", min: 1, max: 16 },
  { group: "Instance", key: "zone", flag: "--zone", label: "Availability zone", kind: "text", hint: "e.g. us-east-1b" },
  { group: "Instance", key: "securityGroups", flag: "--securityGroup", label: "Security groups", kind: "lines", hint: "one sg-... a line" },
  { group: "Instance", key: "rootVolSize", flag: "--rootVolSize", label: "Root volume (GB)", kind: "number", min: 8 },
  { group: "Instance", key: "imageVolSize", flag: "--imageVolSize", label: "Image volume (GB)", kind: "number", min: 1 },
  { group: "Container", key: "privileged", flag: "--privileged", label: "Privileged", kind: "check" },
  { group: "Container", key: "withRoot", flag: "--withRoot", label: "Run as root", kind: "check" },
  { group: "Container", key: "containerOpts", flag: "--extraContainerOpts", label: "Extra podman run options", kind: "text", hint: "e.g. --cap-add SYS_ADMIN" },
  { group: "Container", key: "dirMaps", flag: "--dirMap", label: "Host directories", kind: "lines", hint: "one HOST:CONTAINER a line" },
  { group: "Container", key: "publish", flag: "--publish", label: "Published ports", kind: "lines", hint: "one HOST:CONTAINER[/tcp|/udp] a line" },
  { group: "Host scripts", key: "hostInit", flag: "--hostInit", label: "Host init script", kind: "script", file: "hostinit.sh",
    hint: "run as root on each host before the container starts or is restored there" },
  { group: "Host scripts", key: "hostTerminate", flag: "--hostTerminate", label: "Host terminate script", kind: "script", file: "hostterminate.sh",
    hint: "run as root on each host once the job has left it" },
];

class FormProblem extends Error {
  constructor(option, message) { super(message); this.option = option; }
}

// A word as a POSIX shell reads it back unchanged.
export function quote(word) {
  if (word !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'"'"'`)}'`;
}

function lines(text) {
  return text.split("\n").map((line) => line.trim()).filter((line) => line);
}

function pairs(option, text) {
  const found = {};
  for (const line of lines(text)) {
    const at = line.indexOf(option.separator);
    if (at < 0) throw new FormProblem(option, `${option.label}: ${JSON.stringify(line)} is not key${option.separator}value`);
    const key = line.slice(0, at);
    if (!key) throw new FormProblem(option, `${option.label}: a line has an empty key`);
    if (key in found) throw new FormProblem(option, `${option.label} gives ${key} twice`);
    found[key] = line.slice(at + 1);
  }
  return found;
}

// One option's value as the API takes it and as the command line's words, or null if unset.
function read(option, control) {
  if (option.kind === "check") {
    return control.input.checked ? { body: true, words: [option.flag] } : null;
  }
  const raw = control.input.value;
  if (option.kind === "script") {
    if (!raw) return null;
    const file = control.file.value.trim() || option.file;
    return { body: raw, words: [option.flag, file] };
  }
  if (option.kind === "lines") {
    const items = lines(raw);
    return items.length ? { body: items, words: items.flatMap((item) => [option.flag, item]) } : null;
  }
  if (option.kind === "pairs") {
    const found = pairs(option, raw);
    const words = Object.entries(found).flatMap(([key, value]) => [option.flag, `${key}${option.separator}${value}`]);
    return words.length ? { body: found, words } : null;
  }
  const text = raw.trim();
  if (!text) return null;
  if (option.kind === "number") {
    if (!/^\d+$/.test(text)) throw new FormProblem(option, `${option.label} must be a whole number, got ${JSON.stringify(text)}`);
    return { body: Number(text), words: [option.flag, text] };
  }
  return { body: text, words: [option.flag, text] };
}

// A word that starts with "-" is given with "=" so that no shell or parser takes it for a flag.
function flagWords(words) {
  const out = [];
  for (let index = 0; index < words.length; index += 2) {
    const [flag, value] = [words[index], words[index + 1]];
    if (value.startsWith("-")) {
      const long = { "-i": "--image", "-j": "--job", "-n": "--name", "-c": "--cpu", "-m": "--mem", "-e": "--env" }[flag] || flag;
      out.push(quote(`${long}=${value}`));
    } else {
      out.push(flag, quote(value));
    }
  }
  return out;
}

export function build(controls) {
  const body = {};
  const words = ["float", "submit"];
  const files = [];
  for (const option of OPTIONS) {
    const value = read(option, controls[option.key]);
    if (!value) continue;
    body[option.key] = value.body;
    if (option.kind === "check") words.push(option.flag);
    else words.push(...flagWords(value.words));
    if (option.kind === "script") files.push({ name: value.words[1], content: value.body, option });
  }
  return { body, command: words.join(" "), files };
}

function control(option, images) {
  const id = uid(option.key);
  if (option.kind === "check") {
    const input = h("input", { type: "checkbox", id, name: option.key });
    return { input, node: field(option.label, input, option.hint) };
  }
  if (option.kind === "script") {
    const input = h("textarea", { id, name: option.key, rows: option.key === "jobScript" ? 8 : 3,
      spellcheck: "false", required: option.required, placeholder: option.key === "jobScript" ? "#!/bin/sh\necho hello" : "" });
    const file = h("input", { name: `${option.key}File`, value: option.file, size: 16 });
    const upload = h("input", { type: "file", name: `${option.key}Upload` });
    upload.addEventListener("change", async () => {
      const chosen = upload.files[0];
      if (!chosen) return;
      input.value = await chosen.text();
      file.value = chosen.name;
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
    return { input, file, node: h("fieldset", { class: "script" },
      h("legend", {}, option.label),
      field("Script", input, option.hint),
      h("div", { class: "row" }, field("File name on the command line", file), field("Load from a file", upload))) };
  }
  const multi = option.kind === "lines" || option.kind === "pairs";
  const attrs = { id, name: option.key, required: option.required, spellcheck: "false" };
  let input;
  if (multi) input = h("textarea", { ...attrs, rows: 2 });
  else if (option.kind === "number") input = h("input", { ...attrs, type: "number", min: option.min, max: option.max, inputmode: "numeric" });
  else input = h("input", { ...attrs, autocomplete: "off" });
  const choices = option.key === "image" ? images : option.presets;
  let list = null;
  if (choices && choices.length) {
    list = h("datalist", { id: `${id}-list` }, choices.map((choice) => h("option", { value: choice })));
    input.setAttribute("list", list.id);
  }
  return { input, node: h("div", {}, field(option.label, input, option.hint), list) };
}

export async function submitPage(main) {
  const images = (await allPages("v1/images").catch(() => [])).map((image) => image.name);
  const controls = {};
  const groups = new Map();
  for (const option of OPTIONS) {
    const made = control(option, images);
    controls[option.key] = made;
    if (!groups.has(option.group)) groups.set(option.group, []);
    groups.get(option.group).push(made.node);
  }
  const command = h("output", { id: "command", class: "command", "aria-live": "polite" });
  const problem = h("p", { class: "hint", id: "command-problem" });
  const copy = h("button", { type: "button", class: "secondary" }, "Copy");
  const saveNote = h("p", { class: "hint", id: "command-files" });
  const submit = h("button", { type: "submit" }, "Submit");
  const form = h("form", { class: "submit", "aria-labelledby": "submit-title", novalidate: true },
    h("h1", { id: "submit-title" }, "Submit Job"),
    [...groups].map(([name, nodes], index) => index === 0
      ? h("fieldset", { class: "group" }, h("legend", {}, name), h("div", { class: "grid" }, nodes))
      : h("details", { class: "group" }, h("summary", {}, name), h("div", { class: "grid" }, nodes))),
    h("section", { class: "card", "aria-labelledby": "command-title" },
      h("h2", { id: "command-title" }, "The same job with the float CLI"),
      h("div", { class: "command-row" }, command, copy), saveNote, problem),
    h("div", { class: "actions" }, submit));

  let built = null;
  const refresh = () => {
    for (const made of Object.values(controls)) made.input.removeAttribute("aria-invalid");
    try {
      built = build(controls);
      command.value = built.command;
      problem.textContent = "";
      saveNote.textContent = built.files.length
        ? `Save ${built.files.map((file) => `the ${file.option.label.toLowerCase()} as ${file.name}`).join(", ")} beside where you run it.`
        : "";
    } catch (error) {
      if (!(error instanceof FormProblem)) throw error;
      built = null;
      problem.textContent = error.message;
      controls[error.option.key].input.setAttribute("aria-invalid", "true");
    }
  };
  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(command.value);
      say("The command line is copied.");
    } catch (ignored) {
      const range = document.createRange();
      range.selectNodeContents(command);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      say("The command line is selected: copy it with Ctrl+C.");
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    refresh();
    if (!built) { say(problem.textContent, "error"); return; }
    for (const option of OPTIONS.filter((item) => item.required)) {
      if (!(option.key in built.body)) {
        say(`${option.label} is required`, "error");
        controls[option.key].input.setAttribute("aria-invalid", "true");
        controls[option.key].input.focus();
        return;
      }
    }
    await act(submit, async () => {
      try {
        const job = await api("POST", "v1/jobs", built.body);
        go(`/jobs/${job.id}`, `Job ${job.id} is submitted.`);
      } catch (error) {
        const named = error.field && controls[error.field.split(/[.[]/)[0]];
        if (named) {
          named.input.setAttribute("aria-invalid", "true");
          named.input.focus();
        }
        throw error;
      }
    });
  });
  replace(main, form);
  refresh();
  controls.image.input.focus();
}
