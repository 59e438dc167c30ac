// API keys: the account's own keys (GET/POST /api/v1/keys, DELETE /api/v1/keys/{id}).
// A new key's secret is shown once, with a copy button; revoking asks first.

import { h, mount, field, fmtTime, errorBox, copyButton } from "../dom.js";
import { get, post, api, idemKey, session } from "../api.js";
import { showApiError } from "../forms.js";

const SCOPES = ["models:read", "generations:create", "generations:read", "files:create", "files:read",
  "credits:read", "webhooks:manage", "keys:manage"];

export async function keysPage(main) {
  const list = h("div", { class: "list" });
  const created = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card", novalidate: true });
  mount(main, h("h1", {}, "API keys"), created, form, h("h2", {}, "Keys of this account"), list);

  const name = h("input", { type: "text", name: "name", maxlength: 100, required: true });
  const expires = h("input", { type: "date", name: "expires" });
  const boxes = SCOPES.map((s) => h("input", { type: "checkbox", name: "scope", value: s, checked: true }));
  const scopesSet = h("fieldset", { class: "field scopes", dataset: { field: "scopes" } },
    h("legend", {}, "Scopes"),
    boxes.map((b, i) => h("label", { class: "check" }, b, " ", SCOPES[i])),
    h("p", { class: "field-error", role: "alert", hidden: true }));
  scopesSet.showError = (m) => { const p = scopesSet.querySelector(".field-error"); p.textContent = m; p.hidden = false; };
  scopesSet.clearError = () => { const p = scopesSet.querySelector(".field-error"); p.textContent = ""; p.hidden = true; };
  const formError = h("div", { class: "form-error" });
  mount(form, h("h2", {}, "Create a key"),
    field("Key name", name, { field: "name" }),
    scopesSet,
    field("Expires on (optional)", expires, { field: "expires_at", hint: "Leave empty for no expiry (or this key's own)." }),
    formError,
    h("button", { type: "submit" }, "Create key"));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError.replaceChildren();
    for (const f of form.querySelectorAll(".field")) f.clearError && f.clearError();
    const body = { name: name.value, scopes: boxes.filter((b) => b.checked).map((b) => b.value) };
    if (expires.value) body.expires_at = new Date(`${expires.value}T23:59:59Z`).toISOString();
    try {
      const k = await post("/keys", body, { headers: { "Idempotency-Key": idemKey() } });
      name.value = "";
      mount(created, h("section", { class: "card secret", "aria-label": "New key" },
        h("h2", {}, "Key created: ", k.name),
        h("p", {}, "Copy it now: this is the only time the full key is shown."),
        h("p", {}, h("code", { class: "secret-value" }, k.secret), " ", copyButton(k.secret))));
      load();
    } catch (err) {
      // scopes[2] → the scopes fieldset.
      showApiError(err, form, formError);
    }
  });

  const load = async () => {
    let page;
    try {
      page = await get("/keys");
    } catch (e) {
      mount(list, errorBox(e));
      return;
    }
    const mine = (session.key() || "").slice(0, 16);
    mount(list, h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "Prefix", "Scopes", "Created", "Last used", "Expires", "Status", ""].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, page.data.map((k) => row(k, k.prefix === mine, load))))));
  };
  await load();
}

function row(k, isMine, reload) {
  const actions = h("td", {});
  const status = k.revoked_at ? `revoked ${fmtTime(k.revoked_at)}` : "active";
  if (!k.revoked_at) {
    const revoke = h("button", { type: "button", class: "danger" }, "Revoke");
    revoke.setAttribute("aria-label", `Revoke ${k.name} (${k.prefix})`);
    revoke.addEventListener("click", () => {
      const confirm = h("button", { type: "button", class: "danger" }, "Confirm revoke");
      const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
      const msg = h("span", { role: "alert" },
        `Revoke ${k.name}? Programs using it stop working${isMine ? " (this is the key you signed in with)" : ""}. `);
      mount(actions, msg, confirm, " ", cancel);
      confirm.focus();
      cancel.addEventListener("click", () => { mount(actions, revoke); revoke.focus(); });
      confirm.addEventListener("click", async () => {
        try {
          await api("DELETE", `/keys/${encodeURIComponent(k.id)}`);
          reload();
        } catch (e) {
          mount(actions, errorBox(e));
        }
      });
    });
    actions.append(revoke);
  }
  return h("tr", { dataset: { key: k.id } },
    h("td", {}, k.name, isMine ? h("span", { class: "badge" }, "this key") : null),
    h("td", {}, h("code", {}, k.prefix)),
    h("td", { class: "scopes-cell" }, k.scopes.join(", ")),
    h("td", {}, fmtTime(k.created_at)),
    h("td", {}, k.last_used_at ? fmtTime(k.last_used_at) : "never"),
    h("td", {}, k.expires_at ? fmtTime(k.expires_at) : "never"),
    h("td", {}, status),
    actions);
}
