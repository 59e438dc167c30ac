// Building the page. Every piece of text goes in through textContent (the
// `h` helper never parses markup), so a prompt, a name or an error message
// from the API is shown as the characters it is and can never run.

/** h("p", {class: "x", onclick: f}, "text", child, [more]) → Element */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k in el && typeof v !== "string") {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled control with a slot for its field error (aria-describedby). */
export function field(label, control, { field: name, hint } = {}) {
  const id = control.id || uid("f");
  control.id = id;
  const err = h("p", { class: "field-error", id: `${id}-error`, role: "alert", hidden: true });
  const hintEl = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  control.setAttribute("aria-describedby", [hintEl && hintEl.id, err.id].filter(Boolean).join(" "));
  const wrap = h("div", { class: "field", dataset: name ? { field: name } : undefined },
    h("label", { for: id }, label), control, hintEl, err);
  wrap.showError = (msg) => {
    err.textContent = msg;
    err.hidden = false;
    control.setAttribute("aria-invalid", "true");
  };
  wrap.clearError = () => {
    err.textContent = "";
    err.hidden = true;
    control.removeAttribute("aria-invalid");
  };
  return wrap;
}

export function fmtTime(s) {
  if (!s) return "—";
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : d.toLocaleString();
}

export function fmtCredits(n) {
  return `${Number(n).toLocaleString()} credit${Math.abs(n) === 1 ? "" : "s"}`;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** An error box for a failed API call: code and message as text. */
export function errorBox(e) {
  const code = e && e.code ? e.code : "error";
  return h("div", { class: "error-box", role: "alert" },
    h("strong", {}, code), ": ", e && e.message ? e.message : String(e));
}

/** A button that copies `text` to the clipboard. */
export function copyButton(text, label = "Copy") {
  const b = h("button", { type: "button", class: "secondary" }, label);
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = "Copied";
    } catch {
      b.textContent = "Select and copy by hand";
    }
    setTimeout(() => { b.textContent = label; }, 2000);
  });
  return b;
}
