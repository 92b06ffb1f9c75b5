"""Robustness check (not a test): fuzz every endpoint and the Telegram update handler, then soak.

`sibyl bench-robust` builds its own index in a temp directory, starts a real `sibyl serve` on loopback
(rate limit off, webhook mode against the local Bot API peer of tests/telegram_peer.py, one operator
account) and then:

1. fuzz: N inputs drawn with hypothesis (every Unicode category, NFKC-expanding characters, lone
   surrogates, huge strings, wrong JSON types, broken JSON, random headers, random multipart, fuzzed
   Telegram updates) over every route of the app: the OpenAPI ones from the served /openapi.json, the
   rest (pages, /metrics, the operator console, signed in and not) from the app's route table;
2. soak: C clients asking unique questions through /api/chat and /api/search for S seconds while the
   server's RSS is sampled.

It counts 5xx responses, crashes (the server process died: it is restarted and the inputs in flight are
named), hangs (no complete answer within --timeout), connection errors and bot update failures, prints a
table and exits 1 when anything failed. Hypothesis strategies rather than schemathesis: the operator
console and the webhook are outside the OpenAPI schema, and a crash must restart the server mid-run,
which needs our own request loop anyway.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import queue
import random
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from devtools.bench import DEFAULT_QUESTIONS, FALLBACK_QUESTIONS
from devtools.bench_api import free_port
from sibyl.settings import PROJECT_ROOT, Settings

BOT_TOKEN = "6060606060:AAE-robustness-bench-token_abcdefgh"
WEBHOOK_SECRET = "robust-bench-secret"
WEBHOOK_PATH = "/telegram/webhook"
OPERATOR = ("robust", "Robust-bench-password-2025")
# Operator actions left out of the signed-in fuzz: they rewrite the index (minutes each) or end the session.
MUTATING = ("/operatore/documenti", "/operatore/documenti/reindicizza", "/operatore/documenti/{doc_id}/rimuovi",
            "/operatore/logout")
MAX_URL = 8000  # characters of path and query (httpx refuses 64 KB; uvicorn's own limit is the header size)
SPECIAL = ["\ufdfa", "\ufdfb", "\u0000", "\u202e", "\ufeff", "\u200b", "\u0301", "\u0300", "à", "a\u0300\u0301",
           "ß", "\u0130", "\u01c5", "\ufb03", "\u337b", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0010ffff",
           "\ud800", "\udfff", "<script>", "&amp;", "</b>", "\\", "\"", "'", "%", "{{", "\r\n", "\t", " "]


# --- the server ---------------------------------------------------------------------------------
class ProcessTarget:
    """A server subprocess on loopback that can be checked and restarted after a crash."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int, log_path: Path,
                 ready_path: str = "/readyz", ready_timeout: float = 600.0) -> None:
        self.cmd, self.env, self.port, self.log_path = cmd, env, port, log_path
        self.ready_path, self.ready_timeout = ready_path, ready_timeout
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.generation = 0  # bumped by every (re)start: requests sent to a dead generation are its victims

    def start(self) -> None:
        with self.log_path.open("ab") as log:  # a file, not a pipe: an unread pipe would block the server
            self.proc = subprocess.Popen(self.cmd, cwd=PROJECT_ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)
        self.generation += 1
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready after {self.ready_timeout} s: {self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def dies_within(self, seconds: float) -> bool:
        """After a dropped connection: a dying process closes its sockets before it can be reaped."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def rss(self) -> int | None:
        """Resident memory in bytes (Linux /proc), or None when the process is gone."""
        if self.proc is None or not self.alive():
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


# --- inputs -------------------------------------------------------------------------------------
@dataclass
class Case:
    """One fuzzed request: what is sent, and the endpoint template it is counted under."""

    endpoint: str
    method: str
    path: str
    note: str
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, bytes] = field(default_factory=dict)
    content: bytes | None = None
    auth: bool = False  # send the operator's session cookie and CSRF token
    bot: bool = False

    def describe(self, limit: int = 220) -> str:
        body = "" if self.content is None else self.content[:limit].decode("utf-8", "backslashreplace")
        more = f" …(+{len(self.content) - limit} bytes)" if self.content and len(self.content) > limit else ""
        return f"{self.method} {self.path[:200]} [{self.note}] {body}{more}"


@dataclass
class Route:
    path: str
    method: str
    body_schema: dict | None = None
    query: list[str] = field(default_factory=list)
    form: list[str] = field(default_factory=list)
    operator: bool = False


@lru_cache(maxsize=1)
def expanding_characters() -> list[str]:
    """Characters whose NFKC form is longer than 4 code points (U+FDFA is 18): the embedder's crash class."""
    return [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF
            and len(unicodedata.normalize("NFKC", chr(c))) > 4]


def seed_questions() -> list[str]:
    path = DEFAULT_QUESTIONS if DEFAULT_QUESTIONS.exists() else FALLBACK_QUESTIONS
    return [json.loads(line)["q"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _strategies(questions: list[str]):
    """The hypothesis strategies, built once (hypothesis is a test/dev dependency: imported here)."""
    from hypothesis import strategies as st

    any_char = st.characters(codec=None)  # every category but surrogates
    texts = st.one_of(
        st.text(any_char, max_size=200),
        st.text(st.characters(categories=["Mn", "Me", "Mc"]) | st.sampled_from("aeiouàèìòù "), max_size=600),
        st.lists(st.sampled_from(SPECIAL + expanding_characters()), min_size=1, max_size=80).map("".join),
        st.builds(lambda q, junk, at: q[:at] + junk + q[at:], st.sampled_from(questions),
                  st.text(any_char, max_size=40), st.integers(0, 200)),
        st.sampled_from(questions),
        st.text(st.characters(categories=["Cs"]) | any_char, max_size=60),  # lone surrogates
        st.builds(lambda s, n: s * n, st.lists(st.sampled_from(SPECIAL + ["à", "a", "è "]) | any_char, min_size=1,
                                                   max_size=6).map("".join), st.integers(200, 30_000)),  # huge
    )
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.integers(-2**80, 2**80) | st.floats() | texts,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5), max_leaves=12)
    header_value = st.binary(max_size=300).map(  # what HTTP/1.1 lets a client send: no controls, no outer spaces
        lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7f).strip(b" ") or b"x")
    return st, texts, json_values, header_value


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _dumps(value, draw, st) -> bytes:
    return _encode(json.dumps(value, ensure_ascii=draw(st.booleans())))


