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
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BINARY = os.environ["PG_BIN"]
SCREENSHOT = os.environ.get("CLIENT_SCREENSHOT", "target/typescript-example.png")
PACKAGE = os.path.join(os.path.dirname(__file__), "..", "..", "clients", "typescript")
KEY = "pgw_example_" + secrets.token_urlsafe(24)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = free_port()
    config = tmp_path_factory.mktemp("config") / "example.toml"
    config.write_text(
        '[server]\ncors_allowed_origins = ["%s"]\n\n[[auth.api_keys]]\nname = "example-page"\nsha256 = "%s"\n'
        'scopes = ["invitations:send", "credit:allocate"]\n' % (page_origin, hashlib.sha256(KEY.encode()).hexdigest())
    )
    env = dict(os.environ, GATEWAY__SERVER__LISTEN=f"127.0.0.1:{port}", GATEWAY__LOG__LEVEL="warn")
    proc = subprocess.Popen(
        [BINARY, "serve", "--sandbox", "--config", str(config)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/readyz", timeout=1)
            break
        except OSError:
            assert proc.poll() is None, "the gateway exited"
            assert time.monotonic() < deadline, "the gateway did not become ready"
            time.sleep(0.05)
    yield base
    proc.terminate()
    proc.wait(timeout=15)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        "--window-size=900,900", f"--user-data-dir={tempfile.mkdtemp()}",
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


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
