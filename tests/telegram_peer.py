"""A local Bot API peer for the Telegram tests: speaks the Bot API's HTTP/JSON on 127.0.0.1.

It serves getUpdates (long polling with offsets) from a queue the test fills, answers the
methods the bot calls, records every call, validates HTML messages the way Telegram does
(allowed tags, balanced, at most 4,096 characters after parsing) and can inject failures
(a 429 with retry_after, a 502) for the next call of a method. Files: `add_file` serves bytes through
getFile and the file download URL (python-telegram-bot's `get_file()` / `download_as_bytearray()`), and
multipart uploads (sendVoice) are recorded with their bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote

BOT_ID = 7000001
BOT_USERNAME = "SibylLecceBot"
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
                "pre", "blockquote", "tg-emoji"}
_BAD_AMP = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")
JSON_FIELDS = {"reply_markup", "commands", "scope", "reply_parameters", "link_preview_options",
               "allowed_updates", "entities", "results", "button", "menu_button"}
DESCRIPTION_LIMITS = {"setMyDescription": ("description", 512), "setMyShortDescription": ("short_description", 120)}


class TelegramHTMLError(ValueError):
    pass


class _Checker(HTMLParser):
    """Telegram's HTML rules: only its tags, properly nested and closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            raise TelegramHTMLError(f"Unsupported start tag \"{tag}\"")
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            raise TelegramHTMLError(f"Can't find end tag corresponding to start tag \"{tag}\"")
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse_telegram_html(text: str) -> str:
    """The visible text of a Telegram HTML message, or TelegramHTMLError as Telegram would answer."""
    if _BAD_AMP.search(text):
        raise TelegramHTMLError("Unsupported entity: unescaped '&'")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    if checker.stack:
        raise TelegramHTMLError(f"Can't find end tag corresponding to start tag \"{checker.stack[-1]}\"")
    return "".join(checker.text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client hanging up mid long-poll is normal
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@dataclass
class Call:
    method: str
    params: dict
    at: float = field(default_factory=time.monotonic)
    status: int = 200
    result: object = None


class BotAPIPeer:
    def __init__(self, token: str, port: int = 0) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.updates: list[dict] = []
        self.failures: dict[str, list[tuple[int, dict]]] = {}
        self.cond = threading.Condition()
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self.files: dict[str, bytes] = {}
        self.server = _Server(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> BotAPIPeer:
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.cond:
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # --- test-side API -----------------------------------------------------------------------
    def push(self, update: dict) -> int:
        """Queue an update (update_id assigned here unless given); returns its update_id."""
        with self.cond:
            update = dict(update)
            update.setdefault("update_id", next(self._update_ids))
            self.updates.append(update)
            self.cond.notify_all()
            return update["update_id"]

    def fail_next(self, method: str, status: int, **extra) -> None:
        with self.cond:
            self.failures.setdefault(method, []).append((status, extra))

    def add_file(self, data: bytes, file_id: str) -> dict:
        """Serve `data` as a Telegram file; returns the `voice` object of a message carrying it."""
        with self.cond:
            self.files[file_id] = data
        return {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_size": len(data)}

    def mark(self) -> int:
        with self.cond:
            return len(self.calls)

    def calls_since(self, mark: int, method: str | None = None) -> list[Call]:
        with self.cond:
            return [c for c in self.calls[mark:] if method is None or c.method == method]

    def wait_for(self, predicate, timeout: float = 30.0):
        """Wait until predicate(calls) is truthy; returns its value (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate(list(self.calls))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; calls: {[c.method for c in self.calls][-30:]}")
                self.cond.wait(min(left, 0.2))

    def wait_sent(self, mark: int, count: int = 1, chat_id: int | None = None, timeout: float = 30.0,
                  method: str = "sendMessage") -> list[Call]:
        def ready(calls):
            found = [c for c in calls[mark:] if c.method == method and c.status == 200
                     and (chat_id is None or int(c.params.get("chat_id", 0)) == chat_id)]
            return found if len(found) >= count else None

        return self.wait_for(ready, timeout)

    # --- server ------------------------------------------------------------------------------
    def _bot_user(self) -> dict:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Sibyl", "username": BOT_USERNAME,
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": True}

    def _message(self, params: dict, text: str) -> dict:
        chat_id = int(params["chat_id"])
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "group"}
        if chat_id < 0:
            chat["title"] = "Lecce group"
        msg = {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
               "from": self._bot_user(), "text": text}
        if (params.get("reply_markup") or {}).get("inline_keyboard"):  # Telegram echoes inline keyboards only
            msg["reply_markup"] = params["reply_markup"]
        return msg

    def handle(self, method: str, params: dict) -> tuple[int, dict]:
        """One Bot API call -> (HTTP status, JSON body). Runs in the server thread."""
        with self.cond:
            queued = self.failures.get(method)
            if queued:
                status, extra = queued.pop(0)
                if status == 429:
                    return 429, {"ok": False, "error_code": 429,
                                 "description": f"Too Many Requests: retry after {extra['retry_after']}",
                                 "parameters": {"retry_after": extra["retry_after"]}}
                description = extra.get("description", "Bad Gateway")
                return status, {"ok": False, "error_code": status, "description": description}
        if method == "getMe":
            return 200, {"ok": True, "result": self._bot_user()}
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            timeout = float(params.get("timeout") or 0)
            deadline = time.monotonic() + timeout
            with self.cond:
                if offset:  # confirms every update below the offset
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
                while not self.updates and time.monotonic() < deadline:
                    self.cond.wait(min(0.1, deadline - time.monotonic()))
                limit = int(params.get("limit") or 100)
                return 200, {"ok": True, "result": self.updates[:limit]}
        if method in ("sendMessage", "editMessageText"):
            text = str(params.get("text", ""))
            try:
                visible = parse_telegram_html(text) if params.get("parse_mode") == "HTML" else text
            except TelegramHTMLError as exc:
                return 400, {"ok": False, "error_code": 400,
                             "description": f"Bad Request: can't parse entities: {exc}"}
            if not visible.strip():
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
            if len(visible.encode("utf-16-le")) // 2 > 4096:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
            for row in (params.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if len(button.get("callback_data", "").encode()) > 64:
                        return 400, {"ok": False, "error_code": 400, "description": "Bad Request: BUTTON_DATA_INVALID"}
            return 200, {"ok": True, "result": self._message(params, visible)}
        if method == "getFile":
            file_id = str(params.get("file_id", ""))
            if file_id not in self.files:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}
            return 200, {"ok": True, "result": {"file_id": file_id, "file_unique_id": f"u-{file_id}",
                                                "file_size": len(self.files[file_id]),
                                                "file_path": f"voice/{file_id}.oga"}}
        if method == "sendVoice":
            audio = params.get("voice")
            if not isinstance(audio, bytes) or not audio:
                return 400, {"ok": False, "error_code": 400,
                             "description": "Bad Request: there is no voice in the request"}
            msg = self._message(params, "")
            msg.pop("text")
            msg["voice"] = {"file_id": f"sent-{msg['message_id']}", "file_unique_id": f"s{msg['message_id']}",
                            "duration": 1, "mime_type": "audio/ogg", "file_size": len(audio)}
            return 200, {"ok": True, "result": msg}
        if method == "editMessageReplyMarkup":
            return 200, {"ok": True, "result": self._message(params, "(edited)")}
        if method in ("answerCallbackQuery", "setMyCommands", "deleteWebhook", "setWebhook", "sendChatAction",
                      "deleteMyCommands", "close", "logOut"):
            return 200, {"ok": True, "result": True}
        if method == "getMyCommands":
            return 200, {"ok": True, "result": []}
        if method in DESCRIPTION_LIMITS:  # the bot's profile texts (issue 17), per language_code
            key, limit = DESCRIPTION_LIMITS[method]
            if len(str(params.get(key, ""))) > limit:
                return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {key} is too long"}
            return 200, {"ok": True, "result": True}
        if method == "setChatMenuButton":
            button = params.get("menu_button") or {}
            url = ((button.get("web_app") or {}).get("url") or "") if button.get("type") == "web_app" else ""
            if button.get("type") == "web_app" and not url.startswith("https://"):
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: BUTTON_URL_INVALID"}
            return 200, {"ok": True, "result": True}
        if method == "answerInlineQuery":
            return self._inline_answer(params)
        return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}

    def _inline_answer(self, params: dict) -> tuple[int, dict]:
        """answerInlineQuery as Telegram checks it: at most 50 results, unique ids of at most 64 bytes, each
        article's message valid HTML within 4,096 characters, button data within 64 bytes."""
        results = params.get("results") or []
        if not isinstance(results, list) or len(results) > 50:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: RESULTS_TOO_MUCH"}
        ids = [str(r.get("id", "")) for r in results]
        if len(set(ids)) != len(ids) or any(not i or len(i.encode()) > 64 for i in ids):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: RESULT_ID_INVALID"}
        for result in results:
            content = result.get("input_message_content") or {}
            text = str(content.get("message_text", ""))
            try:
                visible = parse_telegram_html(text) if content.get("parse_mode") == "HTML" else text
            except TelegramHTMLError as exc:
                return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: can't parse entities: {exc}"}
            if not visible.strip() or len(visible.encode("utf-16-le")) // 2 > 4096:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: MESSAGE_TEXT_INVALID"}
        button = params.get("button")
        if button is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(button.get("start_parameter", ""))):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: START_PARAM_INVALID"}
        return 200, {"ok": True, "result": True}

    def _handler(self):
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                file_prefix = f"/file/bot{peer.token}/"
                if unquote(self.path).startswith(file_prefix):  # python-telegram-bot quotes the token's ':'
                    return self._file(unquote(self.path)[len(file_prefix):])
                prefix = f"/bot{peer.token}/"
                if not self.path.startswith("/bot"):
                    return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                if not self.path.startswith(prefix):
                    return self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                method = self.path[len(prefix):].split("?")[0]
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype:
                    params = json.loads(body or b"{}")
                elif ctype.startswith("multipart/form-data"):
                    params = _multipart(ctype, body)
                else:
                    params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
                    for key in JSON_FIELDS & params.keys():
                        params[key] = json.loads(params[key])
                    for key, value in params.items():  # python-telegram-bot JSON-encodes non-strings
                        if value in ("true", "false"):
                            params[key] = value == "true"
                status, payload = peer.handle(method, params)
                with peer.cond:
                    peer.calls.append(Call(method, params, status=status, result=payload.get("result")))
                    peer.cond.notify_all()
                self._reply(status, payload)

            do_GET = do_POST

            def _file(self, path):
                file_id = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
                with peer.cond:
                    data = peer.files.get(file_id)
                    peer.calls.append(Call("download", {"file_path": path}, status=200 if data else 404))
                    peer.cond.notify_all()
                if data is None:
                    return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _multipart(ctype: str, body: bytes) -> dict:
    """A multipart/form-data body (uploads): text fields as strings (JSON ones decoded), files as bytes."""
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    params: dict = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            params[name] = data
        else:
            value = data.decode("utf-8")
            params[name] = json.loads(value) if name in JSON_FIELDS else value
    return params


# --- update builders ----------------------------------------------------------------------------
_msg_ids = itertools.count(1)


@contextlib.contextmanager
def polling(application, peer: BotAPIPeer, timeout: float = 60):
    """Run a python-telegram-bot Application against the peer (long polling, its own thread and loop) for a
    with-block, yielding its loop; on exit stop it, and fail if it did not stop or raised."""
    from bot.app import run_polling

    loops: dict = {}
    failure: list = []

    def run():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loops["loop"] = loop
        try:
            run_polling(application, poll_timeout=1, stop_signals=None, use_default_signals=False)
        except BaseException as exc:  # surfaced on exit
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    peer.wait_for(lambda calls: any(c.method == "getUpdates" for c in calls), timeout=timeout)
    try:
        yield loops["loop"]
    finally:
        loops["loop"].call_soon_threadsafe(application.stop_running)
        thread.join(timeout=30)
    assert not thread.is_alive(), "the bot did not stop"
    assert not failure, failure


def keyboard(call) -> list[list[dict]]:
    """The inline keyboard a Bot API call sent (rows of buttons), or none."""
    return (call.params.get("reply_markup") or {}).get("inline_keyboard", [])


def user(uid: int, lang: str | None = "it", name: str = "Anna") -> dict:
    out = {"id": uid, "is_bot": False, "first_name": name}
    if lang:
        out["language_code"] = lang
    return out


def message(chat_id: int, text: str, sender: dict, *, reply_to: dict | None = None, **extra) -> dict:
    chat = {"id": chat_id, "type": "private", "first_name": sender["first_name"]} if chat_id > 0 else \
        {"id": chat_id, "type": "group", "title": "Lecce group"}
    msg = {"message_id": next(_msg_ids), "date": int(time.time()), "chat": chat, "from": sender}
    if text is not None:
        msg["text"] = text
        entities = []
        if text.startswith("/"):
            entities.append({"type": "bot_command", "offset": 0, "length": len(text.split()[0])})
        at = text.find("@" + BOT_USERNAME)
        if at >= 0 and not text.startswith("/"):
            entities.append({"type": "mention", "offset": at, "length": len(BOT_USERNAME) + 1})
        if entities:
            msg["entities"] = entities
    if reply_to is not None:
        msg["reply_to_message"] = reply_to
    msg.update(extra)
    return {"message": msg}


def inline_query(sender: dict, query: str) -> dict:
    """`@bot <query>` typed in any chat (inline mode)."""
    return {"inline_query": {"id": str(next(_msg_ids)), "from": sender, "query": query, "offset": ""}}


def start_link(chat_id: int, sender: dict, payload: str) -> dict:
    """What opening t.me/<bot>?start=<payload> sends: '/start <payload>'."""
    return message(chat_id, f"/start {payload}", sender)


def callback(chat_id: int, sender: dict, data: str, sent: dict) -> dict:
    """A button press on a message the bot sent (`sent` is the peer's result for that sendMessage)."""
    return {"callback_query": {"id": str(next(_msg_ids)), "from": sender, "chat_instance": f"ci{chat_id}",
                               "data": data, "message": sent}}
