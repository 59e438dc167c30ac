import { h, field } from "../dom.js";
import { get, session, ApiError } from "../api.js";

/** Sign in with an API key. It is kept in sessionStorage only (this tab, until it closes or you sign out). */
export function signInPage({ error, onSignedIn }) {
  const input = h("input", { type: "password", name: "api-key", autocomplete: "off", spellcheck: "false", required: true });
  const keyField = field("API key", input, { hint: "Your key starts with gg_live_ or gg_test_. It stays in this browser tab only and is sent only to this server." });
  const status = h("p", { class: "status", role: "status" });
  const form = h("form", { class: "card signin", novalidate: true },
    h("h1", {}, "Sign in to the gengate console"),
    keyField,
    h("button", { type: "submit" }, "Sign in"),
    status);
  if (error) keyField.showError(messageFor(error));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    keyField.clearError();
    const key = input.value.trim();
    if (!key) {
      keyField.showError("Enter an API key.");
      input.focus();
      return;
    }
    session.set(key);
    status.textContent = "Checking the key…";
    let credits = null;
    try {
      credits = await get("/credits");
    } catch (err) {
      // A key without credits:read is still a key; the pages it cannot use say so.
      if (!(err instanceof ApiError) || err.status !== 403) {
        session.clear();
        status.textContent = "";
        keyField.showError(messageFor(err));
        input.focus();
        return;
      }
    }
    input.value = "";
    await onSignedIn(credits);
  });
  queueMicrotask(() => input.focus());
  return h("main", { id: "main" }, form);
}

function messageFor(err) {
  switch (err.code) {
    case "api_key_invalid": return "That API key is not valid.";
    case "api_key_revoked": return "That API key was revoked. Sign in with another key.";
    case "api_key_expired": return "That API key has expired. Sign in with another key.";
    default: return `${err.code || "error"}: ${err.message || err}`;
  }
}
