import { h, field } from "../../../js/dom.js";
import { get, session } from "../client.js";

/** Sign in with an operator key. It is kept in sessionStorage only (this tab, until it closes or you sign out). */
export function signInPage({ error, onSignedIn }) {
  const input = h("input", { type: "password", name: "operator-key", autocomplete: "off", spellcheck: "false", required: true });
  const keyField = field("Operator key", input, { hint: "An operator key starts with gg_op_ (the first start prints one; `gengate operators create` makes more). It stays in this browser tab only and is sent only to this server." });
  const status = h("p", { class: "status", role: "status" });
  const form = h("form", { class: "card signin", novalidate: true },
    h("h1", {}, "Sign in to the gengate operator console"),
    keyField,
    h("button", { type: "submit" }, "Sign in"),
    status);
  if (error) keyField.showError(messageFor(error));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    keyField.clearError();
    const key = input.value.trim();
    if (!key) {
      keyField.showError("Enter an operator key.");
      input.focus();
      return;
    }
    session.set(key);
    status.textContent = "Checking the key…";
    let who;
    try {
      who = await get("/me");
    } catch (err) {
      session.clear();
      status.textContent = "";
      keyField.showError(messageFor(err));
      input.focus();
      return;
    }
    input.value = "";
    onSignedIn(who);
  });
  queueMicrotask(() => input.focus());
  return h("main", { id: "main" }, form);
}

function messageFor(err) {
  switch (err.code) {
    case "operator_key_invalid": return `That is not a valid operator key: ${err.message}.`;
    case "operator_key_revoked": return "That operator key was revoked. Sign in with another key.";
    case "operator_key_expired": return "That operator key has expired. Sign in with another key.";
    default: return `${err.code || "error"}: ${err.message || err}`;
  }
}
