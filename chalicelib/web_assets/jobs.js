// Jobs: the list (filters, pages, live status) and a job's own page (timeline, instances,
// migrations, CPU and memory graph, log, and the buttons that move or end it).
import { api, apiText, path, session } from "./api.js";
import { lineChart, legend } from "./chart.js";
import { bytes, field, h, replace, seconds, statusBadge, table, time, usd } from "./dom.js";
import { act, say } from "./ui.js";

export const STATUSES = ["Submitted", "Initializing", "Starting", "Executing", "Capturing", "Floating",
  "Suspending", "Suspended", "Resuming", "Completed", "Cancelling", "Cancelled", "FailToComplete",
  "FailToExecute", "CheckpointFailed", "Timedout", "NoAvailableHost", "WaitingForLicense", "Unknown"];
export const FINAL = ["Cancelled", "CheckpointFailed", "Completed", "FailToComplete", "FailToExecute",
  "NoAvailableHost", "Timedout"];
const ACTIVE = STATUSES.filter((status) => !FINAL.includes(status));
const LIST_SECONDS = 5;
const JOB_SECONDS = 3;
const LOG_SECONDS = 1.5;
const PAGE_SIZE = 25;

function range(value) {
  if (!value) return "?";
  return value.min === value.max ? String(value.min) : `${value.min}:${value.max}`;
}

export async function jobsPage(main, scope) {
  const admin = session.user.role === "admin";
  const status = h("select", { name: "status" },
    h("option", { value: "" }, "Any"),
    h("option", { value: ACTIVE.join(",") }, "Not finished"),
    h("option", { value: FINAL.join(",") }, "Finished"),
    STATUSES.map((name) => h("option", { value: name }, name)));
  const user = h("input", { name: "user", autocomplete: "off", placeholder: admin ? "everyone" : session.user.username });
  const name = h("input", { name: "name", autocomplete: "off" });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter jobs" },
    field("Status", status), admin ? field("User", user) : null, field("Job name", name),
    h("button", { type: "submit" }, "Filter"));
  const results = h("div", { id: "jobs-table" });
  const previous = h("button", { type: "button", class: "secondary" }, "Previous page");
  const next = h("button", { type: "button", class: "secondary" }, "Next page");
  const where = h("span", { class: "muted" });
  replace(main, h("h1", {}, "Jobs"), filters, results,
    h("nav", { class: "pager", "aria-label": "Pages of jobs" }, previous, where, next));

  const tokens = [undefined];
  let page = 0;
  let nextToken = null;
  const load = async () => {
    const listed = await api("GET", "v1/jobs", undefined, {
      status: status.value, user: admin ? user.value.trim() : "", name: name.value.trim(),
      limit: PAGE_SIZE, nextToken: tokens[page],
    });
    nextToken = listed.nextToken || null;
    previous.disabled = page === 0;
    next.disabled = !nextToken;
    where.textContent = `Page ${page + 1}`;
    replace(results, table("Jobs, newest first", ["Job", "Name", "User", "Status", "Submitted", "vCPUs", "Memory", "Instance type"],
      listed.items.map((job) => [
        h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.id), job.name || "", job.user,
        statusBadge(job.status), time(job.submitTime), range(job.cpu), `${range(job.mem)} GB`,
        job.instanceType || job.instType || ""]), "No jobs match."));
  };
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    tokens.length = 1;
    page = 0;
    act(null, load);
  });
  previous.addEventListener("click", () => { page = Math.max(0, page - 1); act(previous, load); });
  next.addEventListener("click", () => {
    if (!nextToken) return;
    tokens[page + 1] = nextToken;
    page += 1;
    act(next, load);
  });
  scope.every(LIST_SECONDS * 1000, load);
}

