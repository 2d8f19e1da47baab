"""The TypeScript client's example page (clients/typescript/example), in headless Chromium.

The page is plain HTML and the built client, served from its own origin as a frontend is; the
gateway (sandbox mode) lists that origin in server.cors_allowed_origins. The test types the API
key, sends an invitation and allocates credit through the page, and keeps a screenshot.

Needs `npm ci && npm run build` in clients/typescript first (tests/browser/run.sh does it).
Run with: bash tests/browser/run.sh
"""

import functools
import hashlib
import os
import secrets
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import chromium, sandbox_gateway
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOT = os.environ.get("CLIENT_SCREENSHOT", "target/typescript-example.png")
PACKAGE = os.path.join(os.path.dirname(__file__), "..", "..", "clients", "typescript")
KEY = "pgw_example_" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def page_origin():
    assert os.path.exists(os.path.join(PACKAGE, "dist", "index.js")), "build the client first (npm run build)"

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=PACKAGE))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, page_origin):
    config = tmp_path_factory.mktemp("config") / "example.toml"
    config.write_text(
        '[server]\ncors_allowed_origins = ["%s"]\n\n[[auth.api_keys]]\nname = "example-page"\nsha256 = "%s"\n'
        'scopes = ["invitations:send", "credit:allocate"]\n' % (page_origin, hashlib.sha256(KEY.encode()).hexdigest())
    )
    with sandbox_gateway(config) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with chromium("900,900") as driver:
        yield driver


def settled(browser, output_id):
    out = browser.find_element(By.ID, output_id)
    WebDriverWait(browser, 20).until(lambda _: out.get_attribute("data-state") in ("ok", "error"))
    return out.get_attribute("data-state"), out.text


def test_the_example_page_invites_and_allocates_through_the_client(gateway, page_origin, browser):
    browser.get(f"{page_origin}/example/?gateway={gateway}")
    browser.find_element(By.ID, "token").send_keys(KEY)
    email = browser.find_element(By.ID, "email")
    email.clear()
    email.send_keys(f"example.page.{secrets.token_hex(4)}@example.com")
    browser.find_element(By.ID, "invite").click()
    state, text = settled(browser, "invited")
    assert state == "ok" and text.startswith("Invitation sent: https://"), text

    browser.find_element(By.ID, "allocate").click()
    state, text = settled(browser, "allocated")
    assert state == "ok" and text.startswith("Allocated 100.5 to 800000232018"), text
    os.makedirs(os.path.dirname(SCREENSHOT) or ".", exist_ok=True)
    browser.save_screenshot(SCREENSHOT)
