// Credits: the balance and the ledger (GET /api/v1/credits/transactions), newest first.

import { h, mount, field, fmtTime, fmtCredits, errorBox } from "../dom.js";
import { get, api } from "../api.js";
import { showApiError } from "../forms.js";

export async function creditsPage(main, { account }) {
  const balance = h("p", { class: "big" });
  const show = (a) => { balance.textContent = a.balance === null ? "…" : fmtCredits(a.balance); };
  account.listeners.add(show);
  show(account);
  account.refresh();
  const body = h("div", { class: "list" });
  const alert = lowBalanceForm();
  mount(main, h("h1", {}, "Credits"),
    h("section", { class: "card", "aria-label": "Balance" }, h("h2", {}, "Balance"), balance, alert),
    h("section", { "aria-label": "Ledger" }, h("h2", {}, "Ledger"),
      h("p", { class: "muted" }, "Every change of the balance: debits when a task is created, refunds when one fails, grants and adjustments by the operator."),
      body));
  const stack = [];
  let cursor = null;
  const load = async () => {
    let page;
    try {
      page = await get(`/credits/transactions?limit=20${cursor ? `&starting_after=${encodeURIComponent(cursor)}` : ""}`);
    } catch (e) {
      mount(body, errorBox(e));
      return;
    }
    const newer = h("button", { type: "button", class: "secondary", disabled: stack.length === 0 }, "Newer");
    const older = h("button", { type: "button", class: "secondary", disabled: !page.has_more }, "Older");
    newer.addEventListener("click", () => { cursor = stack.pop() ?? null; load(); });
    older.addEventListener("click", () => { stack.push(cursor); cursor = page.data[page.data.length - 1].id; load(); });
    mount(body,
      h("div", { class: "table-wrap" }, h("table", { class: "ledger" },
        h("thead", {}, h("tr", {}, ["Time", "Kind", "Amount", "Balance after", "Task", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, page.data.map((t) => h("tr", {},
          h("td", {}, fmtTime(t.created_at)),
          h("td", {}, h("span", { class: `kind k-${t.kind}` }, t.kind)),
          h("td", { class: `num ${t.amount < 0 ? "neg" : "pos"}` }, `${t.amount > 0 ? "+" : ""}${t.amount}`),
          h("td", { class: "num" }, String(t.balance_after)),
          h("td", {}, t.task_id ? h("a", { href: `/tasks/${t.task_id}`, "data-nav": "" }, t.task_id) : "—"),
          h("td", {}, t.reason)))))),
      h("div", { class: "pager" }, newer, older));
  };
  await load();
}

/**
 * The low-balance alert: below this many credits, one `credits.low` webhook event goes
 * to the account's endpoints (PATCH /api/v1/account; needs keys:manage).
 */
function lowBalanceForm() {
  const input = h("input", { type: "number", name: "low_balance_threshold", min: 0, step: 1, inputmode: "numeric" });
  const status = h("p", { class: "muted", role: "status" });
  const formError = h("div", {});
  const form = h("form", { class: "low-balance-form", novalidate: true, "aria-label": "Low-balance alert" },
    field("Alert me below (credits)", input, { field: "low_balance_threshold", hint: "One credits.low webhook event when the balance falls below this; the next only after it has been back above. Empty turns it off." }),
    formError,
    h("button", { type: "submit", class: "secondary" }, "Save alert"),
    status);
  get("/credits").then((c) => {
    if (c.low_balance_threshold !== null && c.low_balance_threshold !== undefined) input.value = String(c.low_balance_threshold);
  }).catch(() => {});
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError.replaceChildren();
    status.textContent = "";
    for (const f of form.querySelectorAll(".field")) f.clearError && f.clearError();
    const value = input.value === "" ? null : Number(input.value);
    try {
      await api("PATCH", "/account", { body: { low_balance_threshold: value } });
      status.textContent = value === null ? "Low-balance alert off." : `You will hear of it below ${fmtCredits(value)}.`;
    } catch (err) {
      showApiError(err, form, formError);
    }
  });
  return form;
}
