import { signInForm } from "../signin_form.js";
import { get, session, ApiError } from "../api.js";

/** Sign in with an API key. It is kept in sessionStorage only (this tab, until it closes or you sign out). */
export function signInPage({ error, onSignedIn }) {
  return signInForm({
    title: "Sign in to the gengate console",
    label: "API key",
    hint: "Your key starts with gg_live_ or gg_test_. It stays in this browser tab only and is sent only to this server.",
    empty: "Enter an API key.",
    session,
    error,
    messageFor,
    onSignedIn,
    check: async () => {
      try {
        return await get("/credits");
      } catch (err) {
        // A key without credits:read is still a key; the pages it cannot use say so.
        if (err instanceof ApiError && err.status === 403) return null;
        throw err;
      }
    },
  });
}

function messageFor(err) {
  switch (err.code) {
    case "api_key_invalid": return "That API key is not valid.";
    case "api_key_revoked": return "That API key was revoked. Sign in with another key.";
    case "api_key_expired": return "That API key has expired. Sign in with another key.";
    default: return `${err.code || "error"}: ${err.message || err}`;
  }
}
