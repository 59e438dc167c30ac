// The console is a client of the public API only: every call goes to this
// origin's /api/v1 with the signed-in key in the Authorization header.

const KEY = "gengate.apiKey";

export const session = {
  key() { return sessionStorage.getItem(KEY); },
  set(k) { sessionStorage.setItem(KEY, k); },
  clear() { sessionStorage.removeItem(KEY); },
};

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

let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

export async function api(method, path, { body, headers = {}, signal } = {}) {
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
    resp = await fetch(`/api/v1${path}`, { method, headers: h, body: payload, signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { error: { code: "network_error", message: "the server cannot be reached" } });
  }
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!resp.ok) {
    const err = new ApiError(resp.status, json);
    if (resp.status === 401 && key) onUnauthorized(err);
    throw err;
  }
  return json;
}

export const get = (path, opts) => api("GET", path, opts);
export const post = (path, body, opts = {}) => api("POST", path, { ...opts, body });

/** A fresh Idempotency-Key: a retried click never creates twice. */
export function idemKey() {
  return crypto.randomUUID();
}

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
