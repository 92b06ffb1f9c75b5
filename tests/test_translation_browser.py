"""The console's translation review end to end in real headless Chromium (Debian chromium, Selenium).

`sibyl serve` runs over a private copy of the index and corpus; an operator uploads a small Italian
document in the console, its lines are listed as untranslated, `sibyl translate` (a real subprocess)
drafts them against an OpenAI-compatible server written with http.server, and the operator reviews
them: a draft with a changed number is refused until corrected, another is edited and approved. The
audit page shows the approvals and the drafts file in the data directory now says approved.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from retrieval.text import strip_control
from retrieval.translations import normalise, source_hash
from tests.browser import REPO, make_driver, nav_link, sibyl_server
from tests.operator_support import PASSWORD, isolated_settings
from tests.translation_support import (
    CANNED,
    DOC,
    DOC_ID,
    DOC_NAME,
    FIRST,
    FIXED_SECOND,
    SECOND,
    TITLE,
    FakeOpenAI,
)

pytestmark = pytest.mark.slow

EDITED_TITLE = "Urban garden of Borgo San Nicola"


@pytest.fixture(scope="module")
def server(settings, built_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("translation-web")
    own = isolated_settings(settings, tmp)
    env = dict(os.environ, SIBYL_DATA_DIR=str(own.data_dir), SIBYL_CORPUS_DIR=str(own.corpus_dir),
               SIBYL_RATE_LIMIT="", HF_HUB_OFFLINE="1", SIBYL_API_WORKERS="1", SIBYL_LLM="none")
    env.pop("SIBYL_DATABASE_URL", None)
    added = subprocess.run([sys.executable, "-m", "sibyl", "operator", "add", "mario"], input=PASSWORD + "\n",
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert added.returncode == 0, added.stderr
    with sibyl_server(env, tmp) as (url, _proc):
        yield {"url": url, "tmp": tmp, "env": env, "data": own.data_dir}


@pytest.fixture
def browser(tmp_path):
    driver = make_driver(tmp_path / "profile", width=1280, height=1000)
    yield driver
    driver.quit()


def wait(driver, seconds: float = 60):
    return WebDriverWait(driver, seconds)


def line(d, text: str):
    return d.find_element(By.ID, f"tr-{source_hash(text)}")


def test_operator_reviews_drafted_translations_in_chromium(server, browser):
    url, d = server["url"], browser
    d.get(url + "/operatore/login")
    wait(d).until(lambda d: d.find_element(By.ID, "login-form"))
    d.find_element(By.ID, "username").send_keys("mario")
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.ID, "login-button").click()
    wait(d).until(lambda d: d.current_url.endswith("/operatore/cerca"))

    # the shipped corpus is fully translated: nothing to review
    nav_link(d, "Traduzioni").click()
    wait(d).until(lambda d: d.find_elements(By.ID, "tr-empty"))
    assert nav_link(d, "Traduzioni").text == "Traduzioni"

    # upload a small Italian document: its lines are listed as having no draft
    doc = server["tmp"] / DOC_NAME
    doc.write_text(DOC, encoding="utf-8")
    nav_link(d, "Documenti").click()
    d.find_element(By.ID, "upload-file").send_keys(str(doc))
    d.find_element(By.ID, "upload-button").click()
    wait(d).until(lambda d: d.find_elements(By.ID, "doc-message") or d.find_elements(By.ID, "doc-error"))
    assert not d.find_elements(By.ID, "doc-error"), d.find_element(By.ID, "doc-error").text
    wait(d, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-document="{DOC_ID}"]'))
    nav_link(d, "Traduzioni").click()
    wait(d).until(lambda d: d.find_elements(By.CSS_SELECTOR, f'section[data-document="{DOC_ID}"]'))
    kinds = {a.get_attribute("data-hash"): a.get_attribute("data-kind")
             for a in d.find_elements(By.CSS_SELECTOR, "article.tr-line")}
    assert kinds == {source_hash(t): "missing" for t in (TITLE, FIRST, SECOND)}

    # the command drafts them against the model server; they wait as pending, the menu counts them
    with FakeOpenAI() as model:
        done = subprocess.run([sys.executable, "-m", "sibyl", "translate", "--document", DOC_ID], cwd=REPO,
                              env=dict(server["env"], SIBYL_LLM="openai:fake", SIBYL_LLM_BASE_URL=model.url),
                              capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "drafted 3 (failed checks 1" in done.stdout
    d.refresh()
    wait(d).until(lambda d: nav_link(d, "Traduzioni").text == "Traduzioni (3)")
    second = line(d, SECOND)
    assert second.get_attribute("data-kind") == "pending"
    assert second.find_element(By.CSS_SELECTOR, ".tr-original").text == SECOND
    assert second.find_element(By.TAG_NAME, "textarea").get_attribute("value") == CANNED[SECOND]
    assert "I numeri sono diversi" in second.find_element(By.CSS_SELECTOR, ".tr-problems li.error").text

    # approving the changed number is refused, with the problem shown next to the edited text
    second.find_element(By.CSS_SELECTOR, "button.tr-approve").click()
    wait(d).until(lambda d: d.find_elements(By.ID, "tr-error"))
    second = line(d, SECOND)
    assert "12500 2025" in second.find_element(By.CSS_SELECTOR, ".tr-problems li.error").text
    box = second.find_element(By.TAG_NAME, "textarea")
    box.clear()
    box.send_keys(FIXED_SECOND)
    second.find_element(By.CSS_SELECTOR, "button.tr-approve").click()
    wait(d).until(lambda d: d.find_elements(By.ID, "tr-message"))
    assert not d.find_elements(By.ID, f"tr-{source_hash(SECOND)}")

    # edit another draft and approve it
    box = line(d, TITLE).find_element(By.TAG_NAME, "textarea")
    box.clear()
    box.send_keys(EDITED_TITLE)
    line(d, TITLE).find_element(By.CSS_SELECTOR, "button.tr-approve").click()
    wait(d).until(lambda d: d.find_elements(By.ID, "tr-message"))
    assert d.find_element(By.ID, "tr-message").text.startswith("Traduzione approvata")
    assert nav_link(d, "Traduzioni").text == "Traduzioni (1)"

    # the audit page shows the approvals (and the refusal), edited text included
    nav_link(d, "Registro attività").click()
    wait(d).until(lambda d: d.find_elements(By.ID, "audit"))
    rows = [(r.get_attribute("data-action"), r.text) for r in d.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    approved = [text for action, text in rows if action == "translation_approved"]
    assert len(approved) == 2 and all("mario" in r and "Traduzione approvata" in r for r in approved)
    assert any(EDITED_TITLE in r and "modificata: sì" in r for r in approved)
    assert any(action == "translation_approval_refused" for action, _ in rows)

    # the drafts file now says approved, with the operator's text
    with (server["data"] / "translations" / "en" / f"{DOC_ID}.toml").open("rb") as fh:
        rows = {row["it"]: row for row in tomllib.load(fh)["line"]}
    assert (rows[SECOND]["status"], rows[SECOND]["en"]) == ("approved", FIXED_SECOND)
    assert (rows[TITLE]["status"], rows[TITLE]["en"]) == ("approved", EDITED_TITLE)
    assert rows[FIRST]["status"] == "pending"


# --- the same endpoint over plain HTTP: typed refusals, any text an operator types -----------------------
@pytest.fixture(scope="module")
def operator_http(server):
    with httpx.Client(base_url=server["url"], timeout=60) as c:
        page = c.get("/operatore/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = c.post("/operatore/login", data={"username": "mario", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/operatore/traduzioni").text).group(1)
        yield c, csrf


def post(c, csrf, **form):
    return c.post("/operatore/traduzioni", data={"csrf_token": csrf, **form})


def test_bad_requests_get_a_typed_answer_and_change_nothing(server, operator_http):
    c, csrf = operator_http
    drafts = server["data"] / "translations" / "en" / f"{DOC_ID}.toml"
    before = drafts.read_bytes()
    assert post(c, csrf, source_hash=source_hash(FIRST), action="delete", en="x").status_code == 422
    assert post(c, csrf, source_hash="0" * 16, action="approve", en="x").status_code == 404
    assert post(c, csrf, source_hash=source_hash(TITLE) + "x" * 100, action="approve").status_code == 422
    assert post(c, csrf, source_hash=source_hash(FIRST), action="save", en="  ").status_code == 422
    assert post(c, csrf, source_hash=source_hash(FIRST), action="approve", en=CANNED[FIRST].replace("40", "4")
                ).status_code == 422
    assert post(c, csrf, source_hash=source_hash(FIRST), action="save", en="x" * 6000).status_code == 422
    assert c.post("/operatore/traduzioni", data={"source_hash": source_hash(FIRST), "action": "reject"}
                  ).status_code == 403  # no CSRF token
    assert drafts.read_bytes() == before


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_any_text_an_operator_saves_is_stored_or_refused(server, operator_http, text):
    c, csrf = operator_http

    def first():
        with (server["data"] / "translations" / "en" / f"{DOC_ID}.toml").open("rb") as fh:
            return {row["it"]: row for row in tomllib.load(fh)["line"]}[FIRST]

    before = first()["en"]
    r = post(c, csrf, source_hash=source_hash(FIRST), action="save", en=text)
    expected = normalise(strip_control(text))
    assert r.status_code == (303 if expected else 422), r.text[-300:]
    assert (first()["status"], first()["en"]) == ("pending", expected or before)
