// Tasks across accounts: filters (status, model, account, provider, upstream account,
// created between two times) kept in the address bar; and one task's whole story:
// status timeline, upstream ids, money with its ledger rows, webhook deliveries, video.

import { h, mount, field, fmtTime, fmtCredits, errorBox } from "../../../js/dom.js";
import { statusBadge, resultPlayer } from "../../../js/pages/task_view.js";
import { get } from "../client.js";
import { link, pagedTable, param, keepFilters, select, num } from "../ui.js";

const STATUSES = [["", "any"], ["queued", "queued"], ["processing", "processing"], ["succeeded", "succeeded"], ["failed", "failed"]];

/** A datetime-local input's value as RFC 3339 (the browser's time zone), or "". */
function localToIso(v) {
  if (!v) return "";
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** RFC 3339 → a datetime-local value in the browser's time zone. */
function isoToLocal(s) {
  if (!s) return "";
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export async function tasksPage(main) {
  const text = (name, placeholder) => h("input", { type: "text", name, value: param(name), placeholder, autocomplete: "off" });
  const status = select("status", STATUSES, param("status"));
  const account = text("account", "acct_…");
  const model = text("model", "kling-3-0");
  const provider = text("provider", "kling, sandbox");
  const upstream = text("upstream_account", "a Kling account's name");
  const after = h("input", { type: "datetime-local", name: "created_after", value: isoToLocal(param("created_after")) });
  const before = h("input", { type: "datetime-local", name: "created_before", value: isoToLocal(param("created_before")) });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter tasks" },
    field("Status", status), field("Account", account), field("Model", model), field("Provider", provider),
    field("Upstream account", upstream), field("Created after", after), field("Created before", before),
    h("div", { class: "field actions" }, h("button", { type: "submit" }, "Filter")));
  const list = h("div", {});
  mount(main, h("h1", {}, "Tasks"), filters, list);
  const values = () => ({
    status: status.value, account: account.value.trim(), model: model.value.trim(), provider: provider.value.trim(),
    upstream_account: upstream.value.trim(), created_after: localToIso(after.value), created_before: localToIso(before.value),
  });
  const table = pagedTable(list, {
    label: "Tasks",
    columns: ["Task", "Status", "Account", "Model", "Provider", "Upstream", "Credits", "Created"],
    empty: "No tasks match.",
    fetchPage: (cursor) => {
      const q = new URLSearchParams({ limit: "25" });
      for (const [k, v] of Object.entries(values())) if (v) q.set(k, v);
      if (cursor) q.set("starting_after", cursor);
      return get(`/generations?${q}`);
    },
    row: (t) => h("tr", {},
      h("td", {}, link(`/admin/tasks/${t.id}`, t.id)),
      h("td", {}, statusBadge(t.status), t.error ? h("div", { class: "muted small-id" }, t.error) : null),
      h("td", {}, link(`/admin/accounts/${t.account}`, h("code", {}, t.account))),
      h("td", {}, t.model),
      h("td", {}, t.provider),
      h("td", {}, t.upstream_account || "—"),
      h("td", { class: "num" }, num(t.credits_reserved)),
      h("td", {}, fmtTime(t.created_at))),
  });
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    keepFilters(values());
    table.reload();
  });
  status.addEventListener("change", () => filters.requestSubmit());
  await table.reload();
}

