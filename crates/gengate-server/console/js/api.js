// A client of one of this origin's APIs: the account console calls /api/v1 with an
// account API key, the operator console /api/admin/v1 with an operator key. Each key
// lives in sessionStorage under its own name (this tab, until it closes or signs out).

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || (status === 0 ? "network_error" : "http_error");
    this.details = e.details || [];
    this.requestId = e.requestId;
  }
}

/** A fresh Idempotency-Key: a retried click never creates twice. */
export function idemKey() {
  return crypto.randomUUID();
}

/** The client of the API under `base`, signed in with the key kept under `storageKey`. */
export function makeClient(base, storageKey) {
  const session = {
    key() { return sessionStorage.getItem(storageKey); },
    set(k) { sessionStorage.setItem(storageKey, k); },
    clear() { sessionStorage.removeItem(storageKey); },
  };
  let onUnauthorized = () => {};
  const call = async (method, path, { body, headers = {}, signal, raw = false } = {}) => {
    const h = { ...headers };
    const key = session.key();
    if (key) h.Authorization = `Bearer ${key}`;
    let payload;
    if (body !== undefined) {
      h["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(`${base}${path}`, { method, headers: h, body: payload, signal, cache: "no-store" });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, { error: { code: "network_error", message: "the server cannot be reached" } });
    }
    if (raw && resp.ok) return resp;
    const text = await resp.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = null; }
    if (!resp.ok) {
      const err = new ApiError(resp.status, json);
      if (resp.status === 401 && key) onUnauthorized(err);
      throw err;
    }
    return json;
  };
  return {
    session,
    api: call,
    get: (path, opts) => call("GET", path, opts),
    post: (path, body, opts = {}) => call("POST", path, { ...opts, body }),
    patch: (path, body, opts = {}) => call("PATCH", path, { ...opts, body }),
    del: (path, opts) => call("DELETE", path, opts),
    setUnauthorizedHandler(f) { onUnauthorized = f; },
  };
}

const account = makeClient("/api/v1", "gengate.apiKey");
export const { session, api, get, post, setUnauthorizedHandler } = account;

/** Multipart upload with progress (fetch cannot report upload progress). */
export function upload(form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/files");
    xhr.setRequestHeader("Authorization", `Bearer ${session.key()}`);
    xhr.setRequestHeader("Idempotency-Key", idemKey());
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      let json = null;
      try { json = JSON.parse(xhr.responseText); } catch { json = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(json);
      else reject(new ApiError(xhr.status, json));
    });
    xhr.addEventListener("error", () =>
      reject(new ApiError(0, { error: { code: "network_error", message: "the upload did not reach the server" } })));
    xhr.send(form);
  });
}

/**
 * Media links are absolute URLs on the server's public base URL; the console
 * plays them through its own origin (same path and signature), so the strict
 * Content-Security-Policy (media from 'self' only) holds whatever host name
 * the browser used.
 */
export function sameOrigin(url) {
  try {
    const u = new URL(url, location.origin);
    if (u.pathname.startsWith("/media/")) return u.pathname + u.search;
  } catch { /* fall through */ }
  return url;
}
