"""Issue 17 in the web chat: the real app (`sibyl serve` on loopback over the session's index) in headless
Chromium, one server and one browser per language for the module."""

from __future__ import annotations

import os

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import make_driver, sibyl_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(settings, built_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("channels-web")
    db_url = f"sqlite:///{tmp / 'sibyl.db'}"
    env = dict(os.environ, SIBYL_DATA_DIR=str(settings.data_dir), SIBYL_CORPUS_DIR=str(settings.corpus_dir),
               SIBYL_DATABASE_URL=db_url, SIBYL_RATE_LIMIT="", HF_HUB_OFFLINE="1", SIBYL_API_WORKERS="1")
    with sibyl_server(env, tmp) as (url, proc):
        yield {"url": url, "db_url": db_url, "proc": proc, "tmp": tmp}


@pytest.fixture(scope="module")
def english_browser(tmp_path_factory):
    driver = make_driver(tmp_path_factory.mktemp("profile-en"), lang="en-US")
    yield driver
    driver.quit()


def wait(driver, seconds: float = 60):
    return WebDriverWait(driver, seconds)


def answers(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#log article.msg.bot:not(.welcome)")


def open_chat(driver, url: str) -> None:
    driver.get(url + "/")
    wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#log article.welcome")))


def ask(driver, text: str):
    before = len(answers(driver))
    box = driver.find_element(By.ID, "q")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    wait(driver).until(lambda d: len(answers(d)) > before or d.find_elements(By.CSS_SELECTOR, ".msg.error"))
    assert not driver.find_elements(By.CSS_SELECTOR, ".msg.error"), driver.find_element(By.ID, "log").text
    return answers(driver)[-1]


def answer_language(article) -> str:
    return article.find_element(By.CSS_SELECTOR, ".answer").get_attribute("lang")


# --- 1. the answer language falls back to the chat's interface language ------------------------
def test_name_only_questions_follow_the_interface_language(server, english_browser):
    d = english_browser
    open_chat(d, server["url"])
    assert d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert answer_language(ask(d, "City Lab?")) == "en"
    assert answer_language(ask(d, "cos'è City4Age?")) == "it"  # the text says Italian: it wins
    d.find_element(By.ID, "new-chat").click()
    d.find_element(By.ID, "lang-toggle").click()  # now Italian
    wait(d, 10).until(lambda x: x.find_element(By.TAG_NAME, "html").get_attribute("lang") == "it")
    assert answer_language(ask(d, "City4Age")) == "it"
    d.find_element(By.ID, "lang-toggle").click()  # back to English for the next tests
    wait(d, 10).until(lambda x: x.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")