function instancesOf(job, samples) {
  const seen = new Map();
  for (const entry of job.history) {
    if (!entry.instance) continue;
    const known = seen.get(entry.instance) || { id: entry.instance, first: entry.time, type: "", zone: "" };
    known.last = entry.time;
    seen.set(entry.instance, known);
  }
  for (const move of job.migrations) {
    const known = seen.get(move.toInstance);
    if (known) { known.type = move.instanceType || ""; known.zone = move.zone || ""; }
  }
  for (const sample of samples) {
    const known = seen.get(sample.instanceId);
    if (known && !known.type) known.type = sample.instanceType || "";
  }
  const current = seen.get(job.instanceId);
  if (current) { current.type = job.instanceType || current.type; current.zone = job.instanceZone || current.zone; }
  return [...seen.values()];
}

function facts(job) {
  const rows = [
    ["Status", statusBadge(job.status)], ["User", job.user], ["Image", job.image],
    ["vCPUs", range(job.cpu)], ["Memory", `${range(job.mem)} GB`],
    ["Instance", job.instanceId ? `${job.instanceId} (${job.instanceType || "?"}, ${job.instanceZone || "?"})` : "none now"],
    ["Submitted", time(job.submitTime)], ["Exit code", job.rc ?? ""],
    ["Cost", usd(job.cost)],
  ];
  if (job.savings) {
    rows.push(["On-demand equivalent", usd(job.savings.onDemandCost)]);
    const share = job.savings.savingsPercent === null ? "" : ` (${job.savings.savingsPercent}%)`;
    rows.push(["Saved", `${usd(job.savings.savings)}${share}`]);
  }
  if (job.utilization) rows.push(["Utilization", summary(job.utilization)]);
  return h("dl", { class: "facts" }, rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

const percent = (ratio) => `${Math.round(ratio * 100)}%`;

function summary(use) {
  const parts = [`CPU ${percent(use.cpuRatio)} of ${use.vcpus} vCPUs (demand ${percent(use.cpuDemandRatio)})`,
    `memory ${bytes(use.memoryBytes)} of ${bytes(use.memoryLimitBytes)} (${percent(use.memoryRatio)}), peak ${bytes(use.memoryPeakBytes)}`];
  if (use.swapBytes) parts.push(`swap ${bytes(use.swapBytes)}`);
  return `${parts.join("; ")} at ${time(use.time)}`;
}

function migrationsTable(job) {
  return table("Moves from one instance to another", ["Time", "Why", "From", "To", "Type", "Zone", "Image", "Freeze",
    "Checkpoint", "Upload", "Launch", "Download", "Restore", "To Executing"],
  job.migrations.map((move) => [time(move.time), move.cause || move.reason, move.fromInstance || "", move.toInstance,
    move.instanceType || "", move.zone || "", bytes(move.imageBytes), seconds(move.freezeSeconds),
    seconds(move.checkpointSeconds), seconds(move.uploadSeconds), seconds(move.launchSeconds),
    seconds(move.downloadSeconds), seconds(move.restoreSeconds),
    move.rerun ? "started again" : seconds(move.secondsToExecuting)]), "The job has not moved.");
}

function graph(samples) {
  const ordered = [...samples].reverse();
  const point = (sample, value, what) => ({ t: new Date(sample.time), v: value,
    label: `${time(sample.time)}: ${what} on ${sample.instanceType || sample.instanceId}` });
  return h("div", { class: "graph" },
    lineChart("CPU and memory use over time", [
      { name: "cpu", cls: "cpu", points: ordered.map((s) => point(s, s.cpuRatio, `CPU ${percent(s.cpuRatio)} of ${s.vcpus} vCPUs`)) },
      { name: "memory", cls: "mem", points: ordered.map((s) => point(s, s.memoryRatio, `memory ${percent(s.memoryRatio)} (${bytes(s.memoryBytes)} of ${bytes(s.memoryLimitBytes)})`)) },
    ]),
    legend([["cpu", "CPU, of the instance's vCPUs"], ["mem", "memory, of the instance's"]]));
}

function actionsFor(job, refresh) {
  const id = job.id;
  const post = (button, verb, body, said) => act(button, async () => {
    await api("POST", path(`v1/jobs/{}/${verb}`, id), body);
    say(said);
    await refresh();
  });
  const box = h("div", { class: "actions", role: "group", "aria-label": "Job actions" });
  if (job.status === "Executing") {
    const migrate = h("button", { type: "button" }, "Migrate…");
    const suspend = h("button", { type: "button", class: "secondary" }, "Suspend");
    migrate.addEventListener("click", () => box.after(migrateForm(job, refresh, post)));
    suspend.addEventListener("click", () => post(suspend, "suspend", {}, `Job ${id} is being suspended.`));
    box.append(migrate, suspend);
  }
  if (job.status === "Suspended") {
    const resume = h("button", { type: "button" }, "Resume");
    resume.addEventListener("click", () => post(resume, "resume", {}, `Job ${id} is resuming.`));
    box.append(resume);
  }
  if (!FINAL.includes(job.status) && job.status !== "Cancelling") {
    const cancel = h("button", { type: "button", class: "danger" }, "Cancel job");
    cancel.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "danger" }, `Yes, cancel ${id}`);
      const no = h("button", { type: "button", class: "secondary" }, "No");
      const ask = h("p", { class: "confirm", role: "alertdialog", "aria-label": "Cancel the job?" },
        `Cancel job ${id}? Its work is lost. `, yes, " ", no);
      yes.addEventListener("click", () => post(yes, "cancel", {}, `Job ${id} is being cancelled.`).then(() => ask.remove()));
      no.addEventListener("click", () => { ask.remove(); cancel.focus(); });
      box.after(ask);
      no.focus();
    });
    box.append(cancel);
  }
  return box;
}

