// Webhooks: endpoints (create, edit, disable, rotate the secret, send a test,
// delete), each endpoint's delivery attempts, and the account's events.

import { h, mount, field, fmtTime, errorBox, copyButton } from "../dom.js";
import { get, post, api, idemKey } from "../api.js";
import { showApiError } from "../forms.js";

const EVENT_TYPES = ["generation.succeeded", "generation.failed"];

export async function webhooksPage(main) {
  const secretBox = h("div", { "aria-live": "polite" });
  const list = h("div", { class: "endpoints" });
  const events = h("div", { class: "list" });
  const form = endpointForm({
    title: "Add an endpoint",
    submitLabel: "Create endpoint",
    onSubmit: async (body) => {
      const ep = await post("/webhooks", body, { headers: { "Idempotency-Key": idemKey() } });
      showSecret(secretBox, ep, "Endpoint created");
      load();
    },
  });
  mount(main, h("h1", {}, "Webhooks"), secretBox, form,
    h("h2", {}, "Endpoints"), list,
    h("h2", {}, "Events"), events);

  const load = async () => {
    let page;
    try {
      page = await get("/webhooks?limit=100");
    } catch (e) {
      mount(list, errorBox(e));
      return;
    }
    if (!page.data.length) mount(list, h("p", {}, "No endpoints yet."));
    else mount(list, page.data.map((ep) => endpointCard(ep, { reload: load, secretBox, reloadEvents: loadEvents })));
  };
  const loadEvents = async () => {
    let page;
    try {
      page = await get("/webhook-events?limit=20");
    } catch (e) {
      mount(events, errorBox(e));
      return;
    }
    if (!page.data.length) { mount(events, h("p", {}, "No events yet.")); return; }
    mount(events, h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Event", "Type", "Created", "Task"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, page.data.map((ev) => h("tr", {},
        h("td", {}, h("code", {}, ev.id)),
        h("td", {}, ev.type),
        h("td", {}, fmtTime(ev.created_at)),
        h("td", {}, ev.data && ev.data.id && String(ev.data.id).startsWith("task_")
          ? h("a", { href: `/tasks/${ev.data.id}`, "data-nav": "" }, ev.data.id) : "—")))))));
  };
  await Promise.all([load(), loadEvents()]);
}

function showSecret(box, ep, title) {
  mount(box, h("section", { class: "card secret", "aria-label": "Signing secret" },
    h("h2", {}, `${title}: `, ep.name),
    h("p", {}, "The signing secret is shown only now. Your receiver checks each delivery's signature with it."),
    h("p", {}, h("code", { class: "secret-value" }, ep.signing_secret), " ", copyButton(ep.signing_secret))));
}

function endpointForm({ title, submitLabel, initial = {}, onSubmit, onCancel }) {
  const name = h("input", { type: "text", name: "name", maxlength: 100, value: initial.name || "" });
  const url = h("input", { type: "url", name: "url", value: initial.url || "", placeholder: "https://example.com/hooks/gengate" });
  const chosen = initial.event_types || EVENT_TYPES;
  const boxes = EVENT_TYPES.map((t) => h("input", { type: "checkbox", value: t, checked: chosen.includes(t) }));
  const types = h("fieldset", { class: "field", dataset: { field: "event_types" } },
    h("legend", {}, "Event types"),
    boxes.map((b) => h("label", { class: "check" }, b, " ", b.value)),
    h("p", { class: "field-error", role: "alert", hidden: true }));
  types.showError = (m) => { const p = types.querySelector(".field-error"); p.textContent = m; p.hidden = false; };
  types.clearError = () => { const p = types.querySelector(".field-error"); p.textContent = ""; p.hidden = true; };
  const formError = h("div", { class: "form-error" });
  const form = h("form", { class: "card", novalidate: true },
    h("h2", {}, title),
    field("Endpoint name", name, { field: "name" }),
    field("Endpoint URL", url, { field: "url" }),
    types, formError,
    h("div", { class: "buttons" }, h("button", { type: "submit" }, submitLabel),
      onCancel ? h("button", { type: "button", class: "secondary", onclick: onCancel }, "Cancel") : null));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError.replaceChildren();
    for (const f of form.querySelectorAll(".field")) f.clearError && f.clearError();
    try {
      await onSubmit({ name: name.value, url: url.value, event_types: boxes.filter((b) => b.checked).map((b) => b.value) });
      if (!initial.name) { name.value = ""; url.value = ""; }
    } catch (err) {
      showApiError(err, form, formError);
    }
  });
  return form;
}

