"""Swagger UI at /docs, in headless Chromium, against a sandbox gateway.

Loads the page (vendored assets: no CDN), checks both routes are listed, keeps a screenshot, and
uses "Try it out" → "Execute" on the invitation route to check that it works against the running
gateway. Chromium and chromedriver are Debian's (`chromium`, `chromium-driver`); nothing is
downloaded.

Run with: bash tests/browser/run.sh
"""

import hashlib
import os
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BINARY = os.environ["PG_BIN"]
SCREENSHOT = os.environ.get("SCREENSHOT", "target/swagger-ui.png")


KEY = "pgw_browser_" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path_factory.mktemp("config") / "auth.toml"
    config.write_text(
        '[[auth.api_keys]]\nname = "browser"\nsha256 = "%s"\nscopes = ["invitations:send", "credit:allocate"]\n'
        % hashlib.sha256(KEY.encode()).hexdigest()
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
        "--window-size=1280,1500", f"--user-data-dir={tempfile.mkdtemp()}",
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def test_docs_lists_both_routes_and_try_it_out_works(gateway, browser):
    browser.get(gateway + "/docs/")
    wait = WebDriverWait(browser, 20)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    paths = {e.get_attribute("data-path") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/customers/invitations" in paths, paths
    assert "/customers/{uin}/credit" in paths, paths
    os.makedirs(os.path.dirname(SCREENSHOT) or ".", exist_ok=True)
    browser.save_screenshot(SCREENSHOT)

    # Authorize with the API key, as a developer would.
    browser.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
    field = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, ".modal-ux input")))
    field.send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper .authorize").click()
    browser.find_element(By.CSS_SELECTOR, ".modal-ux .btn-done").click()

    # Try it out: the schema's example body invites new.customer@example.com.
    block = browser.find_element(By.ID, "operations-customers-create_invitation")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#operations-customers-create_invitation .try-out__btn"))).click()
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#operations-customers-create_invitation .execute"))).click()
    status = wait.until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "#operations-customers-create_invitation .live-responses-table tbody .response-col_status"))
    )
    assert status.text.strip().startswith("201"), status.text
