// Credits: the balance and the ledger (GET /api/v1/credits/transactions), newest first.

import { h, mount, fmtTime, fmtCredits, errorBox } from "../dom.js";
import { get } from "../api.js";

export async function creditsPage(main, { account }) {
  const balance = h("p", { class: "big" });
  const show = (a) => { balance.textContent = a.balance === null ? "…" : fmtCredits(a.balance); };
  account.listeners.add(show);
  show(account);
  account.refresh();
  const body = h("div", { class: "list" });
  mount(main, h("h1", {}, "Credits"),
    h("section", { class: "card", "aria-label": "Balance" }, h("h2", {}, "Balance"), balance),
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
