// The operator console's client of /api/admin/v1 (operator keys, kept apart from the
// account console's key), and who is signed in: the role decides which controls exist.

import { makeClient } from "../../js/api.js";

export const client = makeClient("/api/admin/v1", "gengate.operatorKey");
export const { session, get, post, patch, del } = client;

/** The signed-in operator (`GET /me`), fetched once per sign-in. */
export const me = {
  name: null,
  role: null,
  get canWrite() { return this.role === "admin"; },
  set(m) { this.name = m ? m.name : null; this.role = m ? m.role : null; },
};
