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


# --- 2. one vote per session and answer, changeable; a 👎 can carry a reason -----------------------
def stored_votes(db_url: str, message_id: str):
    from sibyl.store import Store

    store = Store(db_url)
    try:
        return [f for f in store.feedback() if f.message_id == message_id]
    finally:
        store.engine.dispose()


def test_a_web_vote_can_be_changed_and_a_thumbs_down_explained(server, english_browser):
    d = english_browser
    answer = ask(d, "What is the City doing for sustainable mobility?")
    mid = answer.get_attribute("data-message-id")
    up = answer.find_element(By.CSS_SELECTOR, "button.fb.up")
    down = answer.find_element(By.CSS_SELECTOR, "button.fb.down")
    reason = answer.find_element(By.CSS_SELECTOR, "form.fb-reason")
    up.click()
    wait(d, 10).until(lambda _: up.get_attribute("aria-pressed") == "true")
    assert not reason.is_displayed()
    down.click()
    wait(d, 10).until(lambda _: down.get_attribute("aria-pressed") == "true")
    assert up.get_attribute("aria-pressed") == "false"
    wait(d, 10).until(lambda _: reason.is_displayed())
    votes = stored_votes(server["db_url"], mid)
    assert [f.rating for f in votes] == [-1] and votes[0].voter == f"web:{votes[0].session_id}"

    box = reason.find_element(By.CSS_SELECTOR, "input")
    assert reason.find_element(By.CSS_SELECTOR, "label").get_attribute("for") == box.get_attribute("id")
    box.send_keys("The 2024 figures are missing")
    box.send_keys(Keys.ENTER)
    wait(d, 10).until(lambda _: not reason.is_displayed())
    assert "noted" in answer.find_element(By.CSS_SELECTOR, ".fb-status").text
    assert [(f.rating, f.comment) for f in stored_votes(server["db_url"], mid)] == [
        (-1, "The 2024 figures are missing")]


# --- 3. sources that open: the public, read-only view of a cited document -------------------------
def test_a_citation_opens_the_document_at_the_highlighted_passage(server, english_browser):
    d = english_browser
    answer = ask(d, "What is the City doing for sustainable mobility?")
    cite = answer.find_element(By.CSS_SELECTOR, ".answer button.cite")
    cite.click()
    link = answer.find_element(By.CSS_SELECTOR, "section.passage .doc-link a")
    href = link.get_attribute("href")
    document, _, passage = href.partition("/documenti/")[2].partition("#")
    assert link.text == "Read it in the document" and passage
    d.get(href)
    target = d.find_element(By.CSS_SELECTOR, "section.passage:target")
    assert target.get_attribute("id") == passage
    assert target.value_of_css_property("outline-style") == "solid"
    assert d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert d.find_element(By.TAG_NAME, "h1").text
    assert len(d.find_elements(By.CSS_SELECTOR, "section.passage")) > 1  # the whole document, not one passage
    d.back()


def test_the_document_view_is_escaped_public_and_404s_unknown_ids(server):
    from urllib.parse import quote

    import httpx
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from markupsafe import escape

    base = server["url"]
    docs = httpx.get(base + "/api/documents").json()["documents"]
    page = httpx.get(f"{base}/documenti/{docs[0]['id']}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text and "/operatore" not in page.text and "session" not in page.text
    assert str(escape(docs[0]["title"])) in page.text  # Jinja's own escaping
    assert httpx.get(base + "/documenti/not-a-document").status_code == 404

    # follow_redirects: an id ending in an encoded "/" is redirected to the id without it (Starlette's
    # redirect_slashes), which then answers like any other id
    with httpx.Client(base_url=base, follow_redirects=True) as client:
        @settings(max_examples=40, deadline=None)
        @given(st.text(min_size=1, max_size=80))
        def any_id(value):
            response = client.get("/documenti/" + quote(value, safe=""))  # any id, percent-encoded
            assert response.status_code in (200, 404, 422), (value, response.status_code)
            assert "<script" not in response.text

        any_id()


def test_the_official_link_comes_from_the_catalog_and_only_if_it_is_http(tmp_path):
    from api.documents import official_url

    (tmp_path / "catalog.toml").write_text(
        '["a.txt"]\nurl = "https://www.comune.lecce.it/a.pdf"\n["b.txt"]\nurl = "javascript:alert(1)"\n')
    assert official_url(tmp_path, "a.txt") == "https://www.comune.lecce.it/a.pdf"
    assert official_url(tmp_path, "b.txt") is None
    assert official_url(tmp_path, "c.txt") is None
