// The console's shell: sign-in, navigation, the account bar (balance,
// sandbox badge) and a small history router. Pages live in ./pages/.

import { h, mount } from "./dom.js";
import { get, session, setUnauthorizedHandler } from "./api.js";
import { signInPage } from "./pages/signin.js";
import { playgroundPage } from "./pages/playground.js";
import { tasksPage, taskPage } from "./pages/tasks.js";
import { creditsPage } from "./pages/credits.js";
import { keysPage } from "./pages/keys.js";
import { webhooksPage } from "./pages/webhooks.js";
import { docsPage } from "./pages/docs.js";

const NAV = [
  ["/", "Playground"],
  ["/tasks", "Tasks"],
  ["/credits", "Credits"],
  ["/keys", "API keys"],
  ["/webhooks", "Webhooks"],
  ["/docs", "API reference"],
];

const app = document.getElementById("app");

/** The account bar's state, shared with pages (the playground shows the balance). */
export const account = {
  balance: null,
  sandbox: false,
  listeners: new Set(),
  async refresh() {
    try {
      this.apply(await get("/credits"));
    } catch {
      this.balance = null;
      for (const f of this.listeners) f(this);
    }
  },
  /** Takes a GET /api/v1/credits answer the caller already has (sign-in checks the key with it). */
  apply(c) {
    this.balance = c.current_credits;
    this.sandbox = c.sandbox === true;
    for (const f of this.listeners) f(this);
  },
};

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState({}, "", path);
  else history.pushState({}, "", path);
  render();
}

// Same-origin links navigate inside the app without a reload.
document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-nav]");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", () => render());

setUnauthorizedHandler((err) => {
  if (err.code === "api_key_revoked" || err.code === "api_key_expired" || err.code === "api_key_invalid") {
    session.clear();
    render(err);
  }
});

function header() {
  const balance = h("span", { class: "balance", "aria-live": "polite" });
  const badge = h("span", { class: "badge sandbox", hidden: true }, "Sandbox account");
  const show = (a) => {
    balance.textContent = a.balance === null ? "" : `Balance: ${Number(a.balance).toLocaleString()} credits`;
    badge.hidden = !a.sandbox;
  };
  account.listeners.clear();
  account.listeners.add(show);
  show(account);
  const path = location.pathname;
  const nav = h("nav", { "aria-label": "Console" },
    h("ul", {}, NAV.map(([href, label]) => {
      const current = href === "/" ? path === "/" : path.startsWith(href);
      return h("li", {}, h("a", { href, "data-nav": "", "aria-current": current ? "page" : undefined }, label));
    })));
  const signOut = h("button", { type: "button", class: "secondary" }, "Sign out");
  signOut.addEventListener("click", () => {
    session.clear();
    account.balance = null;
    navigate("/");
  });
  return h("header", { class: "top" },
    h("div", { class: "brand" }, h("a", { href: "/", "data-nav": "" }, "gengate"), " console"),
    nav,
    h("div", { class: "account" }, badge, balance, signOut));
}

let generation = 0;

async function render(signInError) {
  generation += 1;
  const mine = generation;
  const path = location.pathname;
  // The API reference is public, like the document it renders.
  if (!session.key() && path !== "/docs") {
    document.title = "Sign in — gengate";
    mount(app, signInPage({
      error: signInError,
      // The sign-in check already fetched the balance: no second call.
      onSignedIn: (credits) => { if (credits) account.apply(credits); render(); },
    }));
    return;
  }
  const main = h("main", { id: "main", tabindex: "-1" });
  mount(app, session.key() ? header() : h("header", { class: "top" },
    h("div", { class: "brand" }, h("a", { href: "/", "data-nav": "" }, "gengate"), " console")), main);
  if (session.key() && account.balance === null) account.refresh();
  let page;
  let title;
  const m = path.match(/^\/tasks\/([^/]+)$/);
  if (path === "/") [page, title] = [playgroundPage, "Playground"];
  else if (path === "/tasks") [page, title] = [tasksPage, "Tasks"];
  else if (m) [page, title] = [(el) => taskPage(el, decodeURIComponent(m[1])), "Task"];
  else if (path === "/credits") [page, title] = [creditsPage, "Credits"];
  else if (path === "/keys") [page, title] = [keysPage, "API keys"];
  else if (path === "/webhooks") [page, title] = [webhooksPage, "Webhooks"];
  else if (path === "/docs") [page, title] = [docsPage, "API reference"];
  else {
    mount(main, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "/", "data-nav": "" }, "Back to the playground")));
    return;
  }
  document.title = `${title} — gengate`;
  await page(main, { account, navigate, isCurrent: () => mine === generation });
  if (mine === generation && signInError === undefined) {
    const h1 = main.querySelector("h1");
    if (h1) h1.setAttribute("tabindex", "-1");
  }
}

render();
