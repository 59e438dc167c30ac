// Providers: the whole cluster's view, merged from every node's report (the same from
// any node): each provider and Kling account with health, reason, in flight, slots,
// submits and failures by class; each node with its role and last heartbeat.
// Refreshes every 5 seconds while the page is open.

import { h, mount, fmtTime, errorBox } from "../../../js/dom.js";
import { get } from "../client.js";
import { badge, healthBadge, num } from "../ui.js";

export async function providersPage(main, { isCurrent }) {
  const body = h("div", {});
  const stamp = h("p", { class: "muted", "aria-live": "off" });
  mount(main, h("h1", {}, "Providers"), stamp, body);
  const load = async () => {
    let c;
    try {
      c = await get("/providers");
    } catch (e) {
      mount(body, errorBox(e));
      return;
    }
    stamp.textContent = `As of ${new Date().toLocaleTimeString()}; refreshes every 5 seconds.`;
    mount(body,
      c.providers.map((p) => h("section", { class: "card", "aria-label": `Provider ${p.name}` },
        h("h2", {}, p.name, " ", healthBadge(p.healthy !== false)),
        p.healthy === false ? h("p", {}, `${p.reason || "unhealthy"} (seen by ${p.seen_by || "?"}${p.since ? `, since ${fmtTime(p.since)}` : ""})`) : null,
        p.accounts ? h("div", { class: "table-wrap" }, h("table", { "aria-label": `${p.name} accounts` },
          h("thead", {}, h("tr", {}, ["Account", "Health", "State", "Reason", "In flight", "Slots", "Submits", "Failures"].map((x) => h("th", { scope: "col" }, x)))),
          h("tbody", {}, p.accounts.map((a) => h("tr", {},
            h("td", {}, a.name),
            h("td", {}, healthBadge(a.healthy !== false), a.seen_by && a.healthy === false ? h("div", { class: "muted small-id" }, `seen by ${a.seen_by}`) : null),
            h("td", {}, a.state || "—"),
            h("td", {}, a.reason || "—"),
            h("td", { class: "num" }, num(a.in_flight || 0)),
            h("td", { class: "num" }, a.slots ?? "—"),
            h("td", { class: "num" }, num(a.submits || 0)),
            h("td", {}, Object.entries(a.failures || {}).map(([k, n]) => `${k}: ${n}`).join(", ") || "none")))))) : null)),
      h("section", { class: "card", "aria-label": "Nodes" },
        h("h2", {}, "Nodes"),
        h("div", { class: "table-wrap" }, h("table", { "aria-label": "Nodes" },
          h("thead", {}, h("tr", {}, ["Node", "Role", "Live", "Last heartbeat"].map((x) => h("th", { scope: "col" }, x)))),
          h("tbody", {}, c.nodes.map((n) => h("tr", {},
            h("td", {}, h("code", {}, n.id)),
            h("td", {}, n.role),
            h("td", {}, n.live ? badge("live", "succeeded") : badge("stale", "failed")),
            h("td", {}, fmtTime(n.last_heartbeat)))))))));
  };
  await load();
  const timer = setInterval(() => {
    if (!main.isConnected || !isCurrent()) clearInterval(timer);
    else load();
  }, 5000);
}