export async function taskPage(main, { isCurrent }, id) {
  mount(main, h("h1", {}, "Task ", h("code", {}, id)), h("p", { role: "status" }, "Loading…"));
  let t;
  try {
    t = await get(`/generations/${encodeURIComponent(id)}`);
  } catch (e) {
    mount(main, h("h1", {}, "Task ", h("code", {}, id)), errorBox(e));
    return;
  }
  if (!isCurrent()) return;
  const pub = t.public || {};
  const dd = (v) => h("dd", {}, v === null || v === undefined || v === "" ? "—" : v);
  mount(main,
    h("h1", {}, "Task ", h("code", {}, t.id), " ", statusBadge(t.status)),
    h("div", { class: "split" },
      h("section", { class: "card", "aria-label": "Who and what" },
        h("h2", {}, "Who and what"),
        h("dl", { class: "facts" },
          h("dt", {}, "Account"), h("dd", {}, link(`/admin/accounts/${t.account}`, h("code", {}, t.account))),
          h("dt", {}, "Key"), dd(t.key ? h("code", {}, t.key) : null),
          h("dt", {}, "Model"), dd(t.model),
          h("dt", {}, "Prompt"), h("dd", {}, h("p", { class: "prompt" }, t.prompt)),
          h("dt", {}, "Params"), dd(Object.entries(t.params).filter(([k]) => k !== "referenceMediaItems")
            .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(" · ")),
          h("dt", {}, "Created"), dd(fmtTime(t.created_at)),
          h("dt", {}, "Updated"), dd(fmtTime(t.updated_at)))),
      h("section", { class: "card", "aria-label": "Upstream" },
        h("h2", {}, "Upstream"),
        h("dl", { class: "facts" },
          h("dt", {}, "Provider"), dd(t.provider),
          h("dt", {}, "Upstream account"), dd(t.upstream_account),
          h("dt", {}, "Upstream task id"), dd(t.upstream_task_id ? h("code", {}, t.upstream_task_id) : null),
          h("dt", {}, "Error"), dd(t.error)),
        t.upstream ? h("details", {}, h("summary", {}, "Saved provider state"), h("pre", {}, JSON.stringify(t.upstream, null, 2))) : null)),
    h("section", { class: "card", "aria-label": "Timeline" },
      h("h2", {}, "Timeline"),
      h("ol", { class: "timeline" }, t.timeline.map((s) => h("li", {},
        h("strong", {}, s.what), " ", h("time", { datetime: s.at }, fmtTime(s.at)))))),
    h("section", { class: "card", "aria-label": "Money" },
      h("h2", {}, "Money"),
      h("p", {}, `Reserved ${fmtCredits(t.credits_reserved)}, charged ${fmtCredits(t.credits_charged)}, refunded ${fmtCredits(t.credits_refunded)}.`),
      h("div", { class: "table-wrap" }, h("table", { "aria-label": "Ledger rows of this task" },
        h("thead", {}, h("tr", {}, ["Time", "Kind", "Amount", "Balance after", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, t.ledger.map((l) => h("tr", {},
          h("td", {}, fmtTime(l.created_at)),
          h("td", {}, h("span", { class: `kind k-${l.kind}` }, l.kind)),
          h("td", { class: `num ${l.amount < 0 ? "neg" : "pos"}` }, `${l.amount > 0 ? "+" : ""}${num(l.amount)}`),
          h("td", { class: "num" }, num(l.balance_after)),
          h("td", {}, l.reason))))))),
    h("section", { class: "card", "aria-label": "Webhooks" },
      h("h2", {}, "Webhook events"),
      t.events.length ? h("div", { class: "table-wrap" }, h("table", { "aria-label": "Webhook events" },
        h("thead", {}, h("tr", {}, ["Event", "Type", "Created", "Deliveries"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, t.events.map((e) => h("tr", {},
          h("td", {}, h("code", {}, e.id)),
          h("td", {}, e.type),
          h("td", {}, fmtTime(e.created_at)),
          h("td", {}, e.deliveries.length ? h("ul", { class: "plain" }, e.deliveries.map((d) =>
            h("li", {}, h("code", {}, d.endpoint), " ", statusBadge(d.status), ` ${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`)))
            : "no endpoints")))))) : h("p", { class: "muted" }, "No webhook events (the account has no endpoints, or the task has not ended).")),
    h("section", { class: "card", "aria-label": "Result" },
      h("h2", {}, "Result"),
      t.status === "succeeded" ? resultPlayer(pub)
        : t.status === "failed" ? h("div", { class: "error-box", role: "alert" }, h("strong", {}, pub.error ? pub.error.code : "failed"), ": ", pub.error ? pub.error.message : "")
          : h("p", {}, "Not ended yet. ", h("button", { type: "button", class: "secondary small", onclick: () => taskPage(main, { isCurrent }, id) }, "Reload"))));
}
