// The playground: a form generated from the catalog (GET /api/v1/models), so
// a new model, param or option in catalog/models.json appears here with no
// console change. Generate creates a task, then long-polls it to the end.

import { h, mount, field, fmtBytes, fmtCredits, errorBox, uid } from "../dom.js";
import { get, post, upload, idemKey, sameOrigin } from "../api.js";
import { countChars } from "../text.js";
import { resultPlayer, statusBadge, followTask } from "./task_view.js";
import { showApiError } from "../forms.js";

export async function playgroundPage(main, { account }) {
  mount(main, h("h1", {}, "Playground"), h("p", { role: "status" }, "Loading the model catalog…"));
  let models;
  try {
    models = (await get("/models")).data;
  } catch (e) {
    mount(main, h("h1", {}, "Playground"), errorBox(e));
    return;
  }
  const form = h("form", { class: "card playground", novalidate: true });
  const out = h("section", { class: "run", "aria-label": "Result" });
  mount(main, h("h1", {}, "Playground"), h("div", { class: "split" }, form, out));

  const modelSelect = h("select", { name: "model" },
    models.map((m) => h("option", { value: m.id }, `${m.display_name} (${m.id})`)));
  const modelField = field("Model", modelSelect, { field: "model" });
  const dynamic = h("div", { class: "model-fields" });
  const price = h("p", { class: "price" });
  const generate = h("button", { type: "submit" }, "Generate");
  const formError = h("div", { class: "form-error" });
  mount(form, modelField, dynamic, price, formError, generate);

  let state = null;
  // The live quote (POST /generations/quote) for the form as it is: the model's rules and
  // this account's price adjustment; until it answers (or when it cannot), the model's
  // price at its defaults.
  let quote = null;
  let asked = 0;
  const showPrice = () => {
    const m = state && state.model;
    if (!m) return;
    const bal = account.balance;
    const q = quote && quote.model === m.id ? quote : null;
    const lines = q && q.breakdown.length > 1
      ? h("details", { class: "breakdown" }, h("summary", {}, "How this price is made"),
        h("ul", {}, q.breakdown.map((l) => h("li", {}, `${l.item}: ${l.credits > 0 ? "+" : ""}${l.credits}`))))
      : null;
    price.replaceChildren(
      h("span", {}, "Price: ", h("strong", { class: "pg-price" }, fmtCredits(q ? q.credits : m.base_credits)),
        q ? null : m.billing_type === "RULES" ? " (at the defaults)" : null),
      " · ",
      h("span", {}, "Balance: ", h("strong", { class: "pg-balance" }, bal === null ? "…" : fmtCredits(bal))),
      lines);
  };
  account.listeners.add(showPrice);
  const requote = async () => {
    if (!state) return;
    const mine = ++asked;
    // The price does not depend on the prompt; a placeholder keeps an empty prompt from
    // turning the quote into a validation error.
    const body = { model: state.model.id, prompt: state.prompt.value.trim() ? state.prompt.value : "quote", params: state.params() };
    try {
      const q = await post("/generations/quote", body);
      if (mine === asked) quote = q;
    } catch {
      if (mine === asked) quote = null;
    }
    if (mine === asked) showPrice();
  };
  form.addEventListener("change", requote);

  const build = () => {
    const m = models.find((x) => x.id === modelSelect.value) || models[0];
    state = buildModelForm(m, dynamic);
    quote = null;
    showPrice();
    requote();
  };
  modelSelect.addEventListener("change", build);
  build();

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    formError.replaceChildren();
    for (const f of form.querySelectorAll(".field")) f.clearError && f.clearError();
    if (state.refs.pending()) {
      formError.replaceChildren(errorBox({ code: "uploading", message: "wait until the reference images have uploaded" }));
      return;
    }
    const body = { model: state.model.id, prompt: state.prompt.value, params: state.params() };
    generate.disabled = true;
    let task;
    try {
      task = await post("/generations", body, { headers: { "Idempotency-Key": idemKey() } });
    } catch (err) {
      generate.disabled = false;
      showApiError(err, form, formError);
      return;
    }
    generate.disabled = false;
    account.refresh();
    runTask(out, task, account);
  });
}

