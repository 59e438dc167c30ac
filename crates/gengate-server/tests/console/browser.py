"""The console in a real browser (headless Debian Chromium via Playwright).

Run by tests/console.rs against a real gengate server (SQLite, sandbox):
    python3 browser.py BASE_URL API_KEY HOOK_URL WORK_DIR SHOTS_DIR
Exits non-zero (with the failed check) on any problem.
"""
import json
import os
import struct
import sys
import time
import zlib

from playwright.sync_api import expect, sync_playwright

BASE, KEY, HOOK, WORK, SHOTS = sys.argv[1:6]
CHROMIUM = os.environ.get("GENGATE_CHROMIUM", "/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
XSS = "<img src=x onerror=alert(1)>"



def reference_png(path, w=640, h=480):
    """A gradient PNG the Files API accepts (each side at least 300 px)."""
    rows = b"".join(b"\x00" + b"".join(bytes([x * 255 // w, y * 255 // h, 160]) for x in range(w)) for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


IMAGE = reference_png(os.path.join(WORK, "lighthouse.png"))
foreign = []
dialogs = []


def shot(page, name):
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)
        page.screenshot(path=os.path.join(SHOTS, f"{name}-{label}.png"), full_page=False)
    page.set_viewport_size(DESKTOP)


def wait_until(page, expression, timeout=30.0):
    """Poll a page expression until it is truthy.

    Not page.wait_for_function: when its first check is false, Playwright re-checks with
    eval() inside the page, which the console's strict CSP (no 'unsafe-eval') refuses.
    page.evaluate runs through the DevTools protocol, which the CSP does not govern.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {expression}")
        page.wait_for_timeout(100)


def balance(page):
    return int(page.evaluate(
        """async (k) => (await (await fetch('/api/v1/credits', {headers: {Authorization: 'Bearer ' + k}})).json()).current_credits""",
        KEY))


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
    ctx = browser.new_context(viewport=DESKTOP)
    page = ctx.new_page()
    page.set_default_timeout(30000)
    expect.set_options(timeout=30000)
    origin = BASE.rstrip("/")
    page.on("request", lambda r: None if r.url.startswith(origin + "/") or r.url.startswith(("blob:", "data:")) else foreign.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # Sign in. The first load is the assets, then only the balance (the
    # sign-in check) and the catalog; its bytes stay within the stated budget.
    loaded = []

    def on_loaded(r):
        loaded.append((r.url[len(origin):], r.response()))

    page.on("requestfinished", on_loaded)
    page.goto(BASE + "/")
    shot(page, "signin")
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Generate")).to_be_visible()
    page.wait_for_timeout(300)
    page.remove_listener("requestfinished", on_loaded)
    api_calls = sorted(u for u, _ in loaded if u.startswith("/api/"))
    # The balance (the sign-in check), the catalog and the live quote of the form as it is.
    assert api_calls == ["/api/v1/credits", "/api/v1/generations/quote", "/api/v1/models"], api_calls
    asset_bytes = sum(len(r.body()) for u, r in loaded if not u.startswith("/api/") and r and r.status == 200)
    print(f"first load: {asset_bytes} bytes of assets, API calls {api_calls}", file=sys.stderr)
    assert asset_bytes < 80_000, f"first load grew to {asset_bytes} bytes (README states ~65 KB)"
    assert page.evaluate("sessionStorage.getItem('gengate.apiKey')") == KEY
    assert KEY not in page.url
    assert not ctx.cookies(), "no cookie is ever set"
    expect(page.locator(".pg-balance")).to_contain_text("credits")
    # A live account: no sandbox badge (GET /credits says nothing of "sandbox").
    expect(page.get_by_text("Sandbox account")).to_be_hidden()
    before = balance(page)

    # The form is built from the catalog: another Kling model brings its own params and
    # its own price (the live quote), with no console change.
    page.get_by_label("Model").select_option("kling-v2-1-master")
    expect(page.locator(".pg-price")).to_have_text("160 credits")
    expect(page.get_by_label("Prompt adherence (0-1)")).to_have_value("0.5")
    expect(page.get_by_label("What the video should not show")).to_be_visible()
    page.get_by_label("Model").select_option("kling-3-0")
    expect(page.locator(".pg-price")).to_have_text("90 credits")

    # Prompt counter counts like the server: one per Unicode scalar value.
    prompt = page.get_by_label("Prompt")
    prompt.fill("ک" * 1999 + "🎬")
    expect(page.locator(".counter")).to_have_text("2,000 / 2,000 characters")
    prompt.fill("ک" * 2000 + "🎬")
    expect(page.locator(".counter")).to_have_class("counter over")

    # Generate with a reference image; the video's duration is the one asked for.
    prompt.fill("A lighthouse at dusk, waves rolling in")
    page.get_by_label("Duration").select_option("3")
    page.get_by_label("Generation mode").select_option("std")
    page.get_by_label("Reference images (up to 2)").set_input_files(IMAGE)
    expect(page.locator("ul.refs .ok")).to_have_text("uploaded")
    expect(page.locator(".price")).to_contain_text("90 credits")
    # The live quote follows the form: kling-3-0 is FIXED, so 15 s still costs 90.
    with page.expect_response(lambda r: r.url.endswith("/api/v1/generations/quote")) as quoted:
        page.get_by_label("Duration").select_option("15")
    assert quoted.value.json()["credits"] == 90, quoted.value.json()
    expect(page.locator(".pg-price")).to_have_text("90 credits")
    page.get_by_label("Duration").select_option("3")
    shot(page, "playground")
    page.get_by_role("button", name="Generate").click()
    video = page.locator("video")
    expect(video).to_be_visible(timeout=90000)
    wait_until(page, "document.querySelector('video').readyState >= 1", timeout=60)
    duration = page.evaluate("document.querySelector('video').duration")
    assert abs(duration - 3.0) < 0.1, f"video duration {duration}, asked for 3"
    expect(page.get_by_role("status").first).to_contain_text("succeeded")
    wait_until(page, f"document.querySelector('.pg-balance').textContent.replace(/[^0-9]/g, '') === '{before - 90}'")
    assert balance(page) == before - 90
    shot(page, "playground-result")
    task_id = page.locator(".run h2 a").text_content()

    # A failing prompt shows the error code and the refund.
    before = balance(page)
    page.get_by_label("Reference images (up to 2)")  # still there
    for b in page.locator("ul.refs button").all():
        b.click()
    prompt.fill("This one breaks [sandbox:fail]")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".run .error-box")).to_contain_text("generation_failed", timeout=90000)
    expect(page.locator(".run .refund")).to_have_text("90 credits refunded to your balance.")
    wait_until(page, f"document.querySelector('.pg-balance').textContent.replace(/[^0-9]/g, '') === '{before}'")
    assert balance(page) == before

    # Field errors from validation_failed appear next to their fields.
    prompt.fill("x" * 2001)
    page.get_by_role("button", name="Generate").click()
    err = page.locator(".field[data-field='prompt'] .field-error")
    expect(err).to_contain_text("at most 2000 characters")
    expect(prompt).to_have_attribute("aria-invalid", "true")
    shot(page, "playground-field-error")

    # The XSS prompt is text: shown as typed, nothing runs.
    # Wait for the new run, not just any run other than the first: the
    # failed run above may still be on screen when Generate is pressed.
    shown = page.locator(".run h2 a")
    previous = shown.text_content() if shown.count() else None
    prompt.fill(XSS)
    page.get_by_role("button", name="Generate").click()
    for seen in (task_id, previous):
        if seen:
            expect(shown).not_to_have_text(seen)
    xss_task = page.locator(".run h2 a").text_content()
    page.goto(f"{BASE}/tasks/{xss_task}")
    expect(page.locator(".prompt")).to_have_text(XSS)
    assert page.locator("img[src='x']").count() == 0
    page.wait_for_timeout(500)
    shot(page, "task")

    # Tasks list with its filter.
    page.get_by_role("link", name="Tasks", exact=True).click()
    expect(page.get_by_role("link", name=task_id)).to_be_visible()
    page.get_by_label("Status").select_option("failed")
    expect(page.locator("tbody tr")).to_have_count(1)
    shot(page, "tasks")

    # Credits: balance and the ledger.
    page.get_by_role("link", name="Credits").click()
    expect(page.locator("table.ledger tbody tr").first).to_be_visible()
    kinds = page.locator("table.ledger .kind").all_text_contents()
    assert "refund" in kinds and "debit" in kinds and "grant" in kinds, kinds
    # The low-balance alert is the account's own setting.
    page.get_by_label("Alert me below (credits)").fill("100")
    page.get_by_role("button", name="Save alert").click()
    expect(page.locator(".low-balance-form [role=status]")).to_contain_text("below 100 credits")
    threshold = page.evaluate(
        "async (k) => (await (await fetch('/api/v1/credits', {headers: {Authorization: 'Bearer ' + k}})).json()).low_balance_threshold",
        KEY)
    assert threshold == 100, threshold
    shot(page, "credits")

    # API keys: create (secret shown once), revoke with confirmation.
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Key name").fill("ci reader")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator(".secret-value").text_content()
    assert secret.startswith("gg_live_") and len(secret) == 48, secret
    row = page.locator("tr", has_text="ci reader")
    expect(row).to_contain_text(secret[:16])
    shot(page, "keys")
    row.get_by_role("button", name="Revoke ci reader").click()
    row.get_by_role("button", name="Confirm revoke").click()
    expect(page.locator("tr", has_text="ci reader")).to_contain_text("revoked")
    status = page.evaluate(
        "async (k) => (await fetch('/api/v1/credits', {headers: {Authorization: 'Bearer ' + k}})).status", secret)
    assert status == 401, status

    # Webhooks: create an endpoint, send a test, see the delivery listed.
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("Endpoint name").fill("local receiver")
    page.get_by_label("Endpoint URL").fill(HOOK)
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.locator(".secret-value")).to_contain_text("whsec_")
    page.get_by_role("button", name="Send test: local receiver").click()
    expect(page.locator(".attempts tbody tr").first).to_contain_text("webhook.test", timeout=30000)
    expect(page.locator(".attempts tbody tr").first).to_contain_text("200")
    shot(page, "webhooks")

    # The API reference renders the OpenAPI document.
    page.get_by_role("link", name="API reference").click()
    expect(page.get_by_text("Authorization: Bearer gg_live_…")).to_be_visible()
    expect(page.locator("#op-get--api-v1-credits-transactions")).to_be_visible()
    shot(page, "docs")

    # Sign out forgets the key.
    page.get_by_role("link", name="Playground").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('gengate.apiKey')") is None

    browser.close()

assert not dialogs, f"a dialog opened (script ran): {dialogs}"
assert not foreign, f"requests left the origin: {foreign}"
assert not errors, f"page errors: {errors}"
print(json.dumps({"ok": True}))
