import { signInForm } from "../../../js/signin_form.js";
import { get, session } from "../client.js";

/** Sign in with an operator key. It is kept in sessionStorage only (this tab, until it closes or you sign out). */
export function signInPage({ error, onSignedIn }) {
  return signInForm({
    title: "Sign in to the gengate operator console",
    label: "Operator key",
    hint: "An operator key starts with gg_op_ (the first start prints one; `gengate operators create` makes more). It stays in this browser tab only and is sent only to this server.",
    empty: "Enter an operator key.",
    session,
    error,
    messageFor,
    onSignedIn,
    check: () => get("/me"),
  });
}

function messageFor(err) {
  switch (err.code) {
    case "operator_key_invalid": return `That is not a valid operator key: ${err.message}.`;
    case "operator_key_revoked": return "That operator key was revoked. Sign in with another key.";
    case "operator_key_expired": return "That operator key has expired. Sign in with another key.";
    default: return `${err.code || "error"}: ${err.message || err}`;
  }
}
