// The audit log: every operator change, through the admin API or the command line,
// newest first, filtered by actor, action and account.

import { h, mount, field, fmtTime } from "../../../js/dom.js";
import { get } from "../client.js";
import { link, pagedTable, param, keepFilters, select } from "../ui.js";

const ACTIONS = ["", "account.create", "account.update", "credits.grant", "credits.adjust", "key.create", "key.limit",
  "key.revoke", "operator.create", "operator.revoke"];

function change(v) {
  if (v === null || v === undefined) return "—";
  return h("code", { class: "json" }, JSON.stringify(v));
}

export async function auditPage(main) {
  const actor = h("input", { type: "text", name: "actor", value: param("actor"), placeholder: "operator name or cli", autocomplete: "off" });
  const action = select("action", ACTIONS.map((a) => [a, a || "any"]), param("action"));
  const account = h("input", { type: "text", name: "account", value: param("account"), placeholder: "acct_…", autocomplete: "off" });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter the audit log" },
    field("Actor", actor), field("Action", action), field("Account", account),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Filter")));
  const list = h("div", {});
  mount(main, h("h1", {}, "Audit log"), filters, list);
  const table = pagedTable(list, {
    label: "Audit log",
    columns: ["When", "Actor", "Action", "Target", "Account", "Before", "After", "Request"],
    empty: "No audit lines match.",
    fetchPage: (cursor) => {
      const q = new URLSearchParams({ limit: "25" });
      if (actor.value.trim()) q.set("actor", actor.value.trim());
      if (action.value) q.set("action", action.value);
      if (account.value.trim()) q.set("account", account.value.trim());
      if (cursor) q.set("starting_after", cursor);
      return get(`/audit?${q}`);
    },
    row: (e) => h("tr", {},
      h("td", {}, fmtTime(e.at)),
      h("td", {}, e.actor),
      h("td", {}, h("code", {}, e.action)),
      h("td", {}, h("code", {}, e.target)),
      h("td", {}, e.account ? link(`/admin/accounts/${e.account}`, h("code", {}, e.account)) : "—"),
      h("td", {}, change(e.before)),
      h("td", {}, change(e.after)),
      h("td", {}, e.request_id ? h("code", { class: "small-id" }, e.request_id) : "—")),
  });
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    keepFilters({ actor: actor.value.trim(), action: action.value, account: account.value.trim() });
    table.reload();
  });
  action.addEventListener("change", () => filters.requestSubmit());
  await table.reload();
}
