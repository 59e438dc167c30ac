// Pieces the operator console's pages share: paged tables, filters kept in the
// address bar, two-step confirmations, badges.

import { h, mount, errorBox } from "../../js/dom.js";

export function badge(text, kind = text) {
  return h("span", { class: `status-badge s-${kind}` }, text);
}

export function healthBadge(healthy) {
  return healthy ? badge("healthy", "succeeded") : badge("unhealthy", "failed");
}

/** A link inside the console (no reload). */
export function link(href, ...children) {
  return h("a", { href, "data-nav": "" }, ...children);
}

/** The query string's value of `name`, or "". */
export function param(name) {
  return new URLSearchParams(location.search).get(name) || "";
}

/** Writes the filters into the address bar (replacing the entry), so a reload or a shared link keeps them. */
export function keepFilters(values) {
  const u = new URL(location.href);
  for (const [k, v] of Object.entries(values)) {
    if (v) u.searchParams.set(k, v); else u.searchParams.delete(k);
  }
  history.replaceState({}, "", u);
}

/**
 * A table over a cursor-paged list endpoint. `fetchPage(cursor)` answers
 * `{data, has_more}`; `row(item)` makes a `<tr>`. Returns `{reload}`.
 */
export function pagedTable(container, { columns, fetchPage, row, empty, label, cursorOf = (x) => x.id }) {
  const stack = [];
  let cursor = null;
  const load = async () => {
    mount(container, h("p", { role: "status" }, "Loading…"));
    let page;
    try {
      page = await fetchPage(cursor);
    } catch (e) {
      mount(container, errorBox(e));
      return;
    }
    if (!page.data.length && !stack.length) {
      mount(container, h("p", { class: "muted" }, empty));
      return;
    }
    const newer = h("button", { type: "button", class: "secondary", disabled: stack.length === 0 }, "Newer");
    const older = h("button", { type: "button", class: "secondary", disabled: !page.has_more }, "Older");
    newer.addEventListener("click", () => { cursor = stack.pop() ?? null; load(); });
    older.addEventListener("click", () => { stack.push(cursor); cursor = cursorOf(page.data[page.data.length - 1]); load(); });
    mount(container,
      h("div", { class: "table-wrap" }, h("table", { "aria-label": label },
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, page.data.map(row)))),
      h("div", { class: "pager" }, newer, older));
  };
  return { reload: () => { stack.length = 0; cursor = null; return load(); } };
}

/**
 * A button that asks before it acts: the first press turns it into "Confirm …"
 * and a Cancel; only the confirmation runs `action`.
 */
export function confirmButton(label, confirmLabel, action, { danger = true } = {}) {
  const wrap = h("span", { class: "confirm" });
  const first = h("button", { type: "button", class: danger ? "danger small" : "secondary small" }, label);
  const yes = h("button", { type: "button", class: "danger small" }, confirmLabel);
  const no = h("button", { type: "button", class: "secondary small" }, "Cancel");
  const reset = () => { mount(wrap, first); first.focus(); };
  first.addEventListener("click", () => { mount(wrap, yes, " ", no); yes.focus(); });
  no.addEventListener("click", reset);
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    no.disabled = true;
    try {
      await action();
    } finally {
      if (wrap.isConnected) reset();
    }
  });
  return mount(wrap, first);
}

/** A `<select>` of `[value, label]` pairs with `current` chosen. */
export function select(name, options, current) {
  return h("select", { name }, options.map(([v, l]) =>
    h("option", { value: v, selected: v === current ? "" : undefined }, l)));
}

/** A number with thousands separators. */
export function num(n) {
  return Number(n).toLocaleString();
}

/** Milliseconds as "850 ms", "12.4 s" or "3.1 min". */
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

/** "2026-12-05T10:00" of a date input's value in UTC, as RFC 3339, or "". */
export function dayStartUtc(value) {
  return value ? `${value}T00:00:00Z` : "";
}
