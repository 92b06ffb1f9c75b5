"""The operator console end to end in real headless Chromium (Debian chromium + chromium-driver, Selenium).

`sibyl serve` runs in a subprocess over a private copy of the session index and corpus (the upload
re-indexes); the operator account is made with `sibyl operator add`. The abstained question is asked in
the citizen web chat page, then found in the operator's unanswered list.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# No skip: without Debian's chromium + chromium-driver (apt-get install chromium chromium-driver) this fails.
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser import REPO, make_driver, nav_link, sibyl_server
from tests.operator_support import PASSWORD, isolated_settings

pytestmark = pytest.mark.slow

ABSTAIN = "Quali sono gli orari della piscina comunale di via Roma?"
NEW_DOC = ("# Orto urbano di Borgo San Nicola\n\nIl Comune di Lecce affida a un'associazione di quartiere l'orto "
           "urbano di Borgo San Nicola: quaranta parcelle coltivabili, una compostiera di comunità e laboratori "
           "di giardinaggio per le scuole primarie del quartiere.\n")


@pytest.fixture(scope="module")
def server(settings, built_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("operator-web")
    own = isolated_settings(settings, tmp)
    env = dict(os.environ, SIBYL_DATA_DIR=str(own.data_dir), SIBYL_CORPUS_DIR=str(own.corpus_dir),
               SIBYL_RATE_LIMIT="", HF_HUB_OFFLINE="1", SIBYL_API_WORKERS="1")
    env.pop("SIBYL_DATABASE_URL", None)
    added = subprocess.run([sys.executable, "-m", "sibyl", "operator", "add", "mario"], input=PASSWORD + "\n",
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr
    with sibyl_server(env, tmp) as (url, _proc):
        yield {"url": url, "tmp": tmp, "corpus": own.corpus_dir}


@pytest.fixture
def browser(tmp_path):
    driver = make_driver(tmp_path / "profile", width=1280, height=1000)
    yield driver
    driver.quit()


def wait(driver, seconds: float = 60):
    return WebDriverWait(driver, seconds)


def screenshot_path(tmp: Path) -> Path:
    folder = Path(os.environ.get("SIBYL_SCREENSHOT_DIR") or tmp)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "operator-search.png"


def test_operator_console_in_chromium(server, browser):
    url = server["url"]
    d = browser

    # a citizen asks the web chat something the documents do not cover
    d.get(url + "/")
    box = wait(d).until(lambda d: d.find_element(By.ID, "q"))
    before = len(d.find_elements(By.CSS_SELECTOR, "#log article.msg.bot:not(.welcome)"))
    box.send_keys(ABSTAIN)
    box.send_keys(Keys.ENTER)
    wait(d).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log article.msg.bot:not(.welcome)")) > before)

    # the console is closed without a login
    d.get(url + "/operatore/cerca")
    assert d.find_elements(By.ID, "go-login")
    d.find_element(By.ID, "go-login").click()

    # log in
    wait(d).until(lambda d: d.find_element(By.ID, "login-form"))
    d.find_element(By.ID, "username").send_keys("mario")
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.ID, "login-button").click()
    wait(d).until(lambda d: d.current_url.endswith("/operatore/cerca"))

    # search with a filter (DUP area 4, mobility)
    d.find_element(By.ID, "q").send_keys("mobilità sostenibile")
    Select(d.find_element(By.ID, "f-area")).select_by_value("dup-2025-2027-obiettivi-strategici|4")
    d.find_element(By.ID, "search-button").click()
    wait(d).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results li.hit"))
    hits = d.find_elements(By.CSS_SELECTOR, "#results li.hit")
    assert all(h.get_attribute("data-area") == "4" for h in hits)
    assert all(h.get_attribute("data-id").startswith("dup-2025-2027-obiettivi-strategici:") for h in hits)
    assert d.find_elements(By.CSS_SELECTOR, "#results mark")
    first = hits[0]
    first.find_element(By.TAG_NAME, "summary").click()  # the full passage, one click away
    assert first.find_element(By.CSS_SELECTOR, ".passage").is_displayed()
    shot = screenshot_path(server["tmp"])
    d.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    # reply draft, copied with the button
    d.find_element(By.ID, "draft-link").click()
    wait(d).until(lambda d: d.find_element(By.ID, "draft-text"))
    draft = d.find_element(By.ID, "draft-text").get_attribute("value")
    assert draft.startswith("Gentile cittadina") and "[1]" in d.find_element(By.ID, "draft-text").get_attribute("value")
    d.execute_cdp_cmd("Browser.grantPermissions", {"origin": url, "permissions": ["clipboardReadWrite",
                                                                                  "clipboardSanitizedWrite"]})
    d.find_element(By.ID, "copy-text").click()
    wait(d, 10).until(lambda d: d.find_element(By.ID, "copy-status").text)
    assert d.find_element(By.ID, "copy-status").text == "Copiato negli appunti."
    pasted = d.execute_async_script("const done = arguments[0]; navigator.clipboard.readText().then(done, "
                                    "e => done('ERR ' + e));")
    assert pasted.strip() == draft.strip()

    # the abstained web-chat question is in the unanswered list
    d.find_element(By.LINK_TEXT, "Domande senza risposta").click()
    wait(d).until(lambda d: d.find_elements(By.ID, "unanswered"))
    rows = d.find_elements(By.CSS_SELECTOR, "#unanswered tr.group")
    row = next(r for r in rows if "piscina comunale" in r.text)
    assert "web" in row.text

    # upload a small document, wait for the background ingest, then find it by search
    doc = server["tmp"] / "orto-urbano.md"
    doc.write_text(NEW_DOC, encoding="utf-8")
    nav_link(d, "Documenti").click()
    d.find_element(By.ID, "upload-file").send_keys(str(doc))
    d.find_element(By.ID, "upload-button").click()
    wait(d).until(lambda d: d.find_elements(By.ID, "doc-message") or d.find_elements(By.ID, "doc-error"))
    assert not d.find_elements(By.ID, "doc-error"), d.find_element(By.ID, "doc-error").text
    wait(d, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-document="orto-urbano"]'))
    d.find_element(By.LINK_TEXT, "Ricerca").click()
    d.find_element(By.ID, "q").send_keys("orto urbano Borgo San Nicola")
    d.find_element(By.ID, "search-button").click()
    wait(d).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results li.hit"))
    assert d.find_elements(By.CSS_SELECTOR, "#results li.hit")[0].get_attribute("data-id").startswith("orto-urbano:")

    # log out: the console is closed again
    d.find_element(By.ID, "logout").click()
    wait(d).until(lambda d: "/operatore/login" in d.current_url)
    d.get(url + "/operatore/cerca")
    assert d.find_elements(By.ID, "go-login")
