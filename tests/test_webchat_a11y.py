"""The web chat for everyone (issue 17, item 7), audited in headless Chromium.

axe-core 4.x (from npm, installed once into a cache directory) must report zero violations in every
chat state (empty, after an answer, sources expanded, error), in dark mode and without JavaScript.
The real app runs under uvicorn on loopback with the test pipeline (tests/fakes.py): the page, the
API, the store and the conversation service are the real ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

import prompts
from api.app import create_app
from sibyl.services import build_services
from sibyl.settings import Settings
from tests.browser import free_port, make_driver
from tests.fakes import FakePipeline

pytestmark = pytest.mark.slow

AXE_VERSION = "4.14"
TOKENS = ["Il ", "Comune ", "realizza ", "piste ", "ciclabili."]  # what a model would stream
UI_IT, UI_EN = prompts.catalog("ui", "it"), prompts.catalog("ui", "en")


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's minified script from npm (MPL-2.0), cached outside the repository."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sibyl-tests" / "axe"
    script = cache / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(cache),
                        f"axe-core@~{AXE_VERSION}"], check=True, capture_output=True, timeout=300)
    return script.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real app (FastAPI + uvicorn on a loopback port) over the test pipeline."""
    tmp = tmp_path_factory.mktemp("a11y")
    config = Settings(data_dir=tmp, corpus_dir=Path("corpus"), database_url=f"sqlite:///{tmp / 'sibyl.db'}",
                        rate_limit="", _env_file=None)
    app = create_app(config, build=lambda s: build_services(s, pipeline=FakePipeline(settings=s, tokens=TOKENS)))
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = make_driver(tmp_path_factory.mktemp("profile"), lang="it-IT")
    yield d
    d.quit()


def media(d, **features: str) -> None:
    """Emulate CSS media features (prefers-color-scheme, forced-colors); none resets them."""
    d.execute_cdp_cmd("Emulation.setEmulatedMedia",
                      {"features": [{"name": k.replace("_", "-"), "value": v} for k, v in features.items()]})


def fresh(d, url: str) -> None:
    d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    media(d, prefers_color_scheme="light", forced_colors="none")
    d.get(url + "/?lang=it")
    d.execute_script("localStorage.clear()")
    d.get(url + "/?lang=it")
    WebDriverWait(d, 30).until(lambda x: x.find_elements(By.CSS_SELECTOR, "#log article.welcome button.chip"))


