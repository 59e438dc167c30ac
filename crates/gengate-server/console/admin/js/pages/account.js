// One account: its figures, and for an admin the money and status controls (a
// grant or adjustment needs a reason; suspend and the sandbox switch ask first);
// its keys (revoke, create one on its behalf), its latest tasks and its ledger.

import { h, mount, field, fmtTime, fmtCredits, errorBox, copyButton } from "../../../js/dom.js";
import { idemKey } from "../../../js/api.js";
import { showApiError } from "../../../js/forms.js";
import { statusBadge } from "../../../js/pages/task_view.js";
import { get, post, patch, del, me } from "../client.js";
import { badge, link, pagedTable, confirmButton, num } from "../ui.js";

const SCOPES = ["models:read", "generations:create", "generations:read", "files:create", "files:read",
  "credits:read", "webhooks:manage", "keys:manage"];

export async function accountPage(main, { isCurrent }, id) {
  mount(main, h("h1", {}, "Account"), h("p", { role: "status" }, "Loading…"));
  const path = `/accounts/${encodeURIComponent(id)}`;
  let account;
  try {
    account = await get(path);
  } catch (e) {
    mount(main, h("h1", {}, "Account ", h("code", {}, id)), errorBox(e));
    return;
  }
  if (!isCurrent()) return;
  const title = h("h1", {});
  const facts = h("dl", { class: "facts" });
  const notice = h("div", { "aria-live": "polite" });
  const controls = h("div", {});
  const keys = h("div", {});
  const ledger = h("div", {});
  const tasks = h("div", {});
  const show = (a) => {
    account = a;
    mount(title, a.name, " ", badge(a.status, a.status === "active" ? "active" : "failed"),
      a.sandbox ? badge("sandbox", "sandbox") : null);
    mount(facts,
      h("dt", {}, "Id"), h("dd", {}, h("code", {}, a.id), " ", copyButton(a.id, "Copy id")),
      h("dt", {}, "Balance"), h("dd", { class: "balance-figure" }, fmtCredits(a.balance)),
      h("dt", {}, "Status"), h("dd", {}, a.status === "suspended" ? "suspended: every call of its keys is refused (403 account_suspended); running tasks still finish" : "active"),
      h("dt", {}, "Kind"), h("dd", {}, a.sandbox ? "sandbox (tasks run on the sandbox provider)" : "live"),
      h("dt", {}, "Prices"), h("dd", { class: "price-adjustment" }, a.price_adjustment ? `list ${a.price_adjustment > 0 ? "+" : ""}${a.price_adjustment} %` : "list prices"),
      h("dt", {}, "Low-balance alert"), h("dd", { class: "low-balance" }, a.low_balance_threshold === null || a.low_balance_threshold === undefined ? "off" : `below ${fmtCredits(a.low_balance_threshold)}`),
      h("dt", {}, "Tasks, 30 days"), h("dd", {}, num(a.tasks_30d)),
      h("dt", {}, "Credits consumed, 30 days"), h("dd", {}, num(a.credits_30d)),
      h("dt", {}, "Last activity"), h("dd", {}, fmtTime(a.last_activity)),
      h("dt", {}, "Created"), h("dd", {}, fmtTime(a.created_at)));
    if (me.canWrite) mount(controls, creditsForm(), statusControls());
  };
  const refresh = async () => {
    show(await get(path));
    ledgerTable.reload();
  };

  const creditsForm = () => {
    const kind = h("select", { name: "kind" }, h("option", { value: "grant" }, "grant (adds credits)"),
      h("option", { value: "adjustment" }, "adjustment (signed: negative takes credits away)"));
    const amount = h("input", { type: "number", name: "amount", step: 1, required: true, inputmode: "numeric" });
    const reason = h("input", { type: "text", name: "reason", required: true, maxlength: 500, placeholder: "e.g. invoice 2026-118 paid" });
    const formError = h("div", {});
    const form = h("form", { class: "card", novalidate: true, "aria-label": "Change credits" },
      h("h2", {}, "Grant or adjust credits"),
      h("div", { class: "form-grid" },
        field("Kind", kind, { field: "kind" }),
        field("Amount", amount, { field: "amount" }),
        field("Reason", reason, { field: "reason", hint: "Required; kept in the ledger and the audit log." })),
      formError,
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Apply")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      formError.replaceChildren();
      for (const f of form.querySelectorAll(".field")) f.clearError && f.clearError();
      const body = { kind: kind.value, amount: amount.value === "" ? null : Number(amount.value), reason: reason.value.trim() };
      try {
        await post(`${path}/credits`, body, { headers: { "Idempotency-Key": idemKey() } });
        mount(notice, h("p", { class: "ok", role: "status" }, `${body.kind === "grant" ? "Granted" : "Adjusted by"} ${fmtCredits(body.amount)}.`));
        await refresh();
      } catch (err) {
        showApiError(err, form, formError);
      }
    });
    return form;
  };

  const statusControls = () => {
    const err = h("div", {});
    const change = (body, done) => async () => {
      try {
        show(await patch(path, body));
        mount(notice, h("p", { class: "ok", role: "status" }, done));
      } catch (e) {
        mount(err, errorBox(e));
      }
    };
    const pct = h("input", { type: "number", name: "price_adjustment", min: -99, max: 1000, step: 1, value: String(account.price_adjustment), inputmode: "numeric" });
    const low = h("input", { type: "number", name: "low_balance_threshold", min: 0, step: 1, inputmode: "numeric",
      value: account.low_balance_threshold === null || account.low_balance_threshold === undefined ? "" : String(account.low_balance_threshold) });
    const pctError = h("div", {});
    const pctForm = h("form", { novalidate: true, "aria-label": "Price adjustment" },
      field("Price adjustment, percent", pct, { field: "price_adjustment", hint: "On every list price for this account: −20 for a wholesale customer, 15 for a reseller's margin, 0 for list. New tasks only; prices round up to whole credits." }),
      field("Low-balance alert below (credits)", low, { field: "low_balance_threshold", hint: "One credits.low webhook event to the account's endpoints when the balance falls below this. Empty: off." }),
      pctError,
      h("button", { type: "submit", class: "secondary" }, "Set price adjustment"));
    pctForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      pctError.replaceChildren();
      for (const f of pctForm.querySelectorAll(".field")) f.clearError && f.clearError();
      try {
        const body = {
          price_adjustment: pct.value === "" ? null : Number(pct.value),
          low_balance_threshold: low.value === "" ? null : Number(low.value),
        };
        show(await patch(path, body));
        mount(notice, h("p", { class: "ok", role: "status" }, `Price adjustment set to ${body.price_adjustment} %; low-balance alert ${body.low_balance_threshold === null ? "off" : `below ${body.low_balance_threshold} credits`}.`));
      } catch (err) {
        showApiError(err, pctForm, pctError);
      }
    });
    return h("section", { class: "card", "aria-label": "Status" },
      h("h2", {}, "Status and kind"),
      h("div", { class: "buttons" },
        account.status === "active"
          ? confirmButton("Suspend account", "Confirm suspend", change({ status: "suspended" }, "Suspended: its keys are refused from now on."))
          : h("button", { type: "button", onclick: change({ status: "active" }, "Resumed: its keys work again.") }, "Resume account"),
        confirmButton(account.sandbox ? "Switch to live" : "Switch to sandbox",
          account.sandbox ? "Confirm switch to live" : "Confirm switch to sandbox",
          change({ sandbox: !account.sandbox }, account.sandbox ? "Now a live account." : "Now a sandbox account."), { danger: false })),
      err,
      pctForm);
  };

  const ledgerTable = pagedTable(ledger, {
    label: "Ledger",
    columns: ["Time", "Kind", "Amount", "Balance after", "Task", "Reason"],
    empty: "No ledger rows yet.",
    fetchPage: (cursor) => get(`${path}/transactions?limit=20${cursor ? `&starting_after=${encodeURIComponent(cursor)}` : ""}`),
    row: (t) => h("tr", {},
      h("td", {}, fmtTime(t.created_at)),
      h("td", {}, h("span", { class: `kind k-${t.kind}` }, t.kind)),
      h("td", { class: `num ${t.amount < 0 ? "neg" : "pos"}` }, `${t.amount > 0 ? "+" : ""}${num(t.amount)}`),
      h("td", { class: "num" }, num(t.balance_after)),
      h("td", {}, t.task_id ? link(`/admin/tasks/${t.task_id}`, t.task_id) : "—"),
      h("td", {}, t.reason)),
  });

  const loadKeys = async () => {
    let page;
    try {
      page = await get(`${path}/keys`);
    } catch (e) {
      mount(keys, errorBox(e));
      return;
    }
    mount(keys, page.data.length ? h("div", { class: "table-wrap" }, h("table", { "aria-label": "Keys" },
      h("thead", {}, h("tr", {}, ["Name", "Prefix", "Scopes", "Created", "Last used", "Expires", "State", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, page.data.map((k) => h("tr", {},
        h("td", {}, k.name),
        h("td", {}, h("code", {}, k.prefix)),
        h("td", { class: "scopes-cell" }, k.scopes.join(", ")),
        h("td", {}, fmtTime(k.created_at)),
        h("td", {}, fmtTime(k.last_used_at)),
        h("td", {}, fmtTime(k.expires_at)),
        h("td", {}, k.revoked_at ? badge("revoked", "failed") : badge("active", "active")),
        h("td", {}, me.canWrite && !k.revoked_at
          ? confirmButton(`Revoke ${k.name}`, "Confirm revoke", async () => {
            await del(`/keys/${encodeURIComponent(k.id)}`);
            mount(notice, h("p", { class: "ok", role: "status" }, `Revoked ${k.name}: it is refused on every node from now on.`));
            await loadKeys();
          })
          : null)))))) : h("p", { class: "muted" }, "No keys."));
  };

  const keyForm = () => {
    const name = h("input", { type: "text", name: "name", maxlength: 100, required: true, autocomplete: "off" });
    const boxes = SCOPES.map((s) => h("input", { type: "checkbox", name: "scope", value: s, checked: true }));
    const formError = h("div", {});
    const created = h("div", { "aria-live": "polite" });
    const form = h("form", { class: "card", novalidate: true, "aria-label": "New key" },
      h("h3", {}, "Create a key on its behalf"),
      field("Key name", name, { field: "name" }),
      h("fieldset", { class: "field", dataset: { field: "scopes" } }, h("legend", {}, "Scopes"),
        boxes.map((b, i) => h("label", { class: "check" }, b, " ", SCOPES[i]))),
      formError,
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Create key")),
      created);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      formError.replaceChildren();
      for (const f of form.querySelectorAll(".field")) f.clearError && f.clearError();
      try {
        const k = await post(`${path}/keys`, { name: name.value, scopes: boxes.filter((b) => b.checked).map((b) => b.value) },
          { headers: { "Idempotency-Key": idemKey() } });
        name.value = "";
        mount(created, h("section", { class: "card secret", "aria-label": "New key secret" },
          h("h3", {}, "Key created: ", k.name),
          h("p", {}, "Give it to the customer now: this is the only time the full key is shown."),
          h("p", {}, h("code", { class: "secret-value" }, k.secret), " ", copyButton(k.secret))));
        await loadKeys();
      } catch (err) {
        showApiError(err, form, formError);
      }
    });
    return form;
  };

  const loadTasks = async () => {
    try {
      const page = await get(`/generations?account=${encodeURIComponent(id)}&limit=10`);
      mount(tasks, page.data.length ? h("div", { class: "table-wrap" }, h("table", { "aria-label": "Latest tasks" },
        h("thead", {}, h("tr", {}, ["Task", "Status", "Model", "Created", "Credits"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, page.data.map((t) => h("tr", {},
          h("td", {}, link(`/admin/tasks/${t.id}`, t.id)),
          h("td", {}, statusBadge(t.status)),
          h("td", {}, t.model),
          h("td", {}, fmtTime(t.created_at)),
          h("td", { class: "num" }, num(t.credits_reserved))))))) : h("p", { class: "muted" }, "No tasks yet."),
      h("p", {}, link(`/admin/tasks?account=${encodeURIComponent(id)}`, "All tasks of this account")));
    } catch (e) {
      mount(tasks, errorBox(e));
    }
  };

  mount(main, title, notice,
    h("div", { class: "split" },
      h("section", { class: "card", "aria-label": "Figures" }, h("h2", {}, "Figures"), facts),
      controls),
    h("section", { "aria-label": "Keys" }, h("h2", {}, "Keys"), keys, me.canWrite ? keyForm() : null),
    h("section", { "aria-label": "Latest tasks" }, h("h2", {}, "Latest tasks"), tasks),
    h("section", { "aria-label": "Ledger" }, h("h2", {}, "Ledger"), ledger));
  show(account);
  await Promise.all([loadKeys(), loadTasks(), ledgerTable.reload()]);
}
