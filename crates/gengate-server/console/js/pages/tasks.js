// Tasks: the account's generations newest first, filtered by status and paged
// by cursor; and one task's page (its input, timings, credits, result or error).

import { h, mount, field, fmtTime, fmtCredits, errorBox } from "../dom.js";
import { get, sameOrigin } from "../api.js";
import { statusBadge, resultPlayer, followTask } from "./task_view.js";

const STATUSES = ["", "queued", "processing", "succeeded", "failed"];

export async function tasksPage(main) {
  const params = new URLSearchParams(location.search);
  const status = params.get("status") || "";
  const filter = h("select", { name: "status" },
    STATUSES.map((s) => h("option", { value: s, selected: s === status ? "" : undefined }, s || "any")));
  const body = h("div", { class: "list" });
  mount(main, h("h1", {}, "Tasks"),
    h("div", { class: "toolbar" }, field("Status", filter)), body);
  // Cursors of the pages before this one, so "Newer" can go back.
  const stack = [];
  let cursor = null;
  const load = async () => {
    mount(body, h("p", { role: "status" }, "Loading…"));
    const q = new URLSearchParams({ limit: "20" });
    if (filter.value) q.set("status", filter.value);
    if (cursor) q.set("starting_after", cursor);
    let page;
    try {
      page = await get(`/generations?${q}`);
    } catch (e) {
      mount(body, errorBox(e));
      return;
    }
    if (!page.data.length) {
      mount(body, h("p", {}, "No tasks yet. Make one in the ", h("a", { href: "/", "data-nav": "" }, "playground"), "."));
      return;
    }
    const newer = h("button", { type: "button", class: "secondary", disabled: stack.length === 0 }, "Newer");
    const older = h("button", { type: "button", class: "secondary", disabled: !page.has_more }, "Older");
    newer.addEventListener("click", () => { cursor = stack.pop() ?? null; load(); });
    older.addEventListener("click", () => { stack.push(cursor); cursor = page.data[page.data.length - 1].id; load(); });
    mount(body,
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Task", "Status", "Model", "Created", "Credits"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, page.data.map((t) => h("tr", {},
          h("td", {}, h("a", { href: `/tasks/${t.id}`, "data-nav": "" }, t.id)),
          h("td", {}, statusBadge(t.status)),
          h("td", {}, t.model),
          h("td", {}, fmtTime(t.created_at)),
          h("td", { class: "num" }, String(t.status === "failed" ? 0 : t.reserved_credits))))))),
      h("div", { class: "pager" }, newer, older));
  };
  filter.addEventListener("change", () => {
    stack.length = 0;
    cursor = null;
    const u = new URL(location.href);
    if (filter.value) u.searchParams.set("status", filter.value); else u.searchParams.delete("status");
    history.replaceState({}, "", u);
    load();
  });
  await load();
}

export async function taskPage(main, id) {
  mount(main, h("h1", {}, "Task ", id), h("p", { role: "status" }, "Loading…"));
  let task, input;
  try {
    [task, input] = await Promise.all([
      get(`/generations/${encodeURIComponent(id)}`),
      get(`/generations/${encodeURIComponent(id)}/input`),
    ]);
  } catch (e) {
    mount(main, h("h1", {}, "Task ", id), errorBox(e));
    return;
  }
  const statusEl = h("dd", {});
  const updated = h("dd", {});
  const took = h("dd", {});
  const credits = h("dd", {});
  const outcome = h("section", { class: "result", "aria-label": "Outcome" });
  const params = Object.entries(input.params).filter(([k]) => k !== "referenceMediaItems");
  mount(main,
    h("h1", {}, "Task ", h("code", {}, task.id)),
    h("div", { class: "split" },
      h("section", { class: "card", "aria-label": "Request" },
        h("h2", {}, "Request"),
        h("dl", { class: "facts" },
          h("dt", {}, "Model"), h("dd", {}, input.model),
          h("dt", {}, "Prompt"), h("dd", {}, h("p", { class: "prompt" }, input.prompt)),
          params.map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "string" ? v : JSON.stringify(v))]),
          task.client_request_id ? [h("dt", {}, "client_request_id"), h("dd", {}, task.client_request_id)] : null),
        input.references.length ? [h("h3", {}, "References"),
          h("ul", { class: "refs" }, input.references.map((r) => h("li", {},
            h("img", { src: sameOrigin(r.url), alt: `Reference ${r.file_id}` }),
            h("span", {}, `${r.file_id} · ${r.mime_type}${r.width ? ` · ${r.width}×${r.height}` : ""}`))))] : null),
      h("section", { class: "card", "aria-label": "Progress" },
        h("h2", {}, "Progress"),
        h("dl", { class: "facts" },
          h("dt", {}, "Status"), statusEl,
          h("dt", {}, "Created"), h("dd", {}, fmtTime(task.created_at)),
          h("dt", {}, "Updated"), updated,
          h("dt", {}, "Took"), took,
          h("dt", {}, "Credits"), credits),
        outcome)));
  followTask(task, (t) => {
    statusEl.replaceChildren(statusBadge(t.status));
    updated.textContent = fmtTime(t.updated_at);
    const secs = (new Date(t.updated_at) - new Date(t.created_at)) / 1000;
    took.textContent = t.status === "succeeded" || t.status === "failed" ? `${secs.toFixed(1)} s` : "running…";
    credits.textContent = `reserved ${fmtCredits(t.reserved_credits)}, final ${fmtCredits(t.final_credits)}`
      + (t.status === "failed" ? ` (${fmtCredits(t.reserved_credits)} refunded)` : "");
    if (t.status === "succeeded") mount(outcome, resultPlayer(t));
    else if (t.status === "failed") {
      mount(outcome, h("div", { class: "error-box", role: "alert" },
        h("strong", {}, t.error ? t.error.code : "failed"), ": ", t.error ? t.error.message : ""));
    }
  }, (e) => mount(outcome, errorBox(e)), () => !main.isConnected);
}