def _resolve(schema: dict | None, components: dict) -> dict:
    while schema and "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema or {}


def _value_for(schema: dict, components: dict, draw, st, texts, json_values, depth: int = 0):
    """A value shaped by the schema most of the time, of a wrong type sometimes."""
    schema = _resolve(schema, components)
    if draw(st.integers(0, 9)) == 0 or depth > 4:
        return draw(json_values)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return _value_for(draw(st.sampled_from(options)), components, draw, st, texts, json_values, depth + 1)
    if "enum" in schema or "const" in schema:
        return draw(st.sampled_from(schema.get("enum") or [schema.get("const")]) | json_values)
    kind = schema.get("type")
    if kind == "string":
        return draw(texts)
    if kind == "integer":
        return draw(st.integers(-5, 60) | st.integers() | st.sampled_from([2**63, -2**63 - 1, 10**30]))
    if kind == "number":
        return draw(st.floats())
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "array":
        return [_value_for(schema.get("items", {}), components, draw, st, texts, json_values, depth + 1)
                for _ in range(draw(st.integers(0, 3)))]
    if kind == "object" or "properties" in schema:
        out = {}
        for name, sub in schema.get("properties", {}).items():
            if name in schema.get("required", []) or draw(st.booleans()):
                out[name] = _value_for(sub, components, draw, st, texts, json_values, depth + 1)
        if draw(st.integers(0, 9)) == 0:
            out[draw(texts)] = draw(json_values)
        return out
    return draw(json_values)


def _valid_for(schema: dict, components: dict, draw, st, texts, depth: int = 0):
    """A value the schema accepts, free text fuzzed: these inputs get past validation into the pipeline."""
    schema = _resolve(schema, components)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        real = [o for o in options if _resolve(o, components).get("type") != "null"] or options
        return _valid_for(draw(st.sampled_from(real)), components, draw, st, texts, depth + 1)
    if "enum" in schema or "const" in schema:
        return draw(st.sampled_from(schema.get("enum") or [schema.get("const")]))
    kind = schema.get("type")
    if kind == "string":
        text = draw(texts)[: schema.get("maxLength", 20_000)]
        return text + "x" * max(0, schema.get("minLength", 0) - len(text))
    if kind == "integer":
        return draw(st.integers(schema.get("minimum", -(2**31)), schema.get("maximum", 2**31)))
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "object" or "properties" in schema:
        return {name: _valid_for(sub, components, draw, st, texts, depth + 1)
                for name, sub in schema.get("properties", {}).items()
                if name in schema.get("required", []) or (depth < 3 and draw(st.integers(0, 9)) < 3)}
    return None


