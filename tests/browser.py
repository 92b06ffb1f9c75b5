"""Shared by the browser tests: the real app (`sibyl serve`) on loopback and Debian's headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.deploy_support import REPO, free_port, stop, wait_http

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never look anything up

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

__all__ = ["REPO", "CHROMIUM", "CHROMEDRIVER", "free_port", "sibyl_server", "make_driver", "nav_link"]


@contextmanager
def sibyl_server(env: dict, tmp: Path, timeout: float = 300):
    """`sibyl serve` in a subprocess on a free port; yields (url, process) once /readyz answers."""
    port = free_port()
    log_path = tmp / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sibyl", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/readyz", timeout, proc, log_path)
        except (RuntimeError, TimeoutError) as exc:
            stop(proc)
            pytest.fail(f"server not ready: {exc}")
        try:
            yield url, proc
        finally:
            stop(proc)


def make_driver(profile: Path, lang: str = "it-IT", width: int = 1100, height: int = 900,
                extra_args: tuple[str, ...] = ()):
    """Headless Chromium with the flags this closed network needs; a missing browser fails, never skips."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--lang={lang}",
                 f"--window-size={width},{height}", *extra_args):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def nav_link(driver, text: str):
    """A console menu link by (partial) text, opening the menu's "More" list first when the link is in it
    (a closed list's links have no rendered text, so they cannot be found by it)."""
    from selenium.webdriver.common.by import By

    found = [a for a in driver.find_elements(By.PARTIAL_LINK_TEXT, text) if a.is_displayed()]
    if not found:
        driver.find_element(By.CSS_SELECTOR, "#nav-more summary").click()
        found = [driver.find_element(By.PARTIAL_LINK_TEXT, text)]
    return found[0]
