// The operator console's shell: sign-in with an operator key, navigation, and a small
// history router over /admin/…. A client of /api/admin/v1 only; pages live in ./pages/.

import { h, mount } from "../../js/dom.js";
import { client, session, get, me } from "./client.js";
import { signInPage } from "./pages/signin.js";
import { overviewPage } from "./pages/overview.js";
import { accountsPage } from "./pages/accounts.js";
import { accountPage } from "./pages/account.js";
import { tasksPage, taskPage } from "./pages/tasks.js";
import { usagePage } from "./pages/usage.js";
import { auditPage } from "./pages/audit.js";
import { providersPage } from "./pages/providers.js";

const NAV = [
  ["/admin", "Overview"],
  ["/admin/accounts", "Accounts"],
  ["/admin/tasks", "Tasks"],
  ["/admin/usage", "Usage"],
  ["/admin/audit", "Audit log"],
  ["/admin/providers", "Providers"],
];

const app = document.getElementById("app");

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState({}, "", path);
  else history.pushState({}, "", path);
  render();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-nav]");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", () => render());

client.setUnauthorizedHandler((err) => {
  if (err.code.startsWith("operator_key_") || err.code === "api_key_invalid") {
    session.clear();
    me.set(null);
    render(err);
  }
});

function header(path) {
  const nav = h("nav", { "aria-label": "Operator console" },
    h("ul", {}, NAV.map(([href, label]) => {
      const current = href === "/admin" ? path === "/admin" || path === "/admin/" : path.startsWith(href);
      return h("li", {}, h("a", { href, "data-nav": "", "aria-current": current ? "page" : undefined }, label));
    })));
  const signOut = h("button", { type: "button", class: "secondary" }, "Sign out");
  signOut.addEventListener("click", () => {
    session.clear();
    me.set(null);
    navigate("/admin");
  });
  return h("header", { class: "top admin" },
    h("div", { class: "brand" }, h("a", { href: "/admin", "data-nav": "" }, "gengate"), " operator"),
    nav,
    h("div", { class: "account" },
      h("span", { class: "who" }, me.name, " ", h("span", { class: `badge role-${me.role}` }, me.role)),
      signOut));
}

const ROUTES = [
  [/^\/admin\/?$/, () => overviewPage, "Overview"],
  [/^\/admin\/accounts$/, () => accountsPage, "Accounts"],
  [/^\/admin\/accounts\/([^/]+)$/, (id) => (el, ctx) => accountPage(el, ctx, id), "Account"],
  [/^\/admin\/tasks$/, () => tasksPage, "Tasks"],
  [/^\/admin\/tasks\/([^/]+)$/, (id) => (el, ctx) => taskPage(el, ctx, id), "Task"],
  [/^\/admin\/usage$/, () => usagePage, "Usage"],
  [/^\/admin\/audit$/, () => auditPage, "Audit log"],
  [/^\/admin\/providers$/, () => providersPage, "Providers"],
];

let generation = 0;

async function render(signInError) {
  generation += 1;
  const mine = generation;
  const path = location.pathname;
  if (session.key() && !me.role) {
    try {
      me.set(await get("/me"));
    } catch (e) {
      if (session.key()) {
        // Not a key problem (the handler above signs out on those): say so.
        mount(app, h("main", { id: "main" }, h("h1", {}, "The operator console cannot reach the server"),
          h("p", {}, `${e.code}: ${e.message}`)));
      }
      return;
    }
  }
  if (!session.key()) {
    document.title = "Sign in — gengate operator";
    mount(app, signInPage({ error: signInError, onSignedIn: (m) => { me.set(m); render(); } }));
    return;
  }
  const main = h("main", { id: "main", tabindex: "-1" });
  mount(app, header(path), main);
  const route = ROUTES.map(([re, make, title]) => [path.match(re), make, title]).find(([m]) => m);
  if (!route) {
    document.title = "Not found — gengate operator";
    mount(main, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "/admin", "data-nav": "" }, "Back to the overview")));
    return;
  }
  const [m, make, title] = route;
  document.title = `${title} — gengate operator`;
  await make(m[1] && decodeURIComponent(m[1]))(main, { navigate, me, isCurrent: () => mine === generation });
  if (mine === generation) {
    const h1 = main.querySelector("h1");
    if (h1) h1.setAttribute("tabindex", "-1");
  }
}

render();
