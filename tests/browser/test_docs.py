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

import pytest
from conftest import chromium, sandbox_gateway
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOT = os.environ.get("SCREENSHOT", "target/swagger-ui.png")


KEY = "pgw_browser_" + secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "auth.toml"
    config.write_text(
        '[[auth.api_keys]]\nname = "browser"\nsha256 = "%s"\nscopes = ["invitations:send", "credit:allocate"]\n'
        % hashlib.sha256(KEY.encode()).hexdigest()
    )
    with sandbox_gateway(config) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with chromium("1280,1500") as driver:
        yield driver


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