function buildModelForm(m, container) {
  const max = m.max_prompt_length;
  const prompt = h("textarea", { name: "prompt", rows: 5, required: true });
  const counter = h("span", { class: "counter", "aria-live": "polite" });
  const count = () => {
    const n = countChars(prompt.value);
    counter.textContent = `${n.toLocaleString()} / ${max.toLocaleString()} characters`;
    counter.classList.toggle("over", n > max);
  };
  prompt.addEventListener("input", count);
  count();
  const promptField = field("Prompt", prompt, { field: "prompt" });
  promptField.querySelector("label").after(counter);

  const controls = [];
  const paramFields = m.params.map((p) => {
    const label = p.description || p.key;
    let control;
    if (p.type === "select") {
      control = h("select", { name: p.key },
        p.options.map((o) => h("option", { value: o, selected: o === p.default ? "" : undefined }, o)));
    } else if (p.type === "number") {
      control = h("input", { type: "number", name: p.key, min: p.min ?? undefined, max: p.max ?? undefined,
        step: p.step ?? "any", value: p.default ?? "" });
    } else {
      control = h("input", { type: "text", name: p.key, maxlength: p.max_length ?? undefined, value: p.default ?? "" });
    }
    controls.push([p, control]);
    return field(label, control, { field: `params.${p.key}`, hint: p.required ? "required" : undefined });
  });

  const refs = referencePicker(m);
  mount(container, promptField, h("div", { class: "params" }, paramFields), refs.el,
    m.notices && m.notices.length ? h("ul", { class: "notices" }, m.notices.map((n) => h("li", {}, n))) : null);

  return {
    model: m,
    prompt,
    refs,
    params() {
      const out = {};
      for (const [p, c] of controls) {
        if (c.value === "" && !p.required) continue;
        out[p.key] = p.type === "number" ? Number(c.value) : c.value;
      }
      const items = refs.items();
      if (items.length) out.referenceMediaItems = items;
      return out;
    },
  };
}

