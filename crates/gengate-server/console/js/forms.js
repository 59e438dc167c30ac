// Showing a refused form: each `validation_failed` detail next to its field (the
// `.field[data-field]` wrapper `field()` makes), the rest in the form's error slot.
// Shared by the account console and the operator console.

import { h, errorBox } from "./dom.js";
import { ApiError } from "./api.js";

/** Puts each `validation_failed` detail next to its field; the rest above the button. */
export function showApiError(err, form, formError) {
  const rest = [];
  if (err instanceof ApiError && err.details.length) {
    let first = null;
    for (const d of err.details) {
      const f = fieldFor(form, d.field);
      if (f) {
        f.showError(d.message);
        first = first || f;
      } else rest.push(d);
    }
    if (first) first.querySelector("input, select, textarea")?.focus();
  }
  if (!(err instanceof ApiError) || !err.details.length || rest.length) {
    formError.replaceChildren(errorBox(err),
      rest.length ? h("ul", {}, rest.map((d) => h("li", {}, `${d.field}: ${d.message}`))) : null);
  }
}

function fieldFor(form, name) {
  // params.referenceMediaItems[1].url → the reference images field.
  const candidates = [name, name.replace(/\[\d+\].*$/, ""), name.replace(/\..*$/, "")];
  for (const c of candidates) {
    const f = [...form.querySelectorAll(".field[data-field]")].find((x) => x.dataset.field === c);
    if (f) return f;
  }
  return null;
}

