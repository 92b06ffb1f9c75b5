"""Issue 15 in real headless Chromium on `sibyl serve`: a citizen's unanswerable question in the web chat ->
"talk to a person" (consent is required, the case number is shown) -> the operator finds the case in
/operatore/casi with its thread, drafts, edits and sends -> a local SMTP server (aiosmtpd) receives it.

`SIBYL_SCREENSHOT_DIR=docs/img` keeps the two screenshots used in docs/operator.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

import prompts
from tests.browser import REPO, free_port, make_driver, sibyl_server
from tests.operator_support import PASSWORD, isolated_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a session index, a server and Chromium

ABSTAIN = "Quando apre la piscina comunale di via Roma?"


class Sink:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture(scope="module")
def smtp():
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, sink
    controller.stop()


@pytest.fixture(scope="module")
def server(settings, built_index, tmp_path_factory, smtp):
    tmp = tmp_path_factory.mktemp("urp-web")
    own = isolated_settings(settings, tmp)
    env = dict(os.environ, SIBYL_DATA_DIR=str(own.data_dir), SIBYL_CORPUS_DIR=str(own.corpus_dir),
               SIBYL_RATE_LIMIT="", HF_HUB_OFFLINE="1", SIBYL_API_WORKERS="1", SIBYL_SMTP_HOST="127.0.0.1",
               SIBYL_SMTP_PORT=str(smtp[0].port), SIBYL_SMTP_STARTTLS="false")
    env.pop("SIBYL_DATABASE_URL", None)
    added = subprocess.run([sys.executable, "-m", "sibyl", "operator", "add", "mario", "--role", "operator"],
                           input=PASSWORD + "\n", cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert added.returncode == 0 and "(operator)" in added.stdout, added.stderr
    with sibyl_server(env, tmp) as (url, _proc):
        yield {"url": url, "tmp": tmp}


@pytest.fixture
def browser(tmp_path):
    driver = make_driver(tmp_path / "profile", width=1280, height=1000)
    yield driver
    driver.quit()


def wait(driver, seconds: float = 90):
    return WebDriverWait(driver, seconds)


def shot(driver, tmp: Path, name: str) -> None:
    folder = Path(os.environ.get("SIBYL_SCREENSHOT_DIR") or tmp)
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / name))
    assert (folder / name).stat().st_size > 10_000


def test_web_chat_handoff_to_an_email_reply(server, browser, smtp):
    url, d = server["url"], browser
    d.get(url + "/")
    box = wait(d).until(lambda d: d.find_element(By.ID, "q"))
    box.send_keys(ABSTAIN)
    box.send_keys(Keys.ENTER)
    answer = wait(d).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#log article.msg.bot[data-message-id] "
                                                                      ".handoff-open"))
    assert answer[-1].text == prompts.catalog("ui", "it")["handoff_button"]
    answer[-1].click()
    form = wait(d).until(lambda d: d.find_element(By.CSS_SELECTOR, "form.handoff-form"))
    email = form.find_element(By.CSS_SELECTOR, "input[type=email]")
    assert d.switch_to.active_element == email  # focus moves into the form
    assert "365" in form.find_element(By.CSS_SELECTOR, ".handoff-privacy").text  # the retention period is shown
    email.send_keys("anna.rossi@example.it")
    form.find_element(By.CSS_SELECTOR, ".handoff-send").click()
    status = form.find_element(By.CSS_SELECTOR, ".handoff-status")
    wait(d, 10).until(lambda d: status.text)
    assert status.text == prompts.catalog("ui", "it")["handoff_need_consent"]  # no consent, nothing sent
    form.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    shot(d, server["tmp"], "urp-chat-handoff.png")
    form.find_element(By.CSS_SELECTOR, ".handoff-send").click()
    done = wait(d).until(lambda d: d.find_element(By.CSS_SELECTOR, ".handoff-done"))
    number = done.get_attribute("data-case-number")
    assert number.startswith("URP-") and number in done.text

    # the operator (role operator) finds the case with its thread, drafts, edits and sends
    d.get(url + "/operatore/login")
    d.find_element(By.ID, "username").send_keys("mario")
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.ID, "login-button").click()
    wait(d).until(lambda d: "/operatore/cerca" in d.current_url)
    d.get(url + "/operatore/uffici")
    assert prompts.catalog("operator", "it")["admin_only"] in d.page_source  # an operator: not the directory
    d.find_element(By.PARTIAL_LINK_TEXT, prompts.catalog("operator", "it")["nav_cases"]).click()
    wait(d).until(lambda d: d.find_elements(By.ID, "cases"))
    d.find_element(By.LINK_TEXT, number).click()
    thread = wait(d).until(lambda d: d.find_element(By.ID, "thread"))
    assert ABSTAIN in thread.text
    d.find_element(By.ID, "make-draft").click()
    wait(d).until(lambda d: d.find_elements(By.ID, "case-message"))
    text = d.find_element(By.ID, "testo")
    assert "non risultano nei documenti" in text.get_attribute("value")
    text.send_keys(Keys.CONTROL, Keys.END)
    text.send_keys("\nP.S. La piscina di via Roma riapre a giugno.")
    shot(d, server["tmp"], "urp-case.png")
    _, sink = smtp
    before = len(sink.messages)
    d.find_element(By.ID, "send").click()
    wait(d).until(lambda d: d.find_elements(By.ID, "sent"))
    deadline = time.monotonic() + 30
    while len(sink.messages) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    mail = message_from_bytes(sink.messages[-1].content, policy=policy.default)
    assert sink.messages[-1].rcpt_tos == ["anna.rossi@example.it"] and number in mail["Subject"]
    assert mail.get_content().rstrip().endswith("P.S. La piscina di via Roma riapre a giugno.")
    assert "risposto" in d.find_element(By.TAG_NAME, "h1").text