function migrateForm(job, refresh, post) {
  document.getElementById("migrate-form")?.remove();
  const target = h("select", { name: "target" },
    h("option", { value: "same" }, "The same sizes again"),
    h("option", { value: "type" }, "An instance type"),
    h("option", { value: "ranges" }, "vCPU and memory ranges"));
  const instType = h("input", { name: "instType", autocomplete: "off", placeholder: "e.g. c5.2xlarge" });
  const cpu = h("input", { name: "cpu", autocomplete: "off", value: range(job.cpu) });
  const mem = h("input", { name: "mem", autocomplete: "off", value: range(job.mem) });
  const force = h("input", { type: "checkbox", name: "force" });
  const reason = h("input", { name: "reason", autocomplete: "off" });
  const typeRow = field("Instance type", instType);
  const rangeRow = h("div", { class: "row" }, field("vCPUs (N or MIN:MAX)", cpu), field("Memory in GB (N or MIN:MAX)", mem));
  const show = () => { typeRow.hidden = target.value !== "type"; rangeRow.hidden = target.value !== "ranges"; };
  target.addEventListener("change", show);
  const send = h("button", { type: "submit" }, "Migrate");
  const close = h("button", { type: "button", class: "secondary" }, "Close");
  const form = h("form", { id: "migrate-form", class: "card", "aria-label": "Migrate the job" },
    h("h2", {}, "Migrate"), field("Move to", target), typeRow, rangeRow,
    field("Move even to the same type and market", force), field("Reason (kept in the history)", reason),
    h("div", { class: "actions" }, send, close));
  show();
  close.addEventListener("click", () => form.remove());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { force: force.checked || target.value === "same" };
    if (target.value === "type") body.instType = instType.value.trim();
    if (target.value === "ranges") { body.cpu = cpu.value.trim(); body.mem = mem.value.trim(); }
    if (reason.value.trim()) body.reason = reason.value.trim();
    post(send, "migrate", body, `Job ${job.id} is moving.`).then(() => form.remove());
  });
  setTimeout(() => target.focus());
  return form;
}

