"""End to end in real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

The real app runs under uvicorn (`sibyl serve`) on a free loopback port over the session's index;
the test reads the conversation database directly to check that feedback given in the page is stored.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import make_driver, sibyl_server

pytestmark = pytest.mark.slow

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> piste ciclabili?'


# WCAG 2 contrast of every visible text-bearing element against its effective background.
CONTRAST_JS = r"""
function lum(rgb) {
  const c = rgb.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}
function parse(color) { const m = color.match(/[\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; }
function background(el) {
  for (let n = el; n; n = n.parentElement) {
    const c = parse(getComputedStyle(n).backgroundColor);
    if (c.length < 4 || c[3] > 0.5) return c.slice(0, 3);
  }
  return [255, 255, 255];
}
const low = [];
for (const el of document.querySelectorAll('body *')) {
  const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
  if (!own || !el.offsetParent || el.closest('.visually-hidden')) continue;
  const style = getComputedStyle(el);
  const fg = parse(style.color).slice(0, 3), bg = background(el);
  const a = lum(fg), b = lum(bg);
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
  const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
  if (ratio < need) low.push(el.tagName + '.' + el.className + ': ' + ratio.toFixed(2));
}
return low;
"""


@pytest.fixture(scope="module")
def server(settings, built_index, tmp_path_factory):
    """`sibyl serve` in a subprocess: the real app, uvicorn, loopback."""
    tmp = tmp_path_factory.mktemp("web")
    db_url = f"sqlite:///{tmp / 'sibyl.db'}"
    env = dict(os.environ, SIBYL_DATA_DIR=str(settings.data_dir), SIBYL_CORPUS_DIR=str(settings.corpus_dir),
               SIBYL_DATABASE_URL=db_url, SIBYL_RATE_LIMIT="", HF_HUB_OFFLINE="1", SIBYL_API_WORKERS="1")
    with sibyl_server(env, tmp) as (url, proc):
        yield {"url": url, "db_url": db_url, "proc": proc, "tmp": tmp}


@pytest.fixture
def browser(tmp_path):
    driver = make_driver(tmp_path / "profile")
    yield driver
    driver.quit()


def wait(driver, seconds: float = 60):
    return WebDriverWait(driver, seconds)


def bot_messages(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#log article.msg.bot:not(.welcome)")


def ask(driver, text: str, count_before: int):
    box = driver.find_element(By.ID, "q")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)  # keyboard only: Enter sends
    wait(driver).until(lambda d: len(bot_messages(d)) > count_before or d.find_elements(By.CSS_SELECTOR, ".msg.error"))
    assert not driver.find_elements(By.CSS_SELECTOR, ".msg.error"), driver.find_element(By.ID, "log").text
    return bot_messages(driver)[-1]


def no_alert(driver) -> bool:
    try:
        _ = driver.switch_to.alert  # the property raises when no alert is open
    except NoAlertPresentException:
        return True
    return False


def stored_feedback(db_url: str):
    from sibyl.store import Store

    store = Store(db_url)
    try:
        return store.feedback()
    finally:
        store.engine.dispose()


def test_chat_in_chromium(server, browser, tmp_path):
    d = browser
    d.get(server["url"] + "/")
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#log article.welcome")))
    # Italian by default, strings from prompts/ui.it.toml, a labelled input and a live announcer.
    ui_it = httpx.get(server["url"] + "/api/ui/it").json()
    assert d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "it"
    label = d.find_element(By.CSS_SELECTOR, "label[for=q]")
    assert label.text == ui_it["input_label"]
    assert d.find_element(By.ID, "announcer").get_attribute("aria-live") == "polite"  # a summary; the log is not live

    # Record whether the typing indicator showed while waiting.
    d.execute_script("""
        window.__sawTyping = false;
        new MutationObserver(() => { if (document.querySelector('#log .typing')) window.__sawTyping = true; })
          .observe(document.getElementById('log'), {childList: true, subtree: true});""")

    # 1. A mobility question: an answer with citations.
    answer = ask(d, "Cosa fa il Comune per la mobilità?", 0)
    assert d.execute_script("return window.__sawTyping") is True
    assert not d.find_elements(By.CSS_SELECTOR, "#log .typing")
    cites = answer.find_elements(By.CSS_SELECTOR, ".answer button.cite")
    assert cites, answer.text
    assert answer.find_elements(By.CSS_SELECTOR, ".sources li")
    assert answer.find_elements(By.CSS_SELECTOR, ".chips button.chip"), "suggestion chips"

    # 2. Open the first citation with the keyboard: the passage (document, section, text) appears.
    panel = answer.find_element(By.CSS_SELECTOR, "section.passage")
    assert not panel.is_displayed()
    cites[0].send_keys(Keys.ENTER)
    wait(d, 5).until(lambda _: panel.is_displayed())
    assert cites[0].get_attribute("aria-expanded") == "true"
    assert d.switch_to.active_element == panel  # focus moved to the passage
    dds = panel.find_elements(By.TAG_NAME, "dd")
    assert dds[0].text and dds[1].text and panel.find_element(By.CSS_SELECTOR, ".passage-text").text
    d.save_screenshot(str(tmp_path / "chat-citation.png"))
    panel.send_keys(Keys.ESCAPE)
    wait(d, 5).until(lambda _: not panel.is_displayed())
    assert d.switch_to.active_element == cites[0]  # focus returns to the marker

    # 3. 👍 feedback, stored in the database with this answer's message id.
    message_id = answer.get_attribute("data-message-id")
    up = answer.find_element(By.CSS_SELECTOR, "button.fb.up")
    up.click()
    wait(d, 10).until(lambda _: up.get_attribute("aria-pressed") == "true")
    assert answer.find_element(By.CSS_SELECTOR, ".fb-status").text
    stored = [f for f in stored_feedback(server["db_url"]) if f.message_id == message_id]
    assert len(stored) == 1 and stored[0].rating == 1 and stored[0].channel == "web"

    # 4. A follow-up in the same conversation retrieves cycling passages.
    follow = ask(d, "e per le biciclette?", 1)
    sources = " ".join(li.text for li in follow.find_elements(By.CSS_SELECTOR, ".sources li"))
    for button in follow.find_elements(By.CSS_SELECTOR, ".sources button"):
        button.click()
        sources += " " + follow.find_element(By.CSS_SELECTOR, ".passage-text").text
    assert any(w in sources.lower() for w in ("cicl", "bici")), sources
    assert follow.find_element(By.CSS_SELECTOR, ".note").text == ui_it["followup_note"]

    # 5. An XSS payload is shown as text; nothing runs, no element is created.
    ask(d, XSS, 2)
    users = d.find_elements(By.CSS_SELECTOR, "#log article.msg.user .text")
    assert users[-1].text == XSS
    assert d.execute_script("return window.__xss") is None
    assert not d.find_elements(By.CSS_SELECTOR, "#log img, #log script")
    assert no_alert(d)

    d.save_screenshot(str(tmp_path / "chat-desktop.png"))
    low = d.execute_script(CONTRAST_JS)
    assert low == [], f"text below WCAG AA contrast: {low}"

    # 6. 360 px wide: no horizontal scrolling, input and send button visible.
    d.set_window_size(360, 780)
    time.sleep(0.3)
    assert d.execute_script("return document.documentElement.scrollWidth") <= 360
    assert d.find_element(By.ID, "send").is_displayed() and d.find_element(By.ID, "q").is_displayed()
    box = d.find_element(By.ID, "send").rect
    assert box["x"] + box["width"] <= 360
    d.save_screenshot(str(tmp_path / "chat-360.png"))
    print("screenshots:", tmp_path)


def test_sources_and_suggestions_with_markup_stay_text(server, browser):
    """Whatever the server returns (here a hostile answer, source and suggestion) is rendered as text."""
    d = browser
    d.get(server["url"] + "/")
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#log article.welcome")))
    d.execute_script("""
        const evil = '<img src=x onerror="window.__xss=3"><script>window.__xss=4</script>';
        window.Sibyl.transport.requestAnswer = () => Promise.resolve({
          question: 'q', language: 'it', answered: true, mode: 'extractive', intent: 'question',
          answer: 'Risposta ' + evil + ' [1]\\n- punto ' + evil + ' [1]',
          sources: [{n: 1, id: 'x', document: 'd', title: 'Titolo ' + evil, section: 'Sez ' + evil,
                     text: 'Testo ' + evil, score: 1}],
          session_id: 's', message_id: 'm', suggestions: ['Chiedi ' + evil], followup: false});""")
    ask(d, "qualsiasi", 0)
    answer = bot_messages(d)[-1]
    assert "<img src=x" in answer.find_element(By.CSS_SELECTOR, ".answer").text
    answer.find_element(By.CSS_SELECTOR, ".answer button.cite").click()
    assert "<script>" in answer.find_element(By.CSS_SELECTOR, ".passage-text").text
    assert "<img" in answer.find_element(By.CSS_SELECTOR, ".chips button.chip").text
    assert not d.find_elements(By.CSS_SELECTOR, "#log img, #log script")
    assert d.execute_script("return window.__xss") is None and no_alert(d)


def test_english_toggle_no_answer_state_and_errors(server, browser, tmp_path):
    d = browser
    d.get(server["url"] + "/")
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#log article.welcome")))
    ui_en = httpx.get(server["url"] + "/api/ui/en").json()
    d.find_element(By.ID, "lang-toggle").click()
    wait(d, 10).until(lambda _: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    assert d.find_element(By.CSS_SELECTOR, "label[for=q]").text == ui_en["input_label"]
    assert d.find_element(By.ID, "send").text == ui_en["send"]
    assert ui_en["welcome"] in d.find_element(By.CSS_SELECTOR, "#log article.welcome").text

    # Outside the documents: a clear "I don't know, contact the URP" state.
    reply = ask(d, "What is the recipe for a good tiramisu?", 0)
    assert "no-answer" in reply.get_attribute("class")
    notice = reply.find_element(By.CSS_SELECTOR, ".notice")
    assert ui_en["no_answer_title"] in notice.text
    assert notice.find_element(By.TAG_NAME, "a").get_attribute("href").startswith("https://")

    # Empty input: a message, not a silent no-op.
    d.find_element(By.ID, "q").send_keys("   " + Keys.ENTER)
    wait(d, 5).until(lambda _: d.find_elements(By.CSS_SELECTOR, ".msg.error"))
    assert d.find_elements(By.CSS_SELECTOR, ".msg.error")[-1].text == ui_en["error_empty"]
    d.save_screenshot(str(tmp_path / "chat-en.png"))


def test_browser_language_english_and_embed(server, tmp_path):
    driver = make_driver(tmp_path / "profile-en", lang="en-US", width=400, height=600)
    try:
        driver.get(server["url"] + "/embed")
        wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#log article.welcome")))
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
        assert "embed" in driver.find_element(By.ID, "app").get_attribute("class")
        driver.save_screenshot(str(tmp_path / "embed-en.png"))
    finally:
        driver.quit()


def test_english_answer_shows_the_english_and_the_italian_passage(server, browser):
    d = browser
    d.get(server["url"] + "/")
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#log article.welcome")))
    d.find_element(By.ID, "lang-toggle").click()
    wait(d, 10).until(lambda _: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    question = "How is the city fighting illegal dumping of waste?"
    reply = ask(d, question, 0)
    text = reply.find_element(By.CSS_SELECTOR, ".answer").text
    assert "(translated from Italian)" in text and "illegal dumping" in text
    assert "(original Italian wording)" not in text
    # The citation opens the original Italian passage.
    payload = httpx.post(server["url"] + "/api/chat", json={"message": question, "language": "en"}, timeout=120).json()
    reply.find_element(By.CSS_SELECTOR, ".answer button.cite").click()
    passage = reply.find_element(By.CSS_SELECTOR, ".passage-text").text
    assert payload["sources"][0]["text"].split("\n")[-1].strip()[:50] in passage


def test_server_down_shows_an_error_message(server, browser):
    """Last: stop the server, then the page says so instead of staying blank."""
    d = browser
    d.get(server["url"] + "/")
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#log article.welcome")))
    ui_it = httpx.get(server["url"] + "/api/ui/it").json()
    server["proc"].terminate()
    server["proc"].wait(timeout=20)
    box = d.find_element(By.ID, "q")
    box.send_keys("Cosa fa il Comune per la mobilità?" + Keys.ENTER)
    wait(d, 30).until(lambda _: d.find_elements(By.CSS_SELECTOR, ".msg.error"))
    assert d.find_elements(By.CSS_SELECTOR, ".msg.error")[-1].text == ui_it["error_network"]
    assert not d.find_elements(By.CSS_SELECTOR, "#log .typing")
