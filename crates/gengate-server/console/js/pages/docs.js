// The API reference: /api/v1/openapi.json rendered by hand (no vendored
// renderer, no inline script or style, so the strict CSP holds).

import { h, mount, errorBox } from "../dom.js";

const METHODS = ["get", "post", "put", "patch", "delete"];

export async function docsPage(main) {
  mount(main, h("h1", {}, "API reference"), h("p", { role: "status" }, "Loading the OpenAPI document…"));
  let doc;
  try {
    const r = await fetch("/api/v1/openapi.json");
    doc = await r.json();
  } catch (e) {
    mount(main, h("h1", {}, "API reference"), errorBox(e));
    return;
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const m of METHODS) {
      const op = item[m];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([m, path, op]);
    }
  }
  const anchor = (m, p) => `op-${m}-${p.replace(/[^a-zA-Z0-9]+/g, "-")}`;
  mount(main,
    h("h1", {}, doc.info ? doc.info.title : "API reference"),
    h("p", {}, doc.info && doc.info.description),
    h("section", { class: "card", "aria-label": "Authentication" },
      h("h2", {}, "Authentication"),
      h("p", {}, "Every call except the catalog and this document needs an API key, sent in the Authorization header:"),
      h("pre", {}, h("code", {}, "Authorization: Bearer gg_live_…")),
      h("p", {}, "Each endpoint needs one scope (listed with it). A missing or bad key answers 401 (api_key_missing, api_key_invalid, api_key_revoked, api_key_expired); a key without the scope answers 403 api_scope_denied. Every POST takes an optional Idempotency-Key header: the same key with the same request replays the first answer."),
      h("p", {}, "Errors share one envelope: ", h("code", {}, '{"error": {"code", "message", "requestId", "details": [{"field", "issue", "message"}]}}'), ".")),
    h("nav", { class: "toc", "aria-label": "Endpoints" },
      [...byTag].map(([tag, ops]) => h("div", {}, h("h2", {}, tag),
        h("ul", {}, ops.map(([m, p]) => h("li", {}, h("a", { href: `#${anchor(m, p)}` }, h("span", { class: `verb v-${m}` }, m.toUpperCase()), " ", p))))))),
    [...byTag].map(([tag, ops]) => h("section", { "aria-label": tag },
      h("h2", { class: "tag" }, tag),
      ops.map(([m, p, op]) => operation(m, p, op, schemas, anchor(m, p))))),
    h("section", {}, h("h2", {}, "Schemas"),
      Object.entries(schemas).map(([name, s]) => h("details", { class: "schema", id: `schema-${name}` },
        h("summary", {}, name), schemaView(s, schemas, 0)))));
}

function operation(method, path, op, schemas, id) {
  const params = op.parameters || [];
  const scope = op.security && op.security.length ? "API key" : "public";
  return h("article", { class: "op card", id },
    h("h3", {}, h("span", { class: `verb v-${method}` }, method.toUpperCase()), " ", h("code", {}, path)),
    h("p", { class: "muted" }, `Authentication: ${scope}`),
    op.summary ? h("p", {}, op.summary) : null,
    op.description && op.description !== op.summary ? h("p", {}, op.description) : null,
    params.length ? [h("h4", {}, "Parameters"), h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "In", "Required", "Description"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, params.map((p) => h("tr", {},
        h("td", {}, h("code", {}, p.name)), h("td", {}, p.in), h("td", {}, p.required ? "yes" : "no"),
        h("td", {}, p.description || typeLabel(p.schema, schemas)))))))] : null,
    op.requestBody ? [h("h4", {}, "Request body"), bodyView(op.requestBody.content, schemas)] : null,
    h("h4", {}, "Responses"),
    h("ul", { class: "responses" }, Object.entries(op.responses || {}).map(([code, r]) =>
      h("li", {}, h("strong", {}, code), " ", r.description || "",
        r.content ? bodyView(r.content, schemas) : null))));
}

function bodyView(content, schemas) {
  return Object.entries(content || {}).map(([type, c]) => h("div", { class: "body" },
    h("span", { class: "muted" }, type, " "), c.schema ? schemaView(c.schema, schemas, 0) : null));
}

function refName(s) {
  return s && s.$ref ? s.$ref.split("/").pop() : null;
}

function typeLabel(s, schemas) {
  if (!s) return "";
  const r = refName(s);
  if (r) return r;
  if (s.type === "array") return `array of ${typeLabel(s.items, schemas)}`;
  const t = Array.isArray(s.type) ? s.type.join(" | ") : s.type || (s.oneOf ? "one of" : "object");
  return s.enum ? `${t}: ${s.enum.join(" | ")}` : t;
}

/** A schema as a nested list of fields; $refs link to the Schemas section. */
function schemaView(s, schemas, depth) {
  const r = refName(s);
  if (r) return h("a", { href: `#schema-${r}` }, r);
  if (!s || depth > 4) return h("span", {}, typeLabel(s, schemas));
  if (s.type === "array") return h("span", {}, "array of ", schemaView(s.items, schemas, depth + 1));
  const alts = s.oneOf || s.anyOf || s.allOf;
  if (alts) return h("span", {}, s.allOf ? "all of " : "one of ", alts.map((a, i) => [i ? ", " : "", schemaView(a, schemas, depth + 1)]));
  if (!s.properties) return h("span", {}, typeLabel(s, schemas), s.description ? ` — ${s.description}` : "");
  const required = new Set(s.required || []);
  return h("ul", { class: "fields" }, Object.entries(s.properties).map(([name, p]) => h("li", {},
    h("code", {}, name), required.has(name) ? h("span", { class: "req" }, " required") : null, " ",
    h("span", { class: "muted" }, typeLabel(p, schemas)),
    p.description ? ` — ${p.description}` : "",
    p.properties || (p.type === "array" && p.items && p.items.properties) ? schemaView(p, schemas, depth + 1) : null)));
}
