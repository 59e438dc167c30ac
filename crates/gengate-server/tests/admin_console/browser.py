"""The operator console in a real browser (headless Debian Chromium via Playwright).

Run by tests/admin_console.rs against a real gengate server (SQLite, sandbox):
    python3 browser.py BASE_URL ADMIN_KEY VIEWER_KEY ACCOUNT_KEY WORK_DIR SHOTS_DIR
Drives what an operator does (issue 22's "done when"): create an account, grant
credits with a reason, create a key for it, run a task with that key, find the task
across accounts and open its story, download the usage CSV, suspend the account and
see its key refused; then a viewer sees no write controls. Every page at desktop and
phone width, and by keyboard. Exits non-zero (with the failed check) on any problem.
"""
import csv
import io
import json
import os
import sys
import time

from playwright.sync_api import expect, sync_playwright

BASE, ADMIN, VIEWER, ACCOUNT_KEY, WORK, SHOTS = sys.argv[1:7]
CHROMIUM = os.environ.get("GENGATE_CHROMIUM", "/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
NAME = "globex <b>&co</b>"
foreign, dialogs, errors = [], [], []


def wait_until(page, expression, timeout=30.0):
    """Poll a page expression (page.evaluate, not wait_for_function: the CSP refuses eval)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {expression}")
        page.wait_for_timeout(100)


def shot(page, name):
    """Desktop and phone screenshots; at phone width nothing may scroll sideways."""
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(250)
        if label == "phone":
            over = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert over <= 1, f"{name}: the page is {over}px wider than a phone"
        page.screenshot(path=os.path.join(SHOTS, f"{name}-{label}.png"), full_page=False)
    page.set_viewport_size(DESKTOP)


def call(page, method, path, key, body=None):
    """A call from inside the page (same origin), as a customer's client would make it."""
    return page.evaluate(
        """async ([m, p, k, b]) => {
            const r = await fetch(p, {method: m, headers: {Authorization: 'Bearer ' + k, 'Content-Type': 'application/json',
              'Idempotency-Key': crypto.randomUUID()}, body: b === null ? undefined : JSON.stringify(b)});
            return {status: r.status, body: await r.json().catch(() => null)};
        }""",
        [method, path, key, body])


def sign_in(page, key):
    page.goto(BASE + "/admin")
    page.get_by_label("Operator key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
    ctx = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(30000)
    expect.set_options(timeout=30000)
    origin = BASE.rstrip("/")
    page.on("request", lambda r: None if r.url.startswith(origin + "/") or r.url.startswith(("blob:", "data:")) else foreign.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))

    # An account key is refused, and says why; nothing is kept.
    page.goto(BASE + "/admin")
    shot(page, "signin")
    page.get_by_label("Operator key").fill(ACCOUNT_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".field-error")).to_contain_text("account API key does not work here")
    assert page.evaluate("sessionStorage.getItem('gengate.operatorKey')") is None

    # Sign in as the admin: the key lives in this tab's sessionStorage only.
    page.get_by_label("Operator key").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('gengate.operatorKey')") == ADMIN
    assert not ctx.cookies(), "no cookie is ever set"
    expect(page.locator(".who")).to_contain_text("admin")

    # Accounts: create one (the name is text, never markup) with no credits.
    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_label("Account name").fill(NAME)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(NAME)
    assert page.locator("h1 b").count() == 0
    account_id = page.locator("dl.facts dd code").first.text_content()
    assert account_id.startswith("acct_"), account_id

    # Grant credits, by keyboard: a reason is required first.
    page.get_by_label("Amount").focus()
    page.keyboard.type("500")
    page.keyboard.press("Enter")
    expect(page.locator(".field[data-field='reason'] .field-error")).to_contain_text("say why")
    page.get_by_label("Reason", exact=True).focus()
    page.keyboard.type("invoice 2026-118 paid")
    page.keyboard.press("Enter")
    expect(page.locator(".balance-figure")).to_have_text("500 credits")
    expect(page.locator("table[aria-label='Ledger'] tbody tr").first).to_contain_text("invoice 2026-118 paid")

    # A wholesale price: -20 % on every list price, and a bad value named on its field.
    page.get_by_label("Price adjustment, percent").fill("-150")
    page.get_by_role("button", name="Set price adjustment").click()
    expect(page.locator(".field[data-field='price_adjustment'] .field-error")).to_contain_text("-99")
    page.get_by_label("Price adjustment, percent").fill("-20")
    page.get_by_label("Low-balance alert below (credits)").fill("450")
    page.get_by_role("button", name="Set price adjustment").click()
    expect(page.locator(".price-adjustment")).to_have_text("list -20 %")
    expect(page.locator(".low-balance")).to_have_text("below 450 credits")

    # A key on its behalf: the secret once.
    page.get_by_label("Key name").fill("globex prod")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator(".secret-value").text_content()
    assert secret.startswith("gg_live_"), secret
    expect(page.locator("table[aria-label='Keys']")).to_contain_text("globex prod")
    shot(page, "account")

    # The customer runs a task with that key (the sandbox renders a real MP4).
    made = call(page, "POST", "/api/v1/generations", secret,
                {"model": "kling-3-0", "prompt": "A red kite over the dunes", "params": {"duration": "3"}})
    assert made["status"] == 202, made
    task_id = made["body"]["id"]
    wait_until(page, f"""fetch('/api/v1/generations/{task_id}', {{headers: {{Authorization: 'Bearer {secret}'}}}})
        .then(r => r.json()).then(t => t.status === 'succeeded')""", timeout=90)

    # Find it across accounts: filter by the account, open its story, play the video.
    page.get_by_role("link", name="Tasks", exact=True).click()
    page.get_by_label("Account", exact=True).fill(account_id)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table[aria-label='Tasks'] tbody tr")).to_have_count(1)
    assert f"account={account_id}" in page.url
    shot(page, "tasks")
    page.get_by_role("link", name=task_id).click()
    expect(page.locator("ol.timeline")).to_contain_text("charged")
    expect(page.locator("ol.timeline")).to_contain_text("succeeded")
    expect(page.locator(".prompt")).to_have_text("A red kite over the dunes")
    expect(page.get_by_text("charged 72 credits")).to_be_visible()
    wait_until(page, "document.querySelector('video') && document.querySelector('video').readyState >= 1", timeout=60)
    duration = page.evaluate("document.querySelector('video').duration")
    assert abs(duration - 3.0) < 0.1, f"video duration {duration}, asked for 3"
    shot(page, "task")

    # Usage by account, and the CSV with the same filters.
    page.get_by_role("link", name="Usage", exact=True).click()
    page.get_by_label("Group by").select_option("account")
    row = page.locator("table.usage tbody tr", has_text=account_id)
    expect(row).to_contain_text("72")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download CSV").click()
    path = os.path.join(WORK, "usage.csv")
    dl.value.save_as(path)
    assert dl.value.suggested_filename.endswith("-by-account.csv"), dl.value.suggested_filename
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    mine = [r for r in rows if r["group"] == account_id]
    assert len(mine) == 1 and mine[0]["credits_net"] == "72" and mine[0]["tasks"] == "1", rows
    shown = page.locator("table.usage tbody tr").count()
    assert shown == len(rows), f"the table has {shown} rows, the CSV {len(rows)}"
    page.get_by_label("Group by").select_option("day")
    expect(page.locator("figure.chart .uplot canvas").first).to_be_visible()
    shot(page, "usage")

    # Suspend: its key is refused at once; resume: it works again.
    page.goto(f"{BASE}/admin/accounts/{account_id}")
    page.get_by_role("button", name="Suspend account").click()
    page.get_by_role("button", name="Confirm suspend").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("suspended")
    refused = call(page, "GET", "/api/v1/credits", secret)
    assert refused["status"] == 403 and refused["body"]["error"]["code"] == "account_suspended", refused
    page.get_by_role("button", name="Resume account").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("active")
    assert call(page, "GET", "/api/v1/credits", secret)["status"] == 200

    # The audit log has every change, by this operator.
    page.get_by_role("link", name="Audit log").click()
    table = page.locator("table[aria-label='Audit log']")
    for action in ["account.create", "credits.grant", "key.create"]:
        expect(table).to_contain_text(action)
    page.get_by_label("Action").select_option("account.update")
    expect(page.locator("table[aria-label='Audit log'] tbody tr")).to_have_count(3)
    shot(page, "audit")

    # Providers: the sandbox is healthy; this node is live.
    page.get_by_role("link", name="Providers").click()
    expect(page.locator("section[aria-label='Provider sandbox']")).to_contain_text("healthy")
    expect(page.locator("table[aria-label='Nodes'] tbody tr").first).to_contain_text("live")
    shot(page, "providers")

    # The overview draws its charts (uPlot canvases) with the task in them.
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("figure.chart .uplot canvas")).to_have_count(5)
    expect(page.locator(".stat", has_text="Create → result")).not_to_contain_text("—")
    page.get_by_label("Include sandbox accounts in tasks and credits").check()
    expect(page.locator(".stat", has_text="Tasks, 24 h")).to_be_visible()
    shot(page, "overview")

    # Keyboard: the skip link comes first, then the navigation; Enter follows a link.
    page.goto(BASE + "/admin")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Overview"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Accounts", level=1)).to_be_visible()

    # An unknown console path gets the console's own not-found page.
    page.goto(BASE + "/admin/settings")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()

    # Sign out forgets the key.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Operator key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('gengate.operatorKey')") is None

    # A viewer reads everything and sees no write control anywhere.
    sign_in(page, VIEWER)
    expect(page.locator(".who")).to_contain_text("viewer")
    page.get_by_role("link", name="Accounts", exact=True).click()
    expect(page.locator("table[aria-label='Accounts']")).to_contain_text(NAME)
    assert page.get_by_role("button", name="Create account").count() == 0
    page.get_by_role("link", name=NAME).click()
    expect(page.locator(".balance-figure")).to_have_text("428 credits")
    expect(page.locator("table[aria-label='Keys']")).to_contain_text("globex prod")
    for control in ["Apply", "Suspend account", "Resume account", "Create key", "Switch to sandbox", "Switch to live"]:
        assert page.get_by_role("button", name=control).count() == 0, f"a viewer sees {control}"
    assert page.get_by_role("button", name="Revoke globex prod").count() == 0
    assert page.locator("form").count() == 0, "a viewer sees a form"
    shot(page, "account-viewer")
    denied = call(page, "POST", f"/api/admin/v1/accounts/{account_id}/credits", VIEWER,
                  {"amount": 1, "kind": "grant", "reason": "x"})
    assert denied["status"] == 403 and denied["body"]["error"]["code"] == "operator_role_denied", denied
    page.reload()
    expect(page.locator(".balance-figure")).to_have_text("428 credits")

    browser.close()

assert not dialogs, f"a dialog opened (script ran): {dialogs}"
assert not foreign, f"requests left the origin: {foreign}"
assert not errors, f"page errors: {errors}"
print(json.dumps({"ok": True, "account": account_id, "task": task_id}))
