// Overview: the business at a glance. Tasks per hour by outcome and the open tasks
// over the last 24 hours, credits consumed and the success rate per day over 30 days,
// create-to-result times, and provider health, from /overview, /usage and /providers.

import { h, mount, errorBox, fmtCredits } from "../../../js/dom.js";
import { get } from "../client.js";
import { chart, hours, days, byBucket, COLORS } from "../charts.js";
import { healthBadge, link, num, fmtMs } from "../ui.js";

export async function overviewPage(main, { isCurrent }) {
  const sandbox = h("input", { type: "checkbox", name: "include_sandbox" });
  const body = h("div", {});
  mount(main, h("h1", {}, "Overview"),
    h("div", { class: "toolbar-row" },
      h("label", { class: "check" }, sandbox, " Include sandbox accounts in tasks and credits"),
      h("button", { type: "button", class: "secondary small", onclick: () => load() }, "Refresh")),
    body);
  sandbox.addEventListener("change", () => load());
  const load = async () => {
    mount(body, h("p", { role: "status" }, "Loading…"));
    const now = Date.now();
    const dayAgo = now - 24 * 3600000;
    const monthAgo = Math.floor((now - 29 * 86400000) / 86400000) * 86400000;
    const inc = sandbox.checked ? "&include_sandbox=true" : "";
    const iso = (ms) => encodeURIComponent(new Date(ms).toISOString());
    let ov, hourly, daily, cluster;
    try {
      [ov, hourly, daily, cluster] = await Promise.all([
        get("/overview?hours=24"),
        get(`/usage?group_by=hour&from=${iso(Math.floor(dayAgo / 3600000) * 3600000)}&to=${iso(now)}${inc}`),
        get(`/usage?group_by=day&from=${iso(monthAgo)}&to=${iso(now)}${inc}`),
        get("/providers"),
      ]);
    } catch (e) {
      mount(body, errorBox(e));
      return;
    }
    if (!isCurrent()) return;
    const hx = hours(dayAgo, now);
    const hr = byBucket(hourly.data);
    const at = (m, x, k) => (m.get(x) ? m.get(x)[k] : 0);
    const running = hx.map((x) => at(hr, x, "tasks") - at(hr, x, "succeeded") - at(hr, x, "failed"));
    const dx = days(monthAgo, now);
    const dr = byBucket(daily.data);
    const total = (rows, k) => rows.reduce((s, r) => s + r[k], 0);
    const done24 = total(hourly.data, "succeeded") + total(hourly.data, "failed");
    const rate = (s, f) => (s + f ? Math.round((1000 * s) / (s + f)) / 10 : null);
    const lx = ov.hourly.map((r) => Date.parse(r.hour) / 1000);
    const unhealthy = cluster.providers.flatMap((p) => [p, ...(p.accounts || [])]).filter((x) => x.healthy === false);
    mount(body,
      h("section", { class: "stats", "aria-label": "Now and the last 24 hours" },
        stat("Queued now", num(ov.queued)),
        stat("Processing now", num(ov.processing)),
        stat("Tasks, 24 h", num(total(hourly.data, "tasks"))),
        stat("Success rate, 24 h", done24 ? `${rate(total(hourly.data, "succeeded"), total(hourly.data, "failed"))} %` : "—"),
        stat("Credits consumed, 24 h", num(total(hourly.data, "credits_charged") - total(hourly.data, "credits_refunded"))),
        stat("Create → result, p50 / p95", ov.latency ? `${fmtMs(ov.latency.p50_ms)} / ${fmtMs(ov.latency.p95_ms)}` : "—"),
        stat("Providers", unhealthy.length ? `${unhealthy.length} unhealthy` : "all healthy", unhealthy.length ? "bad" : "good")),
      h("div", { class: "charts" },
        chart({
          title: "Tasks per hour by outcome",
          caption: "By the hour they were created; running = not ended yet.",
          x: hx,
          series: [
            { label: "succeeded", values: hx.map((x) => at(hr, x, "succeeded")), color: COLORS.green, bars: true },
            { label: "failed", values: hx.map((x) => at(hr, x, "failed")), color: COLORS.red, bars: true },
            { label: "running", values: running, color: COLORS.amber, bars: true },
          ],
          stacked: true,
          counts: true,
          fmt: num,
        }),
        chart({
          title: "Open tasks (queued + processing)",
          caption: "At the end of each hour, counted back from now; every account.",
          x: ov.open_tasks.map((p) => Date.parse(p.at) / 1000),
          series: [{ label: "open tasks", values: ov.open_tasks.map((p) => p.open), color: COLORS.blue }],
          counts: true,
          fmt: num,
        }),
        chart({
          title: "Credits consumed per day",
          caption: "Reserves minus refunds, as the ledger has them (UTC days).",
          x: dx,
          series: [{ label: "credits", values: dx.map((x) => at(dr, x, "credits_charged") - at(dr, x, "credits_refunded")), color: COLORS.blue, bars: true }],
          counts: true,
          fmt: num,
        }),
        chart({
          title: "Success rate per day",
          caption: "Succeeded out of the tasks that ended, by the day they were created.",
          x: dx,
          series: [{ label: "success rate %", values: dx.map((x) => rate(at(dr, x, "succeeded"), at(dr, x, "failed"))), color: COLORS.green }],
          fmt: (v) => `${v} %`,
        }),
        chart({
          title: "Create → result time per hour",
          caption: `Succeeded tasks by the hour they ended; from the newest ${num(ov.sampled)} of the last 24 hours; every account.`,
          x: lx,
          series: [
            { label: "p50", values: ov.hourly.map((r) => r.p50_ms), color: COLORS.blue },
            { label: "p95", values: ov.hourly.map((r) => r.p95_ms), color: COLORS.red },
          ],
          fmt: fmtMs,
        })),
      h("section", { class: "card", "aria-label": "Provider health" },
        h("h2", {}, "Providers"),
        h("ul", { class: "health" }, cluster.providers.map((p) => h("li", {},
          h("strong", {}, p.name), " ", healthBadge(p.healthy !== false),
          p.reason ? h("span", { class: "muted" }, ` ${p.reason}`) : null,
          p.accounts ? h("ul", {}, p.accounts.map((a) => h("li", {},
            a.name, " ", healthBadge(a.healthy !== false), " ",
            h("span", { class: "muted" }, `${a.state || ""} · ${num(a.in_flight || 0)} in flight`)))) : null))),
        h("p", {}, `${cluster.nodes.filter((n) => n.live).length} of ${cluster.nodes.length} nodes live. `,
          link("/admin/providers", "All providers and nodes"))),
      ov.by_provider.length ? h("section", { class: "card", "aria-label": "Create to result by provider" },
        h("h2", {}, "Create → result by provider, 24 h"),
        h("div", { class: "table-wrap" }, h("table", {},
          h("thead", {}, h("tr", {}, ["Provider", "Succeeded", "p50", "p95"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, ov.by_provider.map((p) => h("tr", {},
            h("td", {}, p.provider), h("td", { class: "num" }, num(p.tasks)),
            h("td", { class: "num" }, fmtMs(p.p50_ms)), h("td", { class: "num" }, fmtMs(p.p95_ms)))))))) : null,
      h("p", { class: "muted" }, "Credits: ", fmtCredits(total(daily.data, "credits_charged") - total(daily.data, "credits_refunded")),
        " consumed in the last 30 days. ", link("/admin/usage", "Usage and CSV export")));
  };
  await load();
}

function stat(label, value, tone) {
  return h("div", { class: `stat card${tone ? ` ${tone}` : ""}` }, h("p", { class: "stat-label" }, label), h("p", { class: "stat-value" }, value));
}
