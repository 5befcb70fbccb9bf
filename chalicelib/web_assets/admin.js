// Admin pages: the license (applied with a file or pasted text; plan, dates and this month's
// core-hours) and the users.
import { allPages, api, path, session } from "./api.js";
import { field, h, replace, table, time } from "./dom.js";
import { act, confirmed, say } from "./ui.js";

function licenseFacts(license) {
  const rows = [["OpCenter", license.opcenter], ["Status", license.status]];
  if (license.status !== "none") {
    rows.push(["Plan", license.plan], ["Customer", license.customer], ["Contract", license.contract || ""],
      ["License", license.id], ["Valid from", time(license.start)], ["Valid until", time(license.end)],
      ["Applied", `${time(license.appliedTime)} by ${license.appliedBy}`]);
  }
  const quota = license.coreHourQuota === null ? "no quota" : `${license.coreHourQuota} core-hours`;
  rows.push([`Core-hours in ${license.month}`, `${license.coreHoursUsed} used of ${quota}`]);
  if (license.coreHoursLeft !== null) rows.push(["Left this month", license.coreHoursLeft]);
  if (license.pricePerCoreHour !== null) rows.push(["Price per core-hour (USD)", license.pricePerCoreHour]);
  if (license.hold) rows.push(["New jobs", license.hold]);
  return h("dl", { class: "facts", id: "license-facts" }, rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "")]));
}

function usageBar(license) {
  if (!license.coreHourQuota) return null;
  const used = Number(license.coreHoursUsed);
  return h("div", { class: "field" }, h("label", { for: "quota" }, "This month's quota"),
    h("meter", { id: "quota", min: 0, max: license.coreHourQuota, value: used, high: license.coreHourQuota * 0.9 },
      `${used} of ${license.coreHourQuota}`));
}

export async function licensePage(main) {
  const license = await api("GET", "v1/license");
  const file = h("input", { type: "file", name: "licenseFile", accept: ".json,.lic,application/json" });
  const text = h("textarea", { name: "licenseText", rows: 6, spellcheck: "false", placeholder: "{\"license\": {...}, \"signature\": \"...\"}" });
  const apply = h("button", { type: "submit" }, "Apply license");
  file.addEventListener("change", async () => { if (file.files[0]) text.value = await file.files[0].text(); });
  const form = h("form", { class: "card", "aria-labelledby": "apply-title" },
    h("h2", { id: "apply-title" }, license.status === "none" ? "Apply a license" : "Apply another license"),
    field("License file", file), field("Or paste it", text), h("div", { class: "actions" }, apply));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    let signed;
    try {
      signed = JSON.parse(text.value);
    } catch (error) {
      say(`The license is not JSON: ${error.message}`, "error");
      return;
    }
    act(apply, async () => {
      const applied = await api("PUT", "v1/license", signed);
      say(`License ${applied.id} (${applied.plan}) is applied; jobs waiting for one start.`);
      await licensePage(main);
    });
  });
  const prompt = license.status === "none"
    ? h("div", { class: "notice warn", role: "alert", id: "license-prompt" },
      h("strong", {}, "This OpCenter has no license. "),
      `Jobs are accepted but wait in WaitingForLicense until an admin applies one. Apply the license issued for OpCenter ${license.opcenter}.`)
    : null;
  const remove = license.status === "none" ? null : h("button", { type: "button", class: "danger" }, "Remove license");
  remove?.addEventListener("click", () => confirmed(remove, "Really remove the license? New jobs will wait") && act(remove, async () => {
    await api("DELETE", "v1/license");
    say("The license is removed: running jobs go on, new ones wait for another.");
    await licensePage(main);
  }));
  replace(main, h("h1", {}, "License"), prompt, licenseFacts(license), usageBar(license), form, remove);
  if (prompt) file.focus();
}

export async function usersPage(main) {
  const listing = h("div", { id: "users" });
  const username = h("input", { name: "username", required: true, autocomplete: "off" });
  const password = h("input", { name: "password", type: "password", required: true, autocomplete: "new-password" });
  const role = h("select", { name: "role" }, h("option", { value: "user" }, "user"), h("option", { value: "admin" }, "admin"));
  const add = h("button", { type: "submit" }, "Add user");
  const form = h("form", { class: "card", "aria-labelledby": "user-title" }, h("h2", { id: "user-title" }, "Add a user"),
    h("div", { class: "row" }, field("Username", username), field("Password", password), field("Role", role)),
    h("div", { class: "actions" }, add));
  const load = async () => {
    const users = await allPages("v1/users");
    replace(listing, table("Users", ["User", "Role", "Created", ""], users.map((user) => {
      if (user.username === session.user.username) return [user.username, user.role, time(user.createTime), "you"];
      const remove = h("button", { type: "button", class: "danger", "aria-label": `Delete ${user.username}` }, "Delete");
      remove.addEventListener("click", () => confirmed(remove, `Really delete ${user.username}?`) && act(remove, async () => {
        await api("DELETE", path("v1/users/{}", user.username));
        say(`User ${user.username} is deleted.`);
        await load();
      }));
      return [user.username, user.role, time(user.createTime), remove];
    })));
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { username: username.value.trim(), password: password.value, role: role.value };
    password.value = "";
    act(add, async () => {
      const user = await api("POST", "v1/users", body);
      username.value = "";
      say(`User ${user.username} (${user.role}) is added.`);
      await load();
    });
  });
  replace(main, h("h1", {}, "Users"), listing, form);
  await load();
}
