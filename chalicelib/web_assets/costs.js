// Cost Summary: what the jobs cost, what On-demand would have, and the savings, by month and
// by user (an admin sees everyone; a user only themselves), from GET /v1/reports/cost.
import { api } from "./api.js";
import { barChart, legend } from "./chart.js";
import { field, h, replace, table } from "./dom.js";

const MONTHS = 6;

function lastMonths(count) {
  const now = new Date();
  const months = [];
  for (let back = count - 1; back >= 0; back -= 1) {
    const date = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 1));
    months.push(`${date.getUTCFullYear()}-${String(date.getUTCMonth() + 1).padStart(2, "0")}`);
  }
  return months;
}

// Amounts come as "0.12345678 USD".
const amount = (text) => (text === null || text === undefined ? 0 : parseFloat(text) || 0);

export async function costsPage(main) {
  const months = lastMonths(MONTHS);
  const reports = await Promise.all(months.map((month) => api("GET", "v1/reports/cost", undefined, { month })));
  const chosen = h("select", { name: "month" }, months.map((month) => h("option", { value: month }, month)));
  chosen.value = months[months.length - 1];
  const byUser = h("div", { id: "cost-by-user" });
  const showMonth = () => {
    const report = reports[months.indexOf(chosen.value)];
    replace(byUser,
      report.users.length ? barChart(`Spend by user in ${report.month}`, report.users.map((user) => ({
        name: user.user, bars: [
          { cls: "cost", value: amount(user.cost), label: `${user.user}: spent ${user.cost ?? "unpriced"}` },
          { cls: "ondemand", value: amount(user.onDemandCost), label: `${user.user}: On-demand ${user.onDemandCost ?? "unpriced"}` }] }))) : null,
      table(`Cost by user in ${report.month}`, ["User", "Jobs", "Core-hours", "Spend", "On-demand", "Saved"],
        report.users.map((user) => [user.user, user.jobs, user.coreHours, user.cost ?? "unpriced", user.onDemandCost ?? "", user.savings ?? ""]),
        "Nothing ran this month."));
  };
  chosen.addEventListener("change", showMonth);
  replace(main, h("h1", {}, "Cost Summary"),
    h("section", { "aria-labelledby": "months-title" }, h("h2", { id: "months-title" }, "By month"),
      barChart("Spend and On-demand equivalent by month", reports.map((report) => ({
        name: report.month, bars: [
          { cls: "cost", value: amount(report.cost), label: `${report.month}: spent ${report.cost ?? "unpriced"}` },
          { cls: "ondemand", value: amount(report.onDemandCost), label: `${report.month}: On-demand ${report.onDemandCost ?? "unpriced"}` }] }))),
      legend([["cost", "spend"], ["ondemand", "On-demand equivalent"]]),
      table("Cost by month", ["Month", "Core-hours", "Spend", "On-demand", "Saved"],
        reports.map((report) => [report.month, report.coreHours, report.cost ?? "unpriced", report.onDemandCost ?? "", report.savings ?? ""]))),
    h("section", { "aria-labelledby": "users-title" }, h("h2", { id: "users-title" }, "By user"), field("Month", chosen), byUser));
  showMonth();
}
