"""Verified answers end to end in headless Chromium: an operator writes and approves one in the console of a
real `sibyl serve`, and a citizen's differently worded question in the web chat gets it, marked verified."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import REPO, make_driver, sibyl_server
from tests.operator_support import PASSWORD, isolated_settings

pytestmark = pytest.mark.slow

QUESTION = "Quando apre la piscina comunale di via Roma?"
ANSWER = "La piscina comunale di via Roma apre alle 8:30 dal lunedì al sabato."
REWORDED = "A che ora apre la piscina comunale in via Roma?"


@pytest.fixture(scope="module")
def server(settings, built_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faq-web")
    own = isolated_settings(settings, tmp)
    env = dict(os.environ, SIBYL_DATA_DIR=str(own.data_dir), SIBYL_CORPUS_DIR=str(own.corpus_dir),
               SIBYL_RATE_LIMIT="", HF_HUB_OFFLINE="1", SIBYL_API_WORKERS="1")
    env.pop("SIBYL_DATABASE_URL", None)
    added = subprocess.run([sys.executable, "-m", "sibyl", "operator", "add", "mario"], input=PASSWORD + "\n",
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert added.returncode == 0, added.stderr
    with sibyl_server(env, tmp) as (url, _proc):
        yield {"url": url, "tmp": tmp}


def test_an_approved_verified_answer_reaches_the_web_chat(server, tmp_path):
    url = server["url"]
    d = make_driver(tmp_path / "profile", width=1280, height=1000)
    # the console re-renders after a save or an approval: an element read while it is replaced is read again
    wait = WebDriverWait(d, 60, ignored_exceptions=(StaleElementReferenceException,))
    try:
        d.get(url + "/operatore/login")
        d.find_element(By.ID, "username").send_keys("mario")
        d.find_element(By.ID, "password").send_keys(PASSWORD)
        d.find_element(By.ID, "login-button").click()
        wait.until(lambda d: d.current_url.endswith("/operatore/cerca"))

        # a passage to cite, from the console's search
        d.find_element(By.ID, "q").send_keys("mobilità sostenibile")
        d.find_element(By.ID, "search-button").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results li.hit"))
        passage = d.find_elements(By.CSS_SELECTOR, "#results li.hit")[0].get_attribute("data-id")

        d.find_element(By.LINK_TEXT, "Risposte verificate").click()
        wait.until(lambda d: d.find_element(By.ID, "faq-new")).click()
        wait.until(lambda d: d.find_element(By.ID, "faq-question")).send_keys(QUESTION)
        d.find_element(By.ID, "faq-answer-it").send_keys(ANSWER)
        d.find_element(By.ID, "faq-sources").send_keys(passage)
        d.find_element(By.ID, "faq-save").click()
        assert wait.until(lambda d: d.find_element(By.ID, "faq-status")).text == "bozza"
        d.find_element(By.ID, "faq-approve").click()
        wait.until(lambda d: d.find_element(By.ID, "faq-status").text == "approvata")
        assert "Approvata" in d.find_element(By.ID, "faq-message").text
        folder = Path(os.environ.get("SIBYL_SCREENSHOT_DIR") or server["tmp"])
        folder.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(folder / "operator-faq.png"))

        # a citizen asks it in other words in the web chat
        d.get(url + "/")
        box = wait.until(lambda d: d.find_element(By.ID, "q"))
        before = len(d.find_elements(By.CSS_SELECTOR, "#log article.msg.bot:not(.welcome)"))
        box.send_keys(REWORDED)
        box.send_keys(Keys.ENTER)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log article.msg.bot:not(.welcome)")) > before)

        def last_reply(d):
            return d.find_elements(By.CSS_SELECTOR, "#log article.msg.bot:not(.welcome)")[-1].text

        wait.until(lambda d: ANSWER in last_reply(d))
        assert "Risposta verificata dall'URP il" in last_reply(d)
    finally:
        d.quit()
