"""What the browser checks share: a sandbox gateway started with a configuration of the test's,
and headless Chromium (Debian's chromium and chromedriver; nothing is downloaded)."""

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

BINARY = os.environ["PG_BIN"]


@contextlib.contextmanager
def sandbox_gateway(config_path):
    """`serve --sandbox` with this configuration file, on a free loopback port; yields its URL once ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, GATEWAY__SERVER__LISTEN=f"127.0.0.1:{port}", GATEWAY__LOG__LEVEL="warn")
    proc = subprocess.Popen(
        [BINARY, "serve", "--sandbox", "--config", str(config_path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
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
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextlib.contextmanager
def chromium(window_size):
    """Headless Chromium with a window of this size ("WIDTH,HEIGHT")."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--window-size={window_size}", f"--user-data-dir={tempfile.mkdtemp()}",
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()
