// Usage: tasks and credits over a range, grouped by day, hour, account, key, model
// or status; a chart, the table with its totals, and the same rows as CSV (the
// server streams it; the browser saves it under a name with the range in it).

import { h, mount, field, errorBox } from "../../../js/dom.js";
import { client, get } from "../client.js";
import { chart, hours, days, byBucket, COLORS } from "../charts.js";
import { link, param, keepFilters, select, num } from "../ui.js";

const GROUPS = [["day", "day"], ["hour", "hour"], ["account", "account"], ["key", "key"], ["model", "model"], ["status", "status"]];
const DAY = 86400000;

const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

export async function usagePage(main) {
  const today = Math.floor(Date.now() / DAY) * DAY;
  const from = h("input", { type: "date", name: "from", required: true, value: param("from") || isoDay(today - 29 * DAY) });
  const to = h("input", { type: "date", name: "to", required: true, value: param("to") || isoDay(today) });
  const group = select("group_by", GROUPS, param("group_by") || "day");
  const account = h("input", { type: "text", name: "account", value: param("account"), placeholder: "acct_… (all when empty)", autocomplete: "off" });
  const sandbox = h("input", { type: "checkbox", name: "include_sandbox", checked: param("include_sandbox") === "true" });
  const download = h("button", { type: "button", class: "secondary" }, "Download CSV");
  const filters = h("form", { class: "filters", "aria-label": "Usage range and grouping" },
    field("From (UTC day, inclusive)", from, { field: "from" }), field("To (UTC day, inclusive)", to, { field: "to" }),
    field("Group by", group, { field: "group_by" }), field("Account", account, { field: "account" }),
    h("div", { class: "field actions" }, h("label", { class: "check" }, sandbox, " Include sandbox accounts")),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Show"), " ", download));
  const out = h("div", {});
  const status = h("p", { role: "status", class: "muted" });
  mount(main, h("h1", {}, "Usage"),
    h("p", { class: "muted" }, "Money follows the ledger: a task's reserve counts as charged when it is written (a running task counts until it settles), its refund when that is written. Task counts follow the tasks' creation times. Sandbox accounts are left out unless included."),
    filters, status, out);

  const query = (extra = {}) => {
    const q = new URLSearchParams({
      from: `${from.value}T00:00:00Z`,
      to: new Date(Date.parse(`${to.value}T00:00:00Z`) + DAY).toISOString(),
      group_by: group.value,
    });
    if (account.value.trim()) q.set("account", account.value.trim());
    if (sandbox.checked) q.set("include_sandbox", "true");
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return q;
  };

  const load = async () => {
    keepFilters({ from: from.value, to: to.value, group_by: group.value, account: account.value.trim(), include_sandbox: sandbox.checked ? "true" : "" });
    mount(out, h("p", { role: "status" }, "Loading…"));
    let report;
    try {
      report = await get(`/usage?${query()}`);
    } catch (e) {
      mount(out, errorBox(e));
      return;
    }
    const rows = report.data;
    const total = (k) => rows.reduce((s, r) => s + r[k], 0);
    const g = report.group_by;
    let figure;
    if (g === "day" || g === "hour") {
      const f = Date.parse(report.from), t = Date.parse(report.to);
      const x = g === "day" ? days(f, t) : hours(f, t);
      const m = byBucket(rows);
      const at = (v, k) => (m.get(v) ? m.get(v)[k] : 0);
      figure = chart({
        title: `Credits and tasks per ${g}`,
        x,
        series: [
          { label: "credits net", values: x.map((v) => at(v, "credits_net")), color: COLORS.blue, bars: true },
          { label: "tasks", values: x.map((v) => at(v, "tasks")), color: COLORS.amber },
        ],
        counts: true,
        fmt: num,
      });
    } else {
      const top = [...rows].sort((a, b) => b.credits_net - a.credits_net).slice(0, 20);
      figure = chart({
        title: `Credits by ${g}${rows.length > 20 ? " (the top 20)" : ""}`,
        x: top.map((_, i) => i),
        labels: top.map((r) => r.group || "(none)"),
        time: false,
        series: [{ label: "credits net", values: top.map((r) => r.credits_net), color: COLORS.blue, bars: true }],
        counts: true,
        fmt: num,
      });
    }
    const groupCell = (r) => {
      if (g === "account") return link(`/admin/accounts/${r.group}`, h("code", {}, r.group));
      if (g === "day") return r.group.slice(0, 10);
      if (g === "hour") return new Date(r.group).toISOString().slice(0, 16).replace("T", " ") + " UTC";
      return r.group || "(none)";
    };
    const cols = ["tasks", "succeeded", "failed", "credits_charged", "credits_refunded", "credits_net"];
    mount(out, figure,
      h("div", { class: "table-wrap" }, h("table", { class: "usage", "aria-label": "Usage rows" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, g), cols.map((c) => h("th", { scope: "col" }, c.replace("_", " "))))),
        h("tbody", {}, rows.map((r) => h("tr", {}, h("td", {}, groupCell(r)), cols.map((c) => h("td", { class: "num" }, num(r[c])))))),
        h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, "Total"), cols.map((c) => h("td", { class: "num" }, num(total(c)))))))),
      rows.length ? null : h("p", { class: "muted" }, "No usage in this range."));
  };

  download.addEventListener("click", async () => {
    download.disabled = true;
    status.textContent = "Preparing the CSV…";
    try {
      // The key travels in a header, so the CSV comes through fetch, then a Blob the browser saves.
      const resp = await client.api("GET", `/usage?${query({ format: "csv" })}`, { headers: { Accept: "text/csv" }, raw: true });
      const blob = await resp.blob();
      const a = h("a", { href: URL.createObjectURL(blob), download: `gengate-usage-${from.value}-to-${to.value}-by-${group.value}.csv` });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      status.textContent = `Downloaded the CSV (${num(blob.size)} bytes).`;
    } catch (e) {
      status.textContent = "";
      mount(out, errorBox(e));
    } finally {
      download.disabled = false;
    }
  });
  filters.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  group.addEventListener("change", () => load());
  await load();
}
