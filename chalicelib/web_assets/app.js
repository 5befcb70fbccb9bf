// The web interface's shell: the login form, the menu, and which page the address names
// (#/jobs, #/jobs/ID, #/submit, ...). Each page gets a scope whose timers stop when it is left.
import { api, session } from "./api.js";
import { field, h, replace } from "./dom.js";
import { arrive, failure, go, say } from "./ui.js";
import { jobPage, jobsPage } from "./jobs.js";
import { submitPage } from "./submit.js";
import { libraryPage } from "./library.js";
import { licensePage, usersPage } from "./admin.js";
import { costsPage } from "./costs.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const logout = document.getElementById("logout");

const pages = [
  [/^\/jobs\/([^/]+)$/, jobPage],
  [/^\/jobs$/, jobsPage],
  [/^\/submit$/, submitPage],
  [/^\/library$/, libraryPage],
  [/^\/costs$/, costsPage],
  [/^\/license$/, licensePage],
  [/^\/users$/, usersPage],
];

let current = null;

class Scope {
  constructor() { this.timers = []; this.left = false; }
  // Calls `work` now and then every `ms` while the page is shown; a slow call is not overlapped.
  every(ms, work) {
    let timer = null;
    const run = async () => {
      if (this.left) return;
      try { await work(); } catch (error) { failure(error); }
      if (!this.left) { timer = setTimeout(run, ms); this.timers.push(timer); }
    };
    run();
  }
  leave() { this.left = true; this.timers.forEach(clearTimeout); }
}

function showSession() {
  const user = session.user;
  nav.hidden = !user;
  logout.hidden = !user;
  who.textContent = user ? `${user.username} (${user.role})` : "";
  for (const link of nav.querySelectorAll("[data-admin]")) link.hidden = !user || user.role !== "admin";
  const route = window.location.hash.slice(1);
  for (const link of nav.querySelectorAll("a")) {
    if (route.startsWith(link.getAttribute("href").slice(1))) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function loginPage() {
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card narrow", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Log in to the OpCenter"),
    field("Username", username),
    field("Password", password),
    h("button", { type: "submit" }, "Log in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      session.save(await api("POST", "v1/login", { username: username.value, password: password.value }));
      password.value = "";
      say("");
      await afterLogin();
    } catch (error) {
      failure(error);
    }
  });
  replace(main, form);
  username.focus();
}

// An admin's first login to an OpCenter without a license lands on the license page, which
// asks for one; anyone else starts at the job list.
async function afterLogin() {
  let where = "/jobs";
  if (session.user.role === "admin") {
    const license = await api("GET", "v1/license");
    if (license.status === "none") where = "/license";
  }
  const wanted = window.location.hash.slice(1);
  go(wanted && wanted !== "/" && where !== "/license" ? wanted : where);
}

async function render() {
  if (current) current.leave();
  current = new Scope();
  arrive();
  showSession();
  if (!session.token) { loginPage(); return; }
  const route = window.location.hash.slice(1) || "/jobs";
  const found = pages.find(([pattern]) => pattern.test(route));
  if (!found) { go("/jobs"); return; }
  const [pattern, page] = found;
  const args = route.match(pattern).slice(1).map(decodeURIComponent);
  replace(main, h("p", { class: "muted" }, "Loading…"));
  try {
    await page(main, current, ...args);
  } catch (error) {
    if (!current.left) replace(main, h("p", { class: "notice error" }, error.message || String(error)));
  }
}

window.addEventListener("hashchange", () => render());
window.addEventListener("openfloat:logged-out", () => go("/jobs", "Your session has ended; log in again."));
// The token is revoked at the OpCenter, not only forgotten here; a copy of it stops working too.
logout.addEventListener("click", async () => {
  let note = "Logged out.";
  try {
    await api("POST", "v1/logout");
  } catch (error) {
    if (error.status !== 401) note = `Logged out here, but the OpCenter could not revoke the session (${error.message}).`;
  }
  session.clear();
  go("/jobs", note);
});
document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
render();
