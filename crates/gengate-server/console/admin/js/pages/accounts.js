// Accounts: search by name or id, filter by status and sandbox, page; an admin also
// creates accounts here (initial credits arrive as a grant with its reason).

import { h, mount, field, fmtTime, fmtCredits } from "../../../js/dom.js";
import { idemKey } from "../../../js/api.js";
import { showApiError } from "../../../js/forms.js";
import { get, post, me } from "../client.js";
import { badge, link, pagedTable, param, keepFilters, select, num } from "../ui.js";

export async function accountsPage(main, { navigate }) {
  const query = h("input", { type: "search", name: "query", value: param("query"), placeholder: "name or acct_…" });
  const status = select("status", [["", "any"], ["active", "active"], ["suspended", "suspended"]], param("status"));
  const sandbox = select("sandbox", [["", "any"], ["false", "live"], ["true", "sandbox"]], param("sandbox"));
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter accounts" },
    field("Search", query), field("Status", status), field("Kind", sandbox),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Search")));
  const list = h("div", {});
  mount(main, h("h1", {}, "Accounts"), me.canWrite ? createForm(navigate) : null, filters, list);
  const table = pagedTable(list, {
    label: "Accounts",
    columns: ["Account", "Balance", "Status", "Kind", "Tasks, 30 d", "Credits, 30 d", "Last activity", "Created"],
    empty: "No accounts match.",
    fetchPage: (cursor) => {
      const q = new URLSearchParams({ limit: "25" });
      if (query.value.trim()) q.set("query", query.value.trim());
      if (status.value) q.set("status", status.value);
      if (sandbox.value) q.set("sandbox", sandbox.value);
      if (cursor) q.set("starting_after", cursor);
      return get(`/accounts?${q}`);
    },
    row: (a) => h("tr", {},
      h("td", {}, link(`/admin/accounts/${a.id}`, a.name), h("br"), h("code", { class: "muted small-id" }, a.id)),
      h("td", { class: "num" }, num(a.balance)),
      h("td", {}, badge(a.status, a.status === "active" ? "active" : "failed")),
      h("td", {}, a.sandbox ? badge("sandbox", "sandbox") : "live"),
      h("td", { class: "num" }, num(a.tasks_30d)),
      h("td", { class: "num" }, num(a.credits_30d)),
      h("td", {}, fmtTime(a.last_activity)),
      h("td", {}, fmtTime(a.created_at))),
  });
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    keepFilters({ query: query.value.trim(), status: status.value, sandbox: sandbox.value });
    table.reload();
  });
  for (const s of [status, sandbox]) s.addEventListener("change", () => filters.requestSubmit());
  await table.reload();
}

function createForm(navigate) {
  const name = h("input", { type: "text", name: "name", maxlength: 100, required: true, autocomplete: "off" });
  const credits = h("input", { type: "number", name: "credits", min: 0, step: 1, inputmode: "numeric" });
  const reason = h("input", { type: "text", name: "reason", maxlength: 500, placeholder: "initial grant" });
  const sandbox = h("input", { type: "checkbox", name: "sandbox" });
  const formError = h("div", {});
  const form = h("form", { class: "card", novalidate: true, "aria-label": "New account" },
    h("h2", {}, "New account"),
    h("div", { class: "form-grid" },
      field("Account name", name, { field: "name" }),
      field("Initial credits", credits, { field: "credits", hint: "Optional; written as a grant." }),
      field("Reason for the credits", reason, { field: "reason" })),
    h("label", { class: "check" }, sandbox, " Sandbox account (tasks run on the sandbox provider, free of upstream cost)"),
    formError,
    h("div", { class: "buttons" }, h("button", { type: "submit" }, "Create account")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError.replaceChildren();
    for (const f of form.querySelectorAll(".field")) f.clearError && f.clearError();
    const body = { name: name.value };
    if (sandbox.checked) body.sandbox = true;
    if (credits.value !== "") body.credits = Number(credits.value);
    if (reason.value.trim()) body.reason = reason.value.trim();
    try {
      const a = await post("/accounts", body, { headers: { "Idempotency-Key": idemKey() } });
      formError.replaceChildren(h("p", { class: "ok", role: "status" }, `Created ${a.name} with ${fmtCredits(a.balance)}.`));
      navigate(`/admin/accounts/${a.id}`);
    } catch (err) {
      showApiError(err, form, formError);
    }
  });
  return form;
}