def _fill_path(path: str, draw, st, texts) -> str:
    def one(_match) -> str:
        value = draw(st.one_of(texts.map(lambda s: s[:2000]), st.integers().map(str),
                               st.sampled_from(["99999999999999999999999", "-1", "0", "..%2F..%2Fetc%2Fpasswd", "%00",
                                                "%ff%fe", "it", "en", "1e9", "null"])))
        value = value if "%" in value else quote(value, safe="", errors="surrogatepass")
        return re.sub(r"%[0-9A-F]?$", "", value[:MAX_URL // 2])

    return re.sub(r"\{[^}]+\}", one, path)


def _headers(draw, st, header_value) -> dict[str, bytes]:
    names = st.sampled_from(["Accept-Language", "Accept", "Cookie", "X-Forwarded-For", "X-Real-IP", "Forwarded",
                             "User-Agent", "Origin", "Referer", "Range", "If-None-Match", "X-CSRF-Token",
                             "Accept-Encoding", "X-Request-Id", "Authorization", "X-Custom-Junk"])
    return draw(st.dictionaries(names, header_value, max_size=3))


def _multipart(draw, st, texts, names: list[str]) -> tuple[bytes, bytes]:
    boundary = "b" + secrets.token_hex(8)
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(names + ["file", "x"]) | texts.map(lambda s: s[:50]))
        filename = draw(st.none() | st.sampled_from(["a.txt", "b.pdf", "c.docx", "../../x.md", "é.html"]) | texts.map(
            lambda s: s[:80]))
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body = draw(st.binary(max_size=2000) | texts.map(_encode))
        parts.append(b"--" + boundary.encode() + b"\r\nContent-Disposition: " + _encode(disposition) + b"\r\n\r\n"
                     + body + b"\r\n")
    tail = draw(st.sampled_from([b"--" + boundary.encode() + b"--\r\n", b"", b"--" + boundary.encode()]))
    ctype = draw(st.sampled_from([f"multipart/form-data; boundary={boundary}", "multipart/form-data",
                                  f"multipart/form-data; boundary={boundary}x"]))
    return b"".join(parts) + tail, ctype.encode()


def _broken_json(draw, st, texts) -> bytes:
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return draw(st.binary(max_size=500))
    if kind == 1:  # a valid object cut short
        raw = json.dumps({"message": draw(texts), "query": "x"}).encode()
        return raw[:draw(st.integers(0, len(raw)))]
    if kind == 2:
        depth = draw(st.integers(100, 200_000))
        return b"[" * depth + b"]" * draw(st.integers(0, depth))
    if kind == 3:
        return b'{"message": NaN, "query": Infinity, "k": 1e999999}'
    if kind == 4:
        return b'{"message": "a", "message": "b", "query": "' + b"\\u" + b'd800"}'
    if kind == 5:
        return b"\xef\xbb\xbf" + json.dumps({"message": draw(texts)}, ensure_ascii=True).encode()
    if kind == 6:
        return _encode(draw(texts))
    return b'{"' + b"k" * draw(st.integers(1, 100_000)) + b'": 1}'


def _http_case(route: Route, components: dict, draw, st, texts, json_values, header_value, auth: bool) -> Case:
    path = _fill_path(route.path, draw, st, texts)
    headers = _headers(draw, st, header_value)
    params = []
    if route.query and draw(st.booleans()):
        for name in draw(st.lists(st.sampled_from(route.query), max_size=4)):
            params.append((name, draw(texts)[:5000]))
    if draw(st.integers(0, 9)) == 0:
        params.append((draw(texts)[:100], draw(texts)[:1000]))
    content, note = None, "no body"
    if route.method in ("POST", "PUT", "PATCH"):
        mode = draw(st.sampled_from(["valid"] * 8 + ["schema"] * 3 + ["wrong-type", "broken-json", "extra-keys",
                                                                       "multipart", "form", "empty"]))
        if mode == "valid" and route.body_schema is None:
            mode = "schema"
        if route.form and mode == "schema":
            mode = "form"
        ctype = b"application/json"
        if mode == "valid" and route.body_schema is not None:  # "valid" always has a schema (see above)
            content = _dumps(_valid_for(route.body_schema, components, draw, st, texts), draw, st)
        elif mode == "schema" and route.body_schema is not None:
            content = _dumps(_value_for(route.body_schema, components, draw, st, texts, json_values), draw, st)
        elif mode in ("schema", "wrong-type"):
            content, mode = _dumps(draw(json_values), draw, st), "wrong-type"
        elif mode == "broken-json":
            content = _broken_json(draw, st, texts)
        elif mode == "extra-keys":
            content = json.dumps({f"k{i}": i for i in range(draw(st.integers(100, 200_000)))}).encode()
        elif mode == "multipart":
            content, ctype = _multipart(draw, st, texts, route.form or ["message", "query"])
        elif mode == "form":
            fields = [(name, draw(texts)[:3000]) for name in draw(st.lists(
                st.sampled_from(route.form or ["message", "query"]) | texts.map(lambda s: s[:30]), max_size=4))]
            content = "&".join(f"{quote(k, errors='surrogatepass')}={quote(v, errors='surrogatepass')}"
                               for k, v in fields).encode()
            ctype = b"application/x-www-form-urlencoded"
        else:
            content = b""
        odd_types = [b"text/plain", b"application/json; charset=latin-1", b"application/x-www-form-urlencoded"]
        headers["Content-Type"] = draw(st.sampled_from([ctype] * 8 + odd_types))
        note = mode
    if params:  # encoded here: lone surrogates go out as the invalid UTF-8 a raw client could send
        path += "?" + "&".join(
            f"{quote(k, safe='', errors='surrogatepass')}={quote(v, safe='', errors='surrogatepass')}"
            for k, v in params)
        path = re.sub(r"%[0-9A-F]?$", "", path[:MAX_URL])  # long, but under what HTTP clients will send
    return Case(f"{route.method} {route.path}", route.method, path, note + (" (signed in)" if auth else ""),
                params, headers, content, auth=auth)


# --- Telegram updates ---------------------------------------------------------------------------
ENTITY_TYPES = ["mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number", "bold", "italic",
                "underline", "strikethrough", "spoiler", "blockquote", "code", "pre", "text_link", "text_mention",
                "custom_emoji", "made_up_type"]


def _bot_case(update_id: int, draw, st, texts, json_values, bot_id: int, bot_username: str) -> Case:
    """A fuzzed Telegram update posted to the webhook: texts, entities, chats, replies, buttons."""
    uid = draw(st.integers(1, 2**40) | st.sampled_from([1, 2**53, 2**63 - 1]))
    language = draw(st.none() | st.sampled_from(["it", "en", "de", "", "it-IT"]) | texts.map(lambda s: s[:10]))
    sender = {"id": uid, "is_bot": draw(st.booleans()), "first_name": draw(texts)[:100] or "A"}
    if language is not None:
        sender["language_code"] = language
    chat_type = draw(st.sampled_from(["private"] * 3 + ["group", "supergroup", "channel"]))
    chat = {"id": uid if chat_type == "private" else -draw(st.integers(1, 2**52)), "type": chat_type}
    if chat_type != "private":
        chat["title"] = draw(texts)[:100] or "G"
    kind = draw(st.sampled_from(["text"] * 4 + ["command", "mention", "caption", "edited", "callback", "raw"]))
    text = draw(texts)
    if kind == "command":
        command = draw(st.sampled_from(["/start", "/help", "/lingua", "/language", "/urp", "/"]) | texts.map(
            lambda s: "/" + s[:30]))
        suffix = draw(st.sampled_from(["", "@" + bot_username, "@OtherBot"]))
        text = f"{command}{suffix} {draw(st.sampled_from(['it', 'en', 'auto', '']) | texts)}"
    elif kind == "mention":
        at = draw(st.integers(0, len(text)))
        text = f"{text[:at]}@{bot_username} {text[at:]}"
    entities = draw(st.lists(st.fixed_dictionaries({
        "type": st.sampled_from(ENTITY_TYPES), "offset": st.integers(-2, len(text) + 5),
        "length": st.integers(-1, len(text) + 5)}, optional={"url": texts, "language": texts,
                                                               "custom_emoji_id": texts}), max_size=4))
    for entity in entities:
        if entity["type"] == "text_mention":
            entity["user"] = {"id": draw(st.sampled_from([bot_id, uid])), "is_bot": False, "first_name": "U"}
    if kind == "command" and draw(st.booleans()):
        entities.insert(0, {"type": "bot_command", "offset": 0, "length": len(text.split(" ")[0])})
    message = {"message_id": draw(st.integers(1, 2**31)), "date": int(time.time()), "chat": chat, "from": sender}
    if kind == "caption":
        message["photo"] = [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]
        message["caption"], message["caption_entities"] = text, entities
    else:
        message["text"], message["entities"] = text, entities
    if draw(st.integers(0, 3)) == 0:
        message["reply_to_message"] = {"message_id": 5, "date": int(time.time()), "chat": chat,
                                       "from": {"id": bot_id, "is_bot": True, "first_name": "Sibyl",
                                                "username": bot_username}, "text": draw(texts)[:500]}
    update: dict = {"update_id": update_id}
    if kind == "raw":
        update.update(draw(st.dictionaries(st.sampled_from(["message", "callback_query", "edited_message", "x"]),
                                           json_values, max_size=2)))
    elif kind == "callback":
        data = draw(st.sampled_from(["src:", "fb:+1:", "fb:-1:", "sq:0:", "sq:99:", ""]) | texts.map(lambda s: s[:40]))
        data += draw(texts)[:64]
        bot_message = {"message_id": 7, "date": draw(st.sampled_from([0, int(time.time())])), "chat": chat,
                       "from": {"id": bot_id, "is_bot": True, "first_name": "Sibyl"}, "text": draw(texts)[:300] or "x"}
        if draw(st.booleans()):
            bot_message["reply_markup"] = {"inline_keyboard": [[{"text": draw(texts)[:100] or "b",
                                                                  "callback_data": data}]]}
        update["callback_query"] = {"id": str(update_id), "from": sender, "chat_instance": "ci", "data": data,
                                    "message": bot_message}
    else:
        update["edited_message" if kind == "edited" else
               ("channel_post" if chat_type == "channel" else "message")] = message
    headers = {"Content-Type": b"application/json",
               "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET.encode() if draw(st.integers(0, 19)) else b"nope"}
    return Case(f"POST {WEBHOOK_PATH} (bot)", "POST", WEBHOOK_PATH, f"update {kind}", [], headers,
                _dumps(update, draw, st), bot=True)


def generate_cases(n: int, routes: list[Route], components: dict, seed: int, bot_share: float,
                   signed_in: bool, emit=None) -> list[Case]:
    """N distinct inputs drawn by hypothesis (generate phase only: no shrinking, no example database);
    `emit(case)` gets each one as soon as it is drawn, so sending can overlap drawing."""
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import seed as hypothesis_seed
    from hypothesis import settings as hypothesis_settings

    from tests.telegram_peer import BOT_ID, BOT_USERNAME

    st, texts, json_values, header_value = _strategies(seed_questions())
    public = routes  # signed out, the console's routes must refuse cleanly too
    private = [r for r in routes if r.operator and r.path not in MUTATING] if signed_in else []
    # The JSON API is where free text meets the pipeline: it gets four times the share of a page.
    weighted = [r for r in public for _ in range(4 if r.body_schema is not None else 1)]
    cases: list[Case] = []
    seen: set[tuple] = set()

    def round_of(round_seed: int, forced: Route | None = None):
        """One hypothesis run; `forced` pins every HTTP case of the run to one route."""
        @hypothesis_seed(round_seed)
        @hypothesis_settings(max_examples=1 if forced else max(n - len(cases), 50), phases=[Phase.generate],
                             database=None, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.data())
        def draw_one(data) -> None:  # every choice is a draw: hypothesis replays prefixes and checks they match
            draw = data.draw
            pick = draw(st.randoms(use_true_random=True))  # uniform choices (plain draws lean to the first option)
            roll = pick.random()
            if forced is not None:
                case = _http_case(forced, components, draw, st, texts, json_values, header_value, False)
            elif roll < bot_share:
                case = _bot_case(draw(st.integers(1, 2**31)), draw, st, texts, json_values, BOT_ID, BOT_USERNAME)
            elif private and roll < bot_share + 0.15:
                case = _http_case(pick.choice(private), components, draw, st, texts, json_values, header_value, True)
            else:
                case = _http_case(pick.choice(weighted), components, draw, st, texts, json_values, header_value,
                                  False)
            key = (case.method, case.path, tuple(case.params), tuple(sorted(case.headers.items())), case.content,
                   case.auth)
            if key not in seen:  # hypothesis revisits small inputs often: each distinct one is sent once
                seen.add(key)
                if len(cases) < n:
                    cases.append(case)
                    if emit is not None:
                        emit(case)

        return draw_one

    if n >= len(public):  # first one case per route, so a short run still reaches every route
        for i, route in enumerate(public):
            round_of(seed - 1 - i, forced=route)()
    for attempt in range(200):  # hypothesis may stop a round early (e.g. inputs over its size budget)
        if len(cases) >= n:
            break
        round_of(seed + attempt)()
    return cases[:n]


def _walk(routes, prefix: str = ""):
    """Every route of the app, through included routers (FastAPI >= 0.165 wraps them lazily) and mounts."""
    from starlette.routing import Mount

    for route in routes:
        if hasattr(route, "original_router"):
            sub_prefix = getattr(route.include_context, "prefix", "") or ""
            yield from _walk(route.original_router.routes, prefix + sub_prefix)
        elif isinstance(route, Mount):
            yield "mount", prefix + route.path, route
        else:
            yield "route", prefix + getattr(route, "path", ""), route


def list_routes(settings: Settings, openapi: dict) -> list[Route]:
    """OpenAPI operations (with their body schemas) plus every route left out of the schema."""
    from fastapi.routing import APIRoute

    from api.app import create_app

    routes: list[Route] = []
    seen = set()
    for path, item in openapi.get("paths", {}).items():
        for method, op in item.items():
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
            query = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
            routes.append(Route(path, method.upper(), body, query))
            seen.add((method.upper(), path))
    for kind, full_path, route in _walk(create_app(settings).routes):  # no lifespan: only the route table
        path = re.sub(r"\{([^}:]+):[^}]+\}", r"{\1}", full_path)
        if kind == "mount":
            routes.append(Route(path.rstrip("/") + "/{file}", "GET"))
            continue
        if path == WEBHOOK_PATH:  # fuzzed with Telegram updates instead
            continue
        for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"}):
            if (method, path) in seen:
                continue
            seen.add((method, path))
            query, form = [], []
            if isinstance(route, APIRoute):
                dependant = route.dependant
                query = [p.name for p in dependant.query_params] + [p.name for d in dependant.dependencies
                                                                     for p in d.query_params]
                form = [p.alias for p in dependant.body_params]
            routes.append(Route(path, method, None, query, form, operator=path.startswith("/operatore")))
    return routes


# --- fuzz run -----------------------------------------------------------------------------------
@dataclass
class Finding:
    case: Case
    what: str

    def line(self) -> str:
        return f"{self.what}: {self.case.describe()}"


@dataclass
class Crash:
    returncode: int | None
    log_tail: str
    suspects: list[Case]


@dataclass
class FuzzTally:
    sent: int = 0
    seconds: float = 0.0
    statuses: dict[str, Counter] = field(default_factory=dict)
    server_errors: list[Finding] = field(default_factory=list)
    stream_errors: list[Finding] = field(default_factory=list)
    hangs: list[Finding] = field(default_factory=list)
    connection_errors: list[Finding] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    rss_start: int | None = None
    rss_end: int | None = None

    def count(self, case: Case, outcome: str) -> None:
        self.statuses.setdefault(case.endpoint, Counter())[outcome] += 1


async def run_fuzz(target: ProcessTarget, cases: list[Case] | queue.Queue, timeout: float = 10.0,
                   concurrency: int = 4, auth_headers=None, on_restart=None, progress_every: int = 0) -> FuzzTally:
    """Send every case (a list, or a queue ended by None); count 5xx, hangs (no full answer within
    `timeout`), connection errors and crashes (the process died: restart it, blame the requests in flight)."""
    tally = FuzzTally(rss_start=target.rss())
    if isinstance(cases, list):
        source: queue.Queue = queue.Queue()
        for case in cases:
            source.put(case)
        source.put(None)
    else:
        source = cases
    done = asyncio.Event()
    sent: list[Case] = []
    inflight: dict[int, Case] = {}
    up = asyncio.Event()
    up.set()
    lock = asyncio.Lock()
    started = time.monotonic()
    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    async def check_crash(case: Case, generation: int) -> bool:
        async with lock:
            if target.generation != generation:  # already restarted: this request was one of the victims
                return True
            if not await asyncio.to_thread(target.dies_within, 2.0):
                return False
            tally.crashes.append(Crash(target.returncode, target.log_tail(), list(inflight.values()) or [case]))
            up.clear()
            try:
                await asyncio.to_thread(target.restart)
                if on_restart is not None:
                    await asyncio.to_thread(on_restart)
            finally:
                up.set()
            return True

    async def worker(client: httpx.AsyncClient) -> None:
        while not done.is_set():
            try:
                case = source.get_nowait()
            except queue.Empty:
                case = await asyncio.to_thread(source.get)
            if case is None:
                done.set()
                source.put(None)  # for the other workers
                break
            sent.append(case)
            if progress_every and len(sent) % progress_every == 0:
                print(f"bench-robust: {len(sent)} inputs sent in {time.monotonic() - started:.0f} s; 5xx "
                      f"{len(tally.server_errors)}, hangs {len(tally.hangs)}, crashes {len(tally.crashes)}",
                      file=sys.stderr, flush=True)
            await up.wait()
            generation = target.generation
            headers = dict(case.headers)
            if case.auth and auth_headers is not None:
                headers.update(auth_headers())
            inflight[id(case)] = case
            tally.sent += 1
            try:
                response = await asyncio.wait_for(client.request(case.method, case.path, headers=headers,
                                                                 content=case.content), timeout)
            except TimeoutError:
                tally.count(case, "hang")
                tally.hangs.append(Finding(case, f"no answer in {timeout:g} s"))
                continue
            except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeError) as exc:  # our client refused it
                tally.count(case, "unsendable")
                tally.connection_errors.append(Finding(case, f"client refused to send: {exc}"))
                continue
            except httpx.TransportError as exc:
                crashed = await check_crash(case, generation)
                tally.count(case, "crash" if crashed else "connection")
                if not crashed:
                    big = case.content is not None and len(case.content) > 64 * 1024
                    hint = " (a big body: likely refused with 413 before it was read)" if big else ""
                    tally.connection_errors.append(Finding(case, f"{type(exc).__name__}: {exc}{hint}"))
                continue
            finally:
                inflight.pop(id(case), None)
            status = response.status_code
            tally.count(case, f"{status // 100}xx")
            if status >= 500:
                tally.server_errors.append(Finding(case, f"HTTP {status} {response.text[:200]!r}"))
            elif (b"event: error" in response.content
                  and "text/event-stream" in response.headers.get("content-type", "")):
                tally.stream_errors.append(Finding(case, "SSE error event after 200: "
                                                         + response.text[-200:].replace("\n", " ")))
                tally.count(case, "stream-error")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=target.url, timeout=timeout + 5, limits=limits, cookies=no_cookies,
                                 follow_redirects=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    tally.seconds = time.monotonic() - started
    if not target.alive():  # died on the very last request
        async with lock:
            tally.crashes.append(Crash(target.returncode, target.log_tail(), sent[-concurrency:]))
        await asyncio.to_thread(target.restart)
    tally.rss_end = target.rss()
    return tally


# --- soak ---------------------------------------------------------------------------------------
OPENERS = ["", "Scusi, ", "Mi può dire ", "Vorrei sapere: ", "Buongiorno, ", "Please, ", "Could you tell me ",
           "I'd like to know: ", "Una domanda: ", "Hello, "]


def soak_questions(seeds: list[str], seed: int):
    """An endless stream of unique questions built from the seed ones (no cache can hide any cost)."""
    rng = random.Random(seed)
    vocab = sorted({w.strip("?,.;:()'\"").lower() for q in seeds for w in q.split() if len(w) > 4})
    n = 0
    while True:
        n += 1
        extra = " ".join(rng.sample(vocab, 2)) if len(vocab) >= 2 else ""
        yield f"{rng.choice(OPENERS)}{rng.choice(seeds)} {extra} ({n})".strip()


@dataclass
class SoakTally:
    seconds: float = 0.0
    warmup_seconds: float = 0.0
    clients: int = 0
    requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    server_errors: int = 0
    hangs: int = 0
    crashed: bool = False
    crash_log: str = ""
    rss: list[tuple[float, int]] = field(default_factory=list)
    rss_start: int | None = None


async def run_soak(target: ProcessTarget, seconds: float, clients: int = 8, timeout: float = 10.0,
                   rss_every: float = 2.0, seed: int = 0) -> SoakTally:
    """Closed loop: each client asks its next unique question (chat, chat follow-up or search) as soon
    as the previous answer arrives; RSS sampled every `rss_every` seconds after the warm-up."""
    import aiohttp

    tally = SoakTally(clients=clients, warmup_seconds=min(15.0, max(1.0, seconds * 0.1)))
    questions = soak_questions(seed_questions(), seed)
    rng = random.Random(seed)
    start = time.monotonic()
    measure_from = start + tally.warmup_seconds
    until = measure_from + seconds

    async def client(i: int, http) -> None:
        session_id = None
        while time.monotonic() < until and not tally.crashed:
            roll = rng.random()
            if roll < 0.35:
                path, body = "/api/search", {"query": next(questions), "k": rng.randint(1, 10)}
            else:
                body = {"message": next(questions)}
                if session_id and roll < 0.55:
                    body["session_id"] = session_id
                path = "/api/chat"
            record = time.monotonic() >= measure_from
            t0 = time.perf_counter()
            try:
                async with http.post(path, json=body) as r:
                    payload = await r.read()
                    status = r.status
            except TimeoutError:
                if record:
                    tally.hangs += 1
                    tally.requests += 1
                continue
            except aiohttp.ClientError as exc:
                if not target.alive():
                    tally.crashed, tally.crash_log = True, target.log_tail()
                if record:
                    tally.errors[type(exc).__name__] += 1
                    tally.requests += 1
                continue
            if path == "/api/chat" and status == 200:
                session_id = json.loads(payload).get("session_id")
            if not record:
                continue
            tally.requests += 1
            if status == 200:
                tally.latencies_ms.append((time.perf_counter() - t0) * 1000)
            else:
                tally.errors[str(status)] += 1
                tally.server_errors += status >= 500

    async def sampler() -> None:
        while time.monotonic() < until and not tally.crashed:
            now = time.monotonic()
            if now >= measure_from:
                rss = target.rss()
                if rss is not None:
                    tally.rss.append((now - measure_from, rss))
            await asyncio.sleep(rss_every)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(target.url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        await asyncio.gather(sampler(), *(client(i, http) for i in range(clients)))
    tally.seconds = max(0.0, min(time.monotonic(), until) - measure_from)
    last = target.rss()
    if last is not None and not tally.crashed:
        tally.rss.append((tally.seconds, last))
    return tally


# --- bot accounting -----------------------------------------------------------------------------
def bot_counts(metrics_text: str) -> tuple[int, int]:
    """(updates handled, updates that failed) from the server's /metrics."""
    handled = failed = 0
    for line in metrics_text.splitlines():
        if line.startswith("sibyl_bot_updates_total{"):
            value = int(float(line.rsplit(" ", 1)[1]))
            handled += value
            failed += value if 'result="error"' in line else 0
    return handled, failed


# --- the command --------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


def _server_env(settings: Settings, tmp: Path, peer_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TELEGRAM_")}
    env.update(SIBYL_RATE_LIMIT="", SIBYL_TELEGRAM_RATE_LIMIT="", SIBYL_DATA_DIR=str(tmp / "data"),
               SIBYL_CORPUS_DIR=str(settings.corpus_dir), SIBYL_DATABASE_URL=f"sqlite:///{tmp / 'robust.db'}",
               SIBYL_API_WORKERS="1", SIBYL_LOG_LEVEL="WARNING", HF_HUB_OFFLINE="1", SIBYL_CHROMA_URL="",
               ANONYMIZED_TELEMETRY="False")
    if peer_url:
        env.update(TELEGRAM_BOT_TOKEN=BOT_TOKEN, TELEGRAM_API_BASE_URL=peer_url, TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
                   TELEGRAM_WEBHOOK_URL="https://sibyl.invalid" + WEBHOOK_PATH)
    return env


class OperatorSession:
    """A signed-in operator: cookie and CSRF token for the console routes (renewed after a restart)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.headers: dict[str, bytes] = {}

    def login(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            http.get("/operatore/login")
            token = http.cookies.get("sibyl_operator_login", "")
            r = http.post("/operatore/login", data={"username": OPERATOR[0], "password": OPERATOR[1],
                                                    "csrf_token": token})
            session = http.cookies.get("sibyl_operator")
            if r.status_code != 303 or not session:
                raise RuntimeError(f"operator login failed: HTTP {r.status_code}")
            page = http.get("/operatore/cerca").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
            self.headers = {"Cookie": f"sibyl_operator={session}".encode(),
                            "X-CSRF-Token": (csrf.group(1) if csrf else "").encode()}

    def __call__(self) -> dict[str, bytes]:
        return self.headers


def _prepare(settings: Settings, tmp: Path, env: dict[str, str]) -> None:
    """Its own index and one operator account, with the same environment the server gets."""
    run = [sys.executable, "-m", "sibyl"]
    done = subprocess.run(run + ["ingest"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"sibyl ingest failed: {done.stderr[-2000:]}")
    done = subprocess.run(run + ["operator", "add", OPERATOR[0]], cwd=PROJECT_ROOT, env=env, input=OPERATOR[1] + "\n",
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"sibyl operator add failed: {done.stderr[-2000:]}")


def run_bench_robust(settings: Settings, fuzz: int = 10_000, soak_seconds: float = 600.0, clients: int = 8,
                     timeout: float = 10.0, concurrency: int = 4, seed: int | None = None, bot: bool = True,
                     max_rss_growth: float = 10.0, as_json: bool = False) -> tuple[str, bool]:
    """Run both phases; returns (report, passed)."""
    if str(PROJECT_ROOT) not in sys.path:  # the Telegram peer lives with the tests, in the checkout
        sys.path.insert(0, str(PROJECT_ROOT))
    from tests.telegram_peer import BotAPIPeer

    seed = random.randrange(2**31) if seed is None else seed
    peer = BotAPIPeer(BOT_TOKEN).start() if bot else None
    with tempfile.TemporaryDirectory(prefix="sibyl-bench-robust-") as tmp_name:
        tmp = Path(tmp_name)
        env = _server_env(settings, tmp, peer.url if peer else None)
        port = free_port()
        target = ProcessTarget([sys.executable, "-m", "sibyl", "serve", "--port", str(port)], env, port,
                               tmp / "server.log")
        try:
            t0 = time.monotonic()
            _prepare(settings, tmp, env)
            ingest_seconds = time.monotonic() - t0
            print(f"bench-robust: index built in {ingest_seconds:.0f} s, starting the server", file=sys.stderr,
                  flush=True)
            target.start()
            operator = OperatorSession(target.url)
            operator.login()
            openapi = httpx.get(target.url + "/openapi.json", timeout=30).json()
            routes = list_routes(Settings(data_dir=tmp / "data", corpus_dir=settings.corpus_dir, _env_file=None),
                                 openapi)
            feed: queue.Queue = queue.Queue(maxsize=500)
            cases: list[Case] = []

            failed: list[BaseException] = []

            def draw_all() -> None:
                try:
                    cases.extend(generate_cases(fuzz, routes, openapi.get("components", {}).get("schemas", {}), seed,
                                                0.15 if bot else 0.0, signed_in=True, emit=feed.put))
                except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
                    failed.append(exc)
                finally:
                    feed.put(None)

            drawer = threading.Thread(target=draw_all, name="bench-robust-draw", daemon=True)
            drawer.start()
            tally = asyncio.run(run_fuzz(target, feed, timeout, concurrency, operator, lambda: operator.login(),
                                         progress_every=max(100, fuzz // 20)))
            drawer.join()
            if failed:
                raise failed[0]
            bot_seen = {"handled": 0, "failed": 0}
            posted = sum(1 for c in cases if c.bot)
            accepted = tally.statuses.get(f"POST {WEBHOOK_PATH} (bot)", Counter()).get("2xx", 0)
            if bot:  # give the queued updates time to be handled, then read the bot's own counters
                deadline = time.monotonic() + max(30.0, timeout * 3)
                while time.monotonic() < deadline:
                    handled, errored = bot_counts(httpx.get(target.url + "/metrics", timeout=10).text)
                    bot_seen = {"handled": handled, "failed": errored}
                    if handled >= accepted or tally.crashes:
                        break
                    time.sleep(1)
            rejected = [c for c in peer.calls if c.status == 400] if peer else []  # what Telegram would refuse
            if soak_seconds > 0:
                print(f"bench-robust: fuzz done, soak {soak_seconds:g} s with {clients} clients", file=sys.stderr,
                      flush=True)
            soak = (asyncio.run(run_soak(target, soak_seconds, clients, timeout, seed=seed))
                    if soak_seconds > 0 else None)
        finally:
            target.stop()
            if peer is not None:
                peer.stop()
    report = _report(fuzz, seed, routes, tally, posted, accepted, bot_seen, rejected, soak, timeout, concurrency,
                     ingest_seconds, max_rss_growth, bot)
    text = json.dumps(report, indent=1, ensure_ascii=False) if as_json else _format(report)
    return text.encode("utf-8", "backslashreplace").decode("utf-8"), report["passed"]  # fuzz may hold lone surrogates


def _report(fuzz, seed, routes, tally: FuzzTally, posted, accepted, bot_seen, rejected, soak: SoakTally | None,
            timeout, concurrency, ingest_seconds, max_rss_growth, bot) -> dict:
    def findings(items: list[Finding], limit: int = 15) -> list[str]:
        return [f.line() for f in items[:limit]]

    # Updates the webhook took but that never came out of the handler: stuck (or lost in a crash).
    bot_unhandled = max(0, accepted - bot_seen["handled"]) if bot and not tally.crashes else 0
    fuzz_part = {
        "inputs": fuzz, "sent": tally.sent, "seed": seed, "seconds": round(tally.seconds, 1),
        "timeout_s": timeout, "concurrency": concurrency, "endpoints": len({r.method + " " + r.path for r in routes}),
        "by_endpoint": {k: dict(v) for k, v in sorted(tally.statuses.items())},
        "server_errors": len(tally.server_errors), "stream_errors": len(tally.stream_errors),
        "hangs": len(tally.hangs), "connection_errors": len(tally.connection_errors), "crashes": len(tally.crashes),
        "server_error_samples": findings(tally.server_errors), "stream_error_samples": findings(tally.stream_errors),
        "hang_samples": findings(tally.hangs), "connection_error_samples": findings(tally.connection_errors),
        "crash_details": [{"returncode": c.returncode, "log_tail": c.log_tail[-600:],
                           "in_flight": [s.describe() for s in c.suspects[:8]]} for c in tally.crashes],
        "rss_start_mb": round(tally.rss_start / 2**20, 1) if tally.rss_start else None,
        "rss_end_mb": round(tally.rss_end / 2**20, 1) if tally.rss_end else None,
        "bot": {"updates_posted": posted, "accepted": accepted, "handled": bot_seen["handled"],
                "handler_errors": bot_seen["failed"], "unhandled": bot_unhandled,
                "bot_api_rejections": len(rejected),
                "bot_api_rejection_samples": [f"{c.method}: {json.dumps(c.params)[:200]}"
                                              for c in rejected[:5]]} if bot else None,
    }
    soak_part: dict[str, Any] | None = None
    if soak is not None:
        rss_values = [r for _, r in soak.rss]
        start, end = (rss_values[0], rss_values[-1]) if rss_values else (None, None)
        growth = round((end - start) / start * 100, 1) if start and end is not None else None
        soak_part = {
            "clients": soak.clients, "seconds": round(soak.seconds, 1), "warmup_seconds": soak.warmup_seconds,
            "requests": soak.requests, "ok": len(soak.latencies_ms), "errors": dict(soak.errors),
            "server_errors": soak.server_errors, "hangs": soak.hangs, "crashed": soak.crashed,
            "crash_log": soak.crash_log[-600:], "p50_ms": _pct(soak.latencies_ms, 0.5),
            "p95_ms": _pct(soak.latencies_ms, 0.95),
            "rss_start_mb": round(start / 2**20, 1) if start else None,
            "rss_max_mb": round(max(rss_values) / 2**20, 1) if rss_values else None,
            "rss_end_mb": round(end / 2**20, 1) if end else None, "rss_growth_pct": growth,
            "rss_samples": len(rss_values),
        }
    bot_part = fuzz_part["bot"] or {}
    failures = {
        "crashes": fuzz_part["crashes"] + int(bool(soak_part and soak_part["crashed"])),
        "5xx": (fuzz_part["server_errors"] + fuzz_part["stream_errors"]
                + (soak_part["server_errors"] if soak_part else 0)),
        "hangs": fuzz_part["hangs"] + (soak_part["hangs"] if soak_part else 0) + bot_part.get("unhandled", 0),
        "bot_handler_errors": bot_part.get("handler_errors", 0) + bot_part.get("bot_api_rejections", 0),
        "soak_errors": sum(soak_part["errors"].values()) if soak_part else 0,
        "rss_growth_over_limit": int(bool(soak_part and soak_part["rss_growth_pct"] is not None
                                          and soak_part["rss_growth_pct"] >= max_rss_growth)),
    }
    return {"fuzz": fuzz_part, "soak": soak_part, "index_build_seconds": round(ingest_seconds, 1),
            "max_rss_growth_pct": max_rss_growth, "failures": failures, "passed": not any(failures.values())}


def _format(report: dict) -> str:
    f, s = report["fuzz"], report["soak"]
    lines = [(f"Fuzz: {f['sent']} of {f['inputs']} inputs over {f['endpoints']} endpoints + the bot webhook "
              f"(seed {f['seed']}), {f['concurrency']} concurrent, timeout {f['timeout_s']:g} s, {f['seconds']} s; "
              f"server RSS {f['rss_start_mb']} -> {f['rss_end_mb']} MB")]
    header = (f"{'endpoint':<46} {'n':>6} {'2xx':>5} {'3xx':>5} {'4xx':>5} {'5xx':>4} {'hang':>4} {'conn':>4} "
              f"{'crash':>5}")
    lines += ["", header, "-" * len(header)]
    for endpoint, counts in f["by_endpoint"].items():
        n = sum(counts.values())
        lines.append(f"{endpoint[:46]:<46} {n:>6} {counts.get('2xx', 0):>5} {counts.get('3xx', 0):>5} "
                     f"{counts.get('4xx', 0):>5} {counts.get('5xx', 0) + counts.get('stream-error', 0):>4} "
                     f"{counts.get('hang', 0):>4} {counts.get('connection', 0) + counts.get('unsendable', 0):>4} "
                     f"{counts.get('crash', 0):>5}")
    lines.append("")
    if f["bot"]:
        b = f["bot"]
        lines.append(f"bot: {b['updates_posted']} updates posted, {b['accepted']} accepted (2xx), "
                     f"{b['handled']} handled, "
                     f"{b['handler_errors']} handler errors, {b['unhandled']} never handled, "
                     f"{b['bot_api_rejections']} calls rejected by the Bot API")
        lines += [f"  rejected: {x}" for x in b["bot_api_rejection_samples"]]
    lines.append(f"crashes {f['crashes']}, 5xx {f['server_errors']}, SSE errors {f['stream_errors']}, "
                 f"hangs {f['hangs']}, "
                 f"connection errors {f['connection_errors']}")
    for i, crash in enumerate(f["crash_details"], 1):
        lines.append(f"  crash {i}: exit {crash['returncode']}; log: "
                     + " | ".join(crash["log_tail"].strip().splitlines()[-3:])[:400])
        lines += [f"    in flight: {x}" for x in crash["in_flight"]]
    for key, title in (("server_error_samples", "5xx"), ("stream_error_samples", "SSE error"),
                       ("hang_samples", "hang"), ("connection_error_samples", "connection")):
        lines += [f"  {title}: {x}" for x in f[key]]
    if s:
        soak_line = (f"Soak: {s['clients']} clients, {s['seconds']} s after {s['warmup_seconds']:g} s warm-up: "
                     f"{s['requests']} requests, {s['ok']} ok, p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms, "
                     f"errors {s['errors'] or 0}, 5xx {s['server_errors']}, hangs {s['hangs']}, "
                     f"crashed {'yes' if s['crashed'] else 'no'}")
        rss_line = (f"RSS: start {s['rss_start_mb']} MB, max {s['rss_max_mb']} MB, end {s['rss_end_mb']} MB, "
                    f"growth {s['rss_growth_pct']}% (limit {report['max_rss_growth_pct']:g}%, "
                    f"{s['rss_samples']} samples)")
        lines += ["", soak_line, rss_line]
        if s["crashed"]:
            lines.append("  crash log: " + " | ".join(s["crash_log"].strip().splitlines()[-3:])[:400])
    failed = {k: v for k, v in report["failures"].items() if v}
    lines += ["", "PASS: 0 crashes, 0 5xx, 0 hangs" if report["passed"]
              else "FAIL: " + ", ".join(f"{k} {v}" for k, v in failed.items())]
    return "\n".join(lines)