function logPanel(scope, job, finalNow) {
  const which = h("select", { name: "log" }, h("option", { value: "stdout" }, "stdout"), h("option", { value: "stderr" }, "stderr"));
  const text = h("pre", { class: "log", id: "log", tabindex: "0", "aria-label": "Log" });
  const state = h("p", { class: "hint", "aria-live": "polite" });
  let offset = 0;
  let epoch = null;
  let generation = 0;
  const read = async (query) => {
    const part = await apiText(path("v1/jobs/{}/logs/{}", job.id, which.value), query);
    return { text: part.text, end: Number(part.headers.get("X-Log-End")),
      epoch: Number(part.headers.get("X-Log-Epoch")), epochStart: Number(part.headers.get("X-Log-Epoch-Start")) };
  };
  const start = async () => {
    generation += 1;
    const mine = generation;
    const last = await read({ lines: 500 });
    if (mine !== generation) return;
    text.textContent = last.text;
    offset = last.end;
    epoch = last.epoch;
    follow(mine);
  };
  const follow = (mine) => scope.every(LOG_SECONDS * 1000, async () => {
    if (mine !== generation || state.dataset.done === String(mine)) return;
    const final = finalNow();
    let piece = await read({ offset });
    if (piece.epoch !== epoch && piece.epochStart < offset) {
      state.textContent = "The job was restored from an earlier checkpoint or started again; the log is read again from there.";
      await start();
      return;
    }
    epoch = piece.epoch;
    if (piece.text) {
      const atEnd = text.scrollTop + text.clientHeight >= text.scrollHeight - 4;
      text.append(piece.text);
      if (atEnd) text.scrollTop = text.scrollHeight;
    }
    offset = piece.end;
    if (!piece.text && final) { state.textContent = "The job has ended: this is all of it."; state.dataset.done = String(mine); }
    else if (!final) state.textContent = "Following while the job runs…";
  });
  which.addEventListener("change", () => { state.textContent = ""; start(); });
  start();
  return h("section", { "aria-labelledby": "log-title" }, h("h2", { id: "log-title" }, "Log"), field("Stream", which), text, state);
}

export async function jobPage(main, scope, id) {
  let job = await api("GET", path("v1/jobs/{}", id));
  const header = h("div");
  const actions = h("div");
  const timeline = h("div");
  const moves = h("div");
  const chart = h("div", { id: "graph" });
  let shownStatus = null;
  const refresh = async () => {
    job = await api("GET", path("v1/jobs/{}", id));
    replace(header, h("h1", {}, `Job ${job.id}`, job.name ? h("span", { class: "muted" }, ` ${job.name}`) : null), facts(job));
    // The buttons change only with the status, so an open migrate form is not wiped.
    if (job.status !== shownStatus) {
      shownStatus = job.status;
      replace(actions, actionsFor(job, refresh));
    }
    const series = await api("GET", path("v1/jobs/{}/utilization", id), undefined, { limit: 1000 });
    replace(timeline,
      table("Statuses", ["Time", "From", "To", "Why", "Instance"], job.history.map((entry) =>
        [time(entry.time), entry.from || "", statusBadge(entry.to), entry.reason, entry.instance || ""])),
      table("Instances", ["Instance", "Type", "Zone", "First seen", "Last seen"], instancesOf(job, series.items).map((one) =>
        [one.id, one.type, one.zone, time(one.first), time(one.last)]), "No instance yet."));
    replace(moves, migrationsTable(job));
    replace(chart, series.items.length ? graph(series.items) : h("p", { class: "muted" }, "No samples yet: they come with the agent's heartbeats."));
  };
  replace(main, header, actions,
    h("section", { "aria-labelledby": "use-title" }, h("h2", { id: "use-title" }, "CPU and memory"), chart),
    h("section", { "aria-labelledby": "moves-title" }, h("h2", { id: "moves-title" }, "Migrations"), moves),
    h("section", { "aria-labelledby": "timeline-title" }, h("h2", { id: "timeline-title" }, "Timeline"), timeline),
    logPanel(scope, job, () => FINAL.includes(job.status)));
  let finished = false;
  scope.every(JOB_SECONDS * 1000, async () => {
    if (finished) return;
    await refresh();
    finished = FINAL.includes(job.status);
  });
}
