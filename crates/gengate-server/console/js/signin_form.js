// The sign-in form both consoles use: a key field, checked against the server with
// `check()` before anything else happens. The key goes into `session` (sessionStorage:
// this tab, until it closes or signs out) only while it is being checked and after.

import { h, field } from "./dom.js";

export function signInForm({ title, label, hint, empty, session, check, messageFor, error, onSignedIn }) {
  const input = h("input", { type: "password", name: "key", autocomplete: "off", spellcheck: "false", required: true });
  const keyField = field(label, input, { hint });
  const status = h("p", { class: "status", role: "status" });
  const form = h("form", { class: "card signin", novalidate: true },
    h("h1", {}, title),
    keyField,
    h("button", { type: "submit" }, "Sign in"),
    status);
  if (error) keyField.showError(messageFor(error));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    keyField.clearError();
    const key = input.value.trim();
    if (!key) {
      keyField.showError(empty);
      input.focus();
      return;
    }
    session.set(key);
    status.textContent = "Checking the key…";
    let checked;
    try {
      checked = await check();
    } catch (err) {
      session.clear();
      status.textContent = "";
      keyField.showError(messageFor(err));
      input.focus();
      return;
    }
    input.value = "";
    await onSignedIn(checked);
  });
  queueMicrotask(() => input.focus());
  return h("main", { id: "main" }, form);
}
