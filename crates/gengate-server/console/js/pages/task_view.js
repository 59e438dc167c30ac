// Pieces the playground and the task page share: the status badge, the
// result player and the long poll that follows a task to its end.

import { h } from "../dom.js";
import { get, sameOrigin } from "../api.js";

export function statusBadge(status) {
  return h("span", { class: `status-badge s-${status}` }, status);
}

export function resultPlayer(t) {
  const r = t.result;
  if (!r) return h("p", {}, "No result.");
  const media = r.media && r.media[0];
  const src = sameOrigin(r.primary_url);
  const video = h("video", { controls: true, preload: "metadata", src, playsinline: true,
    "aria-label": `Result of ${t.id}` });
  const facts = media ? [
    media.width && media.height ? `${media.width}×${media.height}` : null,
    media.duration_seconds ? `${media.duration_seconds} s` : null,
    media.has_audio ? "with sound" : "no sound",
  ].filter(Boolean).join(" · ") : "";
  return h("figure", { class: "player" }, video,
    h("figcaption", {}, facts, " ",
      h("a", { href: src, download: `${t.id}.mp4` }, "Download the video")));
}

/**
 * Long-polls GET /generations/{id}?wait=30 and calls onChange with every new
 * state, until the task ends, fails to load, or stop() says the page is gone.
 */
export async function followTask(task, onChange, onError, stop) {
  let t = task;
  onChange(t);
  while (t.status !== "succeeded" && t.status !== "failed") {
    if (stop()) return;
    try {
      const next = await get(`/generations/${encodeURIComponent(t.id)}?wait=30`);
      if (next.status !== t.status || next.updated_at !== t.updated_at) onChange(next);
      t = next;
    } catch (e) {
      if (e.status === 0 || e.status >= 500) {
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      onError(e);
      return;
    }
  }
}
