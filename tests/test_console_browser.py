"""The console's accessibility fixes (issue 15) in real headless Chromium at 1366 px: the menu on one line, a
working skip link, a visible focus ring on dark buttons, "Rimuovi" styled as dangerous and confirmed, and the
dashboard page. `sibyl serve` runs in a subprocess over a private copy of the session index."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import REPO, make_driver, sibyl_server
from tests.operator_support import PASSWORD, isolated_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(settings, built_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-a11y")
    own = isolated_settings(settings, tmp)
    env = dict(os.environ, SIBYL_DATA_DIR=str(own.data_dir), SIBYL_CORPUS_DIR=str(own.corpus_dir),
               SIBYL_RATE_LIMIT="", HF_HUB_OFFLINE="1", SIBYL_API_WORKERS="1")
    env.pop("SIBYL_DATABASE_URL", None)
    added = subprocess.run([sys.executable, "-m", "sibyl", "operator", "add", "mario"], input=PASSWORD + "\n",
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr
    with sibyl_server(env, tmp) as (url, _proc):
        yield url


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    driver = make_driver(tmp_path_factory.mktemp("console-a11y-profile"), width=1366, height=900)
    driver.get(server + "/operatore/login")
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "login-form"))
    driver.find_element(By.ID, "username").send_keys("mario")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-button").click()
    WebDriverWait(driver, 60).until(lambda d: d.current_url.endswith("/operatore/cerca"))
    yield driver
    driver.quit()


@pytest.mark.parametrize("page", ["cerca", "cruscotto", "documenti", "registro"])
def test_menu_is_one_line_at_1366(server, browser, page):
    browser.get(f"{server}/operatore/{page}")
    assert browser.execute_script("return window.innerWidth") <= 1366
    tops = browser.execute_script(
        "return [...document.querySelectorAll('header.top nav > a, header.top nav > details > summary,"
        " header.top .right > *')].map(e => Math.round(e.getBoundingClientRect().top))")
    assert tops and max(tops) - min(tops) <= 6, tops  # every item on the header's one line
    header = browser.execute_script("return document.querySelector('header.top').getBoundingClientRect().height")
    assert header < 60
    overflow = browser.execute_script("return document.documentElement.scrollWidth > window.innerWidth")
    assert overflow is False


def test_skip_link_moves_focus_to_the_content(server, browser):
    browser.get(f"{server}/operatore/cruscotto")  # no autofocus: the first Tab starts at the top of the page
    ActionChains(browser).send_keys(Keys.TAB).perform()
    focused = browser.switch_to.active_element
    assert focused.get_attribute("id") == "skip-link" and focused.text == "Vai al contenuto"
    assert focused.is_displayed() and focused.rect["y"] >= 0
    focused.send_keys(Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda d: d.switch_to.active_element.get_attribute("id") == "main")
    assert browser.current_url.endswith("#main")


def test_focus_ring_on_a_dark_button(server, browser):
    browser.get(f"{server}/operatore/cerca")
    browser.find_element(By.ID, "q").click()
    browser.find_element(By.ID, "q").send_keys(Keys.TAB)  # keyboard focus: :focus-visible
    button = browser.switch_to.active_element
    assert button.get_attribute("id") == "search-button"
    style = browser.execute_script("const s = getComputedStyle(arguments[0]); "
                                   "return [s.outlineStyle, s.outlineWidth, s.outlineColor, s.backgroundColor]", button)
    assert style[0] == "solid" and float(style[1].rstrip("px")) >= 3
    assert style[2] == "rgb(255, 191, 71)" and style[3] == "rgb(11, 79, 138)"  # amber on the dark blue


def test_remove_is_dangerous_and_confirmed(server, browser):
    browser.get(f"{server}/operatore/documenti")
    button = browser.find_element(By.CSS_SELECTOR, 'tr[data-document] form.confirm button.danger')
    assert button.text == "Rimuovi"
    assert browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor", button) == \
        "rgb(179, 38, 30)"
    rows = len(browser.find_elements(By.CSS_SELECTOR, "tr[data-document]"))
    button.click()
    alert = WebDriverWait(browser, 10).until(lambda d: d.switch_to.alert)
    assert alert.text == "Rimuovere il documento dall'indice?"
    alert.dismiss()  # nothing removed
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr[data-document]")) == rows
    assert "/documenti" in browser.current_url and not browser.find_elements(By.ID, "doc-message")


def test_dashboard_in_the_menu(server, browser):
    browser.get(f"{server}/operatore/cerca")
    browser.find_element(By.LINK_TEXT, "Cruscotto").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "kpi-questions"))
    assert browser.find_element(By.CSS_SELECTOR, 'nav a[aria-current="page"]').text == "Cruscotto"
    browser.find_element(By.CSS_SELECTOR, "#nav-more summary").click()
    link = browser.find_element(By.CSS_SELECTOR, "#nav-more .more-menu a[href$='/registro']")
    assert link.is_displayed()
    link.click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "audit"))