function endpointCard(ep, { reload, secretBox, reloadEvents }) {
  const card = h("article", { class: "card endpoint", dataset: { endpoint: ep.id }, "aria-label": `Endpoint ${ep.name}` });
  const deliveries = h("div", { class: "deliveries" });
  const note = h("div", { "aria-live": "polite" });
  const act = (label, f, cls = "secondary") => {
    const b = h("button", { type: "button", class: cls }, label);
    b.setAttribute("aria-label", `${label}: ${ep.name}`);
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await f(); } catch (e) { mount(note, errorBox(e)); } finally { b.disabled = false; }
    });
    return b;
  };
  const showDeliveries = async () => {
    const page = await get(`/webhooks/${ep.id}/deliveries?limit=20`);
    if (!page.data.length) { mount(deliveries, h("p", {}, "No delivery attempts yet.")); return; }
    mount(deliveries, h("div", { class: "table-wrap" }, h("table", { class: "attempts" },
      h("caption", {}, "Delivery attempts"),
      h("thead", {}, h("tr", {}, ["Time", "Event", "Attempt", "Status", "Duration", "Error"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, page.data.map((a) => h("tr", {},
        h("td", {}, fmtTime(a.created_at)),
        h("td", {}, a.event_type),
        h("td", { class: "num" }, String(a.attempt)),
        h("td", {}, a.status_code === null ? "no answer" : String(a.status_code)),
        h("td", { class: "num" }, `${a.duration_ms} ms`),
        h("td", {}, a.error || "")))))));
  };
  const buttons = h("div", { class: "buttons" },
    act("Send test", async () => {
      await post(`/webhooks/${ep.id}/test`, undefined, { headers: { "Idempotency-Key": idemKey() } });
      mount(note, h("p", { class: "ok" }, "Test event queued. Its delivery appears below within seconds."));
      // Show the attempt once the dispatcher has made it.
      for (let i = 0; i < 20 && card.isConnected; i += 1) {
        await new Promise((r) => setTimeout(r, 500));
        await showDeliveries();
        if (deliveries.querySelector("tbody tr")) break;
      }
      reloadEvents();
    }),
    act("Deliveries", showDeliveries),
    act("Edit", async () => {
      const form = endpointForm({
        title: `Edit ${ep.name}`, submitLabel: "Save", initial: ep,
        onSubmit: async (body) => { await api("PATCH", `/webhooks/${ep.id}`, { body }); reload(); },
        onCancel: () => form.remove(),
      });
      card.append(form);
      form.querySelector("input").focus();
    }),
    act(ep.status === "active" ? "Disable" : "Enable", async () => {
      await api("PATCH", `/webhooks/${ep.id}`, { body: { status: ep.status === "active" ? "disabled" : "active" } });
      reload();
    }),
    act("Rotate secret", async () => {
      const r = await post(`/webhooks/${ep.id}/rotate-secret`, undefined, { headers: { "Idempotency-Key": idemKey() } });
      showSecret(secretBox, r, "New secret (the old one keeps signing for 24 hours)");
      secretBox.scrollIntoView();
    }),
    act("Delete", async () => {
      await api("DELETE", `/webhooks/${ep.id}`);
      reload();
    }, "danger"));
  mount(card,
    h("h3", {}, ep.name, " ", h("span", { class: `status-badge s-${ep.status}` }, ep.status)),
    h("dl", { class: "facts" },
      h("dt", {}, "URL"), h("dd", {}, h("code", {}, ep.url)),
      h("dt", {}, "Events"), h("dd", {}, ep.event_types.join(", ")),
      h("dt", {}, "Secret"), h("dd", {}, h("code", {}, ep.secret_preview)),
      h("dt", {}, "Last success"), h("dd", {}, fmtTime(ep.last_success_at)),
      h("dt", {}, "Last failure"), h("dd", {}, fmtTime(ep.last_failure_at)),
      h("dt", {}, "Failures in a row"), h("dd", {}, String(ep.failure_count))),
    buttons, note, deliveries);
  return card;
}