def axe(d, source: str) -> list[str]:
    """axe-core's violations on the page as it is now (every rule axe runs by default)."""
    if not d.execute_script("return !!window.axe"):
        d.execute_script(source)
    result = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(JSON.stringify(r.violations.map("
        "v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', ')))),"
        " e => done(JSON.stringify(['axe failed: ' + e])));")
    return json.loads(result)


def bots(d):
    return d.find_elements(By.CSS_SELECTOR, "#log article.msg.bot:not(.welcome)")


def ask(d, text: str):
    before = len(bots(d))
    box = d.find_element(By.ID, "q")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    WebDriverWait(d, 60).until(lambda x: len(bots(x)) > before)
    WebDriverWait(d, 10).until(lambda x: x.find_element(By.ID, "log").get_attribute("aria-busy") == "false")
    return bots(d)[-1]


def test_axe_finds_nothing_in_every_chat_state(server, driver, axe_source):
    d = driver
    d.set_script_timeout(60)
    fresh(d, server)
    states = {"empty": axe(d, axe_source)}
    answer = ask(d, "Ci sono piste ciclabili per la bici?")
    states["answer"] = axe(d, axe_source)
    answer.find_element(By.CSS_SELECTOR, "button.cite").click()
    WebDriverWait(d, 10).until(lambda x: answer.find_element(By.CSS_SELECTOR, "section.passage").is_displayed())
    states["sources expanded"] = axe(d, axe_source)
    ask(d, "Qual è il colore preferito del sindaco?")  # no answer: the URP notice
    states["no answer"] = axe(d, axe_source)
    d.find_element(By.ID, "send").click()  # empty question: an error message
    WebDriverWait(d, 10).until(lambda x: x.find_elements(By.CSS_SELECTOR, ".msg.error"))
    states["error"] = axe(d, axe_source)
    media(d, prefers_color_scheme="dark")
    states["dark mode"] = axe(d, axe_source)
    media(d, forced_colors="active")
    states["forced colors"] = axe(d, axe_source)
    assert {state: found for state, found in states.items() if found} == {}


def test_without_javascript_the_page_is_labelled_and_answers(server, driver, axe_source):
    d = driver
    fresh(d, server)
    d.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        d.get(server + "/?lang=it")
        assert d.find_element(By.TAG_NAME, "h1").text == UI_IT["heading"]
        assert d.find_element(By.CSS_SELECTOR, "label[for=q]").text == UI_IT["input_label"]
        assert d.find_element(By.ID, "q").get_attribute("placeholder") == UI_IT["input_placeholder"]
        assert d.find_element(By.ID, "send").text == UI_IT["send"]
        assert d.find_element(By.ID, "lang-toggle").text == UI_IT["language_switch"]
        assert d.find_element(By.CSS_SELECTOR, "#log article.welcome").text.startswith(UI_IT["assistant"])
        assert UI_IT["noscript"] in d.page_source
        box = d.find_element(By.ID, "q")
        box.send_keys("Ci sono piste ciclabili per la bici?")
        d.find_element(By.ID, "send").click()  # the form posts; the server renders the answer
        WebDriverWait(d, 30).until(lambda x: x.find_elements(By.CSS_SELECTOR, "#log article.msg.bot .answer"))
        answer = d.find_element(By.CSS_SELECTOR, "#log article.msg.bot .answer")
        assert "piste ciclabili" in answer.text and answer.get_attribute("lang") == "it"
        summary = d.find_element(By.CSS_SELECTOR, ".sources details summary")
        summary.click()  # <details>: the passage opens without any script
        assert d.find_element(By.CSS_SELECTOR, ".sources details blockquote").is_displayed()
        session = d.find_element(By.CSS_SELECTOR, "input[name=session_id]").get_attribute("value")
        assert session  # the next question continues the same conversation
        d.find_element(By.ID, "lang-toggle").click()  # a plain GET: the page in English
        WebDriverWait(d, 30, ignored_exceptions=(StaleElementReferenceException,)).until(  # the new page loaded
            lambda x: x.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
        assert d.find_element(By.CSS_SELECTOR, "label[for=q]").text == UI_EN["input_label"]
        assert d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    finally:
        d.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    # the answer page, audited like the others (axe injected after the page was rendered without scripts)
    d.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        d.get(server + "/?lang=it")
        d.find_element(By.ID, "q").send_keys("Ci sono piste ciclabili per la bici?")
        d.find_element(By.ID, "send").click()
        WebDriverWait(d, 30).until(lambda x: x.find_elements(By.CSS_SELECTOR, "#log article.msg.bot .answer"))
    finally:
        d.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    assert axe(d, axe_source) == []


def test_a_bad_form_post_is_a_4xx_page(server):
    r = httpx.post(server + "/", data={"message": "   "})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert UI_IT["error_empty"] in r.text
    r = httpx.post(server + "/embed", data={"message": "x" * 5000, "language": "en"})
    assert r.status_code == 422 and 'role="alert"' in r.text
    r = httpx.post(server + "/", files={"message": ("q.txt", b"piste ciclabili bici?")})  # a file is not a question
    assert r.status_code == 422 and UI_IT["error_empty"] in r.text


@pytest.mark.parametrize("zoom", [2, 4])
def test_zoomed_in_the_page_scrolls_and_the_conversation_keeps_its_room(server, driver, zoom):
    d = driver
    fresh(d, server)
    for _ in range(3):
        ask(d, "Ci sono piste ciclabili per la bici?")
    # browser zoom at 1100x900: the page lays out in a 1100/zoom x 900/zoom CSS-pixel viewport
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 1100 // zoom, "height": 900 // zoom, "deviceScaleFactor": zoom, "mobile": False})
    sizes = d.execute_script(
        "const log = document.getElementById('log');"
        "return {inner: innerHeight, page: document.scrollingElement.scrollHeight,"
        " logClient: log.clientHeight, logScroll: log.scrollHeight};")
    assert sizes["logScroll"] <= sizes["logClient"] + 1, sizes  # the log is not a little scroll box
    assert sizes["logClient"] >= sizes["inner"], sizes  # the conversation is at least a window high
    assert sizes["page"] > sizes["inner"], sizes  # the page itself scrolls
    d.execute_script("document.getElementById('q').scrollIntoView()")
    assert d.find_element(By.ID, "q").is_displayed()


def test_languages_are_tagged_per_message_and_retagged_on_toggle(server, driver):
    d = driver
    fresh(d, server)
    answer = ask(d, "What about the bike lanes?")  # an English question in the Italian page
    assert answer.find_element(By.CSS_SELECTOR, ".answer").get_attribute("lang") == "en"
    asked = d.find_elements(By.CSS_SELECTOR, "#log article.msg.user .text")[-1]
    assert asked.get_attribute("lang") == "en"
    chips = answer.find_elements(By.CSS_SELECTOR, "button.chip")
    assert chips and {c.get_attribute("lang") for c in chips} == {"en"}
    answer.find_element(By.CSS_SELECTOR, "button.cite").click()
    quote = answer.find_element(By.CSS_SELECTOR, "blockquote.passage-text")
    assert quote.get_attribute("lang") == "it"  # the document's own language
    heading = answer.find_element(By.CSS_SELECTOR, ".sources-box h2")
    assert heading.text == UI_IT["sources"]
    d.find_element(By.ID, "lang-toggle").click()
    WebDriverWait(d, 10).until(lambda x: x.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    WebDriverWait(d, 10).until(lambda x: heading.text == UI_EN["sources"])  # the interface re-translated
    lang_of = "return arguments[0].closest('[lang]').getAttribute('lang')"
    assert d.execute_script(lang_of, heading) == "en"
    assert answer.find_element(By.CSS_SELECTOR, ".answer").get_attribute("lang") == "en"
    assert d.execute_script(lang_of, quote) == "it"
    assert d.find_element(By.ID, "lang-toggle").get_attribute("lang") == "it"


def test_a_short_summary_is_announced_and_the_log_is_not_busy(server, driver):
    d = driver
    fresh(d, server)
    log = d.find_element(By.ID, "log")
    assert log.get_attribute("aria-live") == "off"  # the whole answer, sources and all, is not read out
    answer = ask(d, "Ci sono piste ciclabili per la bici?")
    announcer = d.find_element(By.ID, "announcer")
    WebDriverWait(d, 10).until(lambda x: announcer.get_attribute("textContent"))
    said = announcer.get_attribute("textContent")
    assert announcer.get_attribute("role") == "status" and announcer.get_attribute("aria-live") == "polite"
    assert said == UI_IT["announce_answer"].format(count=1) + " Il Comune realizza piste ciclabili."
    assert "Documento di prova" in answer.text and "Documento di prova" not in said
    assert log.get_attribute("aria-busy") == "false"


def test_the_skip_link_is_the_first_tab_stop_and_reaches_the_input(server, driver):
    d = driver
    fresh(d, server)
    for _ in range(2):
        ask(d, "Ci sono piste ciclabili per la bici?")
    # back to the top of the page, as after loading it: the next Tab starts from the beginning
    d.execute_script("window.scrollTo(0, 0); document.body.tabIndex = -1; document.body.focus();"
                     " document.body.removeAttribute('tabindex')")
    ActionChains(d).send_keys(Keys.TAB).perform()
    first = d.switch_to.active_element
    assert first.text == UI_IT["skip_to_input"] and first.is_displayed()
    ActionChains(d).send_keys(Keys.ENTER).perform()
    assert d.switch_to.active_element.get_attribute("id") == "q"


NAMES_JS = r"""
const bad = [];
for (const el of document.querySelectorAll('button, a, [role=button]')) {
  const label = el.getAttribute('aria-label');
  const text = el.innerText.trim().replace(/\s+/g, ' ');
  if (label && text && !label.toLowerCase().startsWith(text.toLowerCase())) bad.push(text + ' | ' + label);
}
return bad;
"""


def test_accessible_names_start_with_the_visible_text(server, driver):
    d = driver
    fresh(d, server)
    ask(d, "Ci sono piste ciclabili per la bici?")
    assert d.execute_script(NAMES_JS) == []
    d.find_element(By.ID, "lang-toggle").click()
    WebDriverWait(d, 10).until(lambda x: x.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    assert d.execute_script(NAMES_JS) == []


def test_forced_colors_draw_send_and_expanded_citations(server, driver):
    d = driver
    fresh(d, server)
    answer = ask(d, "Ci sono piste ciclabili per la bici?")
    media(d, forced_colors="active")
    style = "const s = getComputedStyle(arguments[0]); return [s.borderTopStyle, s.borderTopWidth, s.backgroundColor];"
    send = d.execute_script(style, d.find_element(By.ID, "send"))
    assert send[0] != "none" and float(send[1].rstrip("px")) >= 1, send
    cite = answer.find_element(By.CSS_SELECTOR, "button.cite")
    link = answer.find_element(By.CSS_SELECTOR, ".source-link")
    collapsed = d.execute_script(style, cite)
    cite.click()
    expanded = d.execute_script(style, cite)
    assert expanded != collapsed, (collapsed, expanded)
    assert d.execute_script(style, link)[2] == expanded[2]  # both openers of the open passage look selected


def luminance(rgb: str) -> float:
    values = [float(v) / 255 for v in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3]]
    lin = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in values]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_dark_mode_follows_the_system(server, driver):
    d = driver
    fresh(d, server)
    answer = ask(d, "Ci sono piste ciclabili per la bici?")
    bg = "return getComputedStyle(arguments[0]).backgroundColor"
    assert luminance(d.execute_script(bg, answer)) > 0.8
    media(d, prefers_color_scheme="dark")
    assert luminance(d.execute_script(bg, answer)) < 0.05
    assert luminance(d.execute_script(bg, d.find_element(By.CSS_SELECTOR, ".composer"))) < 0.05
    assert luminance(d.execute_script("return getComputedStyle(arguments[0]).color", answer)) > 0.6


def test_static_files_and_pages_are_gzipped_but_the_stream_is_not(server):
    with httpx.Client(base_url=server, headers={"Accept-Encoding": "gzip"}) as client:
        for path in ("/static/chat.js", "/static/chat.css", "/"):
            r = client.get(path)
            assert r.status_code == 200 and r.headers.get("content-encoding") == "gzip", path
            assert int(r.headers["content-length"]) < len(r.content), path  # decoded is larger than sent
        small = client.get("/healthz")  # under the minimum size: as it is
        assert "content-encoding" not in small.headers
        with client.stream("POST", "/api/chat/stream", json={"message": "Ci sono piste ciclabili per la bici?"},
                           headers={"Accept": "text/event-stream"}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in r.headers
            text = "".join(r.iter_text())
        assert text.count("event: token") == len(TOKENS) and "event: final" in text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=st.text(max_size=2100), session=st.one_of(st.none(), st.text(max_size=40)),
       language=st.sampled_from(["it", "en", "", "xx"]))
def test_any_form_post_gets_a_page_never_a_5xx(server, message, session, language):
    """The no-JavaScript form takes free text: any message, session id or language is an HTML page with a 2xx/4xx."""
    data = {"message": message, "language": language, **({"session_id": session} if session is not None else {})}
    r = httpx.post(server + "/", data=data, timeout=60)
    assert r.status_code in (200, 422) and r.headers["content-type"].startswith("text/html"), r.status_code
    assert "<h1" in r.text and 'id="q"' in r.text