/** Pick or drop reference images; each is checked, then uploaded through the Files API with progress. */
function referencePicker(m) {
  const spec = m.reference_media || { max_files: 0, kinds: [], limits: {} };
  const uploaded = [];
  let inFlight = 0;
  if (!spec.max_files) return { el: null, items: () => [], pending: () => false };
  const mimes = spec.kinds.flatMap((k) => (spec.limits[k] && spec.limits[k].mime_types) || []);
  const input = h("input", { type: "file", accept: mimes.join(","), multiple: spec.max_files > 1 });
  const list = h("ul", { class: "refs" });
  const wrap = field(`Reference images (up to ${spec.max_files})`, input, {
    field: "params.referenceMediaItems",
    hint: spec.rule || undefined,
  });
  const drop = h("div", { class: "drop" }, "…or drop images here");
  wrap.append(drop, list);

  const kindOf = (type) => spec.kinds.find((k) => (spec.limits[k]?.mime_types || []).includes(type));

  async function check(file) {
    const kind = kindOf(file.type);
    if (!kind) return [null, `${file.name}: ${file.type || "this type"} is not accepted (${mimes.join(", ")})`];
    const lim = spec.limits[kind];
    if (lim.max_bytes && file.size > lim.max_bytes) {
      return [null, `${file.name} is ${fmtBytes(file.size)}; the limit is ${fmtBytes(lim.max_bytes)}`];
    }
    if (kind === "image" && (lim.min_side_px || lim.max_aspect_ratio)) {
      try {
        const bmp = await createImageBitmap(file);
        const [w, hgt] = [bmp.width, bmp.height];
        bmp.close();
        if (lim.min_side_px && Math.min(w, hgt) < lim.min_side_px) {
          return [null, `${file.name} is ${w}×${hgt}; each side must be at least ${lim.min_side_px} px`];
        }
        if (lim.max_aspect_ratio && Math.max(w, hgt) / Math.min(w, hgt) > lim.max_aspect_ratio) {
          return [null, `${file.name} is ${w}×${hgt}; the aspect ratio must be at most ${lim.max_aspect_ratio}:1`];
        }
      } catch {
        return [null, `${file.name} cannot be read as an image`];
      }
    }
    return [kind, null];
  }

  async function add(files) {
    wrap.clearError();
    const problems = [];
    for (const file of files) {
      if (uploaded.length + inFlight >= spec.max_files) {
        problems.push(`${file.name}: at most ${spec.max_files} reference files`);
        continue;
      }
      const [kind, problem] = await check(file);
      if (problem) { problems.push(problem); continue; }
      const preview = URL.createObjectURL(file);
      const bar = h("progress", { max: 1, value: 0, "aria-label": `Uploading ${file.name}` });
      const entry = { item: null };
      const remove = h("button", { type: "button", class: "secondary small" }, "Remove");
      const li = h("li", {}, h("img", { src: preview, alt: `Preview of ${file.name}` }),
        h("span", { class: "ref-name" }, file.name), h("span", { class: "muted" }, fmtBytes(file.size)), bar, remove);
      remove.addEventListener("click", () => {
        const i = uploaded.indexOf(entry);
        if (i >= 0) uploaded.splice(i, 1);
        li.remove();
        URL.revokeObjectURL(preview);
      });
      list.append(li);
      const form = new FormData();
      form.append("file", file, file.name);
      form.append("kind", kind);
      form.append("model", m.id);
      inFlight += 1;
      try {
        const f = await upload(form, (p) => { bar.value = p; });
        entry.item = { url: f.url, kind: f.kind, name: f.name || file.name, mimeType: f.mime_type };
        uploaded.push(entry);
        bar.replaceWith(h("span", { class: "ok" }, "uploaded"));
      } catch (e) {
        li.remove();
        problems.push(`${file.name}: ${e.message}`);
      } finally {
        inFlight -= 1;
      }
    }
    input.value = "";
    if (problems.length) wrap.showError(problems.join(" · "));
  }

  input.addEventListener("change", () => add([...input.files]));
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    add([...e.dataTransfer.files]);
  });
  return {
    el: wrap,
    items: () => uploaded.map((x) => x.item),
    pending: () => inFlight > 0,
  };
}

/** Shows a created task live until it ends: status, elapsed time, then the video or the error. */
function runTask(out, task, account) {
  const status = h("p", { class: "live", role: "status", "aria-live": "polite" });
  const elapsed = h("span", { class: "elapsed" });
  const result = h("div", { class: "result" });
  const id = uid("run");
  mount(out, h("h2", { id }, "Task ", h("a", { href: `/tasks/${task.id}`, "data-nav": "" }, task.id)),
    status, h("p", {}, "Elapsed: ", elapsed), result);
  const started = Date.now();
  const tick = setInterval(() => { elapsed.textContent = `${((Date.now() - started) / 1000).toFixed(0)} s`; }, 500);
  elapsed.textContent = "0 s";
  followTask(task, (t) => {
    status.replaceChildren("Status: ", statusBadge(t.status));
    if (t.status === "succeeded") {
      clearInterval(tick);
      mount(result, resultPlayer(t));
      account.refresh();
    } else if (t.status === "failed") {
      clearInterval(tick);
      const refunded = t.final_credits === 0 ? t.reserved_credits : 0;
      mount(result, h("div", { class: "error-box", role: "alert" },
        h("strong", {}, t.error ? t.error.code : "failed"), ": ", t.error ? t.error.message : "",
        h("p", { class: "refund" }, `${fmtCredits(refunded)} refunded to your balance.`)));
      account.refresh();
    }
  }, (e) => {
    clearInterval(tick);
    mount(result, errorBox(e));
  }, () => !out.isConnected);
}

export { sameOrigin };
