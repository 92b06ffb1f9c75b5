"""The web chat's microphone and "listen" button in real headless Chromium (issue 16): Chromium's fake
capture device plays an espeak-ng recording of an English question into MediaRecorder; the page posts it to
/api/voice on `sibyl serve`, shows the transcript as the user's message and the answer with its sources;
"listen" fetches /api/tts and plays it (CSP media-src allows the blob)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import make_driver, sibyl_server
from tests.voice_support import QUESTION, speak_wav

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(settings, built_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("voiceweb")
    env = dict(os.environ, SIBYL_DATA_DIR=str(settings.data_dir), SIBYL_CORPUS_DIR=str(settings.corpus_dir),
               SIBYL_DATABASE_URL=f"sqlite:///{tmp / 'sibyl.db'}", SIBYL_RATE_LIMIT="", HF_HUB_OFFLINE="1",
               SIBYL_API_WORKERS="1")
    with sibyl_server(env, tmp) as (url, _):
        yield url


@pytest.fixture
def question_file(tmp_path):
    """The question as 48 kHz 16-bit WAV with a second of silence after it (what the fake device plays)."""
    path = tmp_path / "question.wav"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "wav", "-i", "pipe:0", "-af",
                    "apad=pad_dur=1", "-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le", str(path)],
                   input=speak_wav(QUESTION), check=True, timeout=60)
    return path


def test_microphone_question_and_listen_button(server, question_file, tmp_path):
    driver = make_driver(tmp_path / "profile", lang="en-GB", extra_args=(
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={question_file}%noloop", "--autoplay-policy=no-user-gesture-required"))
    try:
        driver.get(server + "/")
        wait = WebDriverWait(driver, 120)
        mic = wait.until(lambda d: d.find_element(By.ID, "mic"))
        assert mic.get_attribute("aria-label") == "Ask by voice" and mic.get_attribute("aria-pressed") == "false"
        mic.send_keys("\n")  # the keyboard: Enter on the focused button starts recording...
        wait.until(lambda d: mic.get_attribute("aria-pressed") == "true")
        time.sleep(6)  # let the fake device play the whole question (not an assertion)
        mic.send_keys("\n")  # ...and stops it, which sends the recording
        user = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.user.voice .text"))
        assert "cycling" in user[0].text.lower(), user[0].text
        answer = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.msg.bot[data-message-id]"))[-1]
        assert answer.find_elements(By.CSS_SELECTOR, ".sources .source-link")
        # A conversation begun by voice can be handed to the URP like a typed one.
        assert wait.until(lambda d: answer.find_elements(By.CSS_SELECTOR, "button.handoff-open"))
        listen = answer.find_element(By.CSS_SELECTOR, "button.listen")
        assert listen.text == "Listen to the answer"
        listen.click()
        wait.until(lambda d: listen.get_attribute("aria-pressed") == "true")
        played = wait.until(lambda d: d.execute_script(
            "return document.querySelector('.listen-status').textContent === '' && "
            "document.querySelector('button.listen').textContent"))
        assert played == "Stop reading"
        assert not [e for e in driver.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    finally:
        driver.quit()


def test_no_microphone_button_where_the_browser_cannot_record(server, tmp_path):
    driver = make_driver(tmp_path / "profile", lang="en-GB")
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                               {"source": "delete window.MediaRecorder;"})
        driver.get(server + "/")
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg.bot.welcome"))
        assert driver.find_elements(By.ID, "mic") == []
    finally:
        driver.quit()
