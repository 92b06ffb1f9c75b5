"""Issue 10 (HTTP): no single client may make `sibyl serve` read unbounded bodies, hold sockets forever,
choose its own address, or keep the web chat from starting when Telegram is unreachable.

Every test talks to a real `sibyl serve` on loopback, over raw sockets where the point is what the server
does before a request is complete.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.deploy_support import REPO, free_port, sibyl_env, stop, wait_http

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 2  # short deadlines so the tests do not wait long; defaults are 10 s and 60 s
BODY_TIMEOUT = 3
PROXY = "127.0.0.2"  # on Linux all of 127.0.0.0/8 is loopback: a client can connect from this address


@contextmanager
def sibyl_serve(tmp: Path, source_index: Path, **env: str):
    """`sibyl serve` over a private copy of the session's index; yields (url, port, log path)."""
    data = tmp / "data"
    shutil.copytree(source_index, data / "index")
    port = free_port()
    log_path = tmp / "serve.log"
    values = {"SIBYL_DATA_DIR": str(data), "SIBYL_CORPUS_DIR": str(REPO / "corpus"), "SIBYL_RATE_LIMIT": "",
              "SIBYL_LOG_LEVEL": "INFO", **env}
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sibyl", "serve", "--port", str(port)], cwd=REPO,
                                env=sibyl_env(**values), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz", 300, proc, log_path)
        yield url, port, log_path
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def server(built_index, settings, tmp_path_factory):
    """Defaults for the body limit (64 KB), short header/body deadlines, no rate limit."""
    with sibyl_serve(tmp_path_factory.mktemp("hardening"), settings.index_dir,
                     SIBYL_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
                     SIBYL_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT)) as running:
        yield running


# --- raw HTTP ---------------------------------------------------------------------------------------------
def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(60)  # a hang fails the test (socket.timeout) instead of blocking pytest
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """One HTTP response: status, lower-cased headers, body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return status, headers, body


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed the connection (EOF or reset) -- waits at most the socket timeout."""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except ConnectionResetError:
        return True


def post_head(path: str, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *extra, "", ""]
    return "\r\n".join(lines).encode()


# --- 3. request bodies ------------------------------------------------------------------------------------
def test_a_declared_300_mb_body_gets_413_before_it_is_sent(server):
    _, port, _ = server
    with connect(port) as sock:
        sock.sendall(post_head("/api/chat", "Content-Length: 300000000"))
        sock.sendall(b'{"message": "' + b"a" * 16384)  # 16 KB of the 300 MB announced; the rest never comes
        status, headers, body = read_response(sock)
        assert status == 413
        assert json.loads(body)["code"] == "too_large" and "65536" in json.loads(body)["detail"]
        assert headers["connection"] == "close"
        assert closed_by_server(sock)


def test_a_chunked_body_is_refused_while_it_is_still_arriving(server):
    """No Content-Length: the server counts the chunks and answers 413 once past the limit, while the
    client still has most of its 4 MB to send (and never sent the final chunk)."""
    _, port, _ = server
    chunk = b'"' + b"x" * 8190 + b'"'
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    total = 4 * 1024 * 1024
    with connect(port) as sock:
        sock.sendall(post_head("/api/search", "Transfer-Encoding: chunked"))
        sock.sendall(b"5\r\n[1,2,\r\n")
        sent = 5  # body bytes so far
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:  # the answer came: stop sending
                break
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            time.sleep(0.002)
        status, headers, body = read_response(sock)
    assert status == 413 and json.loads(body)["code"] == "too_large"
    assert 64 * 1024 < sent < total  # answered after the limit was passed, long before the body ended


def test_a_body_under_the_limit_is_served(server):
    url, _, _ = server
    body = b'{"query": "piste ciclabili", "k": 1}' + b" " * 50_000  # JSON whitespace: 50 KB, valid
    r = httpx.post(url + "/api/search", content=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200 and r.json()["results"]


def test_operator_uploads_keep_their_larger_limit(server):
    """A 200 KB form to the upload path is over the API limit but under the upload one: not a 413 (here
    401, as nobody is logged in)."""
    url, _, _ = server
    r = httpx.post(url + "/operatore/documenti", files={"file": ("a.txt", b"x" * 200_000, "text/plain")},
                   headers={"Accept": "application/json"}, timeout=60)
    assert r.status_code == 401


def test_422_lists_a_few_problems_not_every_unknown_key(server):
    url, _, _ = server
    body = {f"k{i}": 0 for i in range(5000)}  # ~50 KB, under the body limit
    r = httpx.post(url + "/api/search", json=body, timeout=60)
    assert r.status_code == 422
    data = r.json()
    assert data["code"] == "validation_error" and data["errors_total"] == 5001  # 5000 keys + missing query
    assert len(data["errors"]) == 10 and "4991 more problems" in data["detail"]
    assert len(r.content) < 4000


def test_422_field_names_are_shortened(server):
    url, _, _ = server
    r = httpx.post(url + "/api/search", json={"query": "x", "z" * 30_000: 1}, timeout=60)
    assert r.status_code == 422 and len(r.content) < 1000


# --- 8. slow clients --------------------------------------------------------------------------------------
def test_partial_headers_are_closed_after_the_header_timeout(server):
    _, port, _ = server
    with connect(port) as sock:
        sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
        status, _, _ = read_response(sock)
        assert status == 408
        assert closed_by_server(sock)


def test_headers_trickled_byte_by_byte_do_not_keep_the_connection(server):
    """Slowloris proper: activity does not extend the deadline; the whole head must arrive in time."""
    _, port, _ = server
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        for _ in range(600):  # 60 s at most; the server's deadline is HEADER_TIMEOUT
            if select.select([sock], [], [], 0.1)[0]:
                closed = True
                break
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed
        assert closed_by_server(sock)


def test_oversized_headers_get_431(server):
    _, port, _ = server
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.sendall(b"".join(b"X-Pad: " + b"p" * 8000 + b"\r\n" for _ in range(9)))  # 72 KB, never ended
        status, _, _ = read_response(sock)
        assert status == 431
        assert closed_by_server(sock)


def test_a_silent_connection_is_closed(server):
    _, port, _ = server
    with connect(port) as sock:
        assert closed_by_server(sock)


def test_a_body_that_stops_arriving_gets_408(server):
    _, port, _ = server
    with connect(port) as sock:
        sock.sendall(post_head("/api/chat", "Content-Length: 100") + b'{"message": ')  # 12 of 100 bytes
        status, headers, body = read_response(sock)
        assert status == 408 and json.loads(body)["code"] == "body_timeout"
        assert closed_by_server(sock)


def test_streamed_answers_pass_through_the_body_limit(server):
    """The body checks wrap `receive`; a server-sent-events answer (which listens for disconnects on it)
    still streams to its end."""
    url, _, _ = server
    with httpx.stream("POST", url + "/api/chat/stream", json={"message": "Cosa fa il Comune per la mobilità?"},
                      timeout=60) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    assert "event: final" in text


# --- fuzz: never a 5xx ------------------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20)
FIELDS = st.sampled_from(["message", "query", "session_id", "message_id", "rating", "comment", "k", "language",
                          "filters"])
BODIES = (JSON
          | st.dictionaries(FIELDS, JSON, max_size=4)
          | st.binary(max_size=200).map(lambda b: ("raw", b)))
HEADER_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
HEADERS = st.dictionaries(
    st.sampled_from(["content-type", "accept", "accept-language", "x-forwarded-for", "x-forwarded-proto",
                     "content-encoding", "origin", "cookie", "x-real-ip", "expect"]),
    HEADER_VALUE, max_size=4)
ENDPOINTS = st.sampled_from(["/api/chat", "/api/search", "/api/feedback", "/api/chat/stream"])


@given(path=ENDPOINTS, body=BODIES, headers=HEADERS)
@hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
def test_random_bodies_and_headers_never_get_a_5xx(server, path, body, headers):
    url, _, _ = server
    content = body[1] if isinstance(body, tuple) else json.dumps(body).encode()
    headers = {k: v for k, v in headers.items() if k != "expect"} | {"content-type": headers.get("content-type",
                                                                                                 "application/json")}
    with httpx.Client(timeout=60) as client, client.stream("POST", url + path, content=content, headers=headers) as r:
        r.read()
    assert r.status_code < 500, (path, content[:200], headers, r.status_code, r.text[:300])


# --- 5. forwarded headers ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def proxied(built_index, settings, tmp_path_factory):
    """Trusts one proxy (127.0.0.2); rate limit 2/minute; one operator account."""
    from tests.operator_support import add_operator

    tmp = tmp_path_factory.mktemp("proxied")
    db = tmp / "sibyl.db"
    add_operator(settings.model_copy(update={"database_url": f"sqlite:///{db}"}))
    with sibyl_serve(tmp, settings.index_dir, SIBYL_TRUSTED_PROXIES=PROXY, SIBYL_RATE_LIMIT="2/minute",
                     SIBYL_DATABASE_URL=f"sqlite:///{db}") as (url, port, log):
        yield url, db, log


def via(address: str) -> httpx.Client:
    """A client whose connections come from `address` (the proxy, or a direct client)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def search(client: httpx.Client, url: str, forwarded: str | None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post(url + "/api/search", json={"query": "bilancio", "k": 1}, headers=headers).status_code


def test_forwarded_for_from_an_untrusted_peer_does_not_choose_the_bucket(proxied):
    url, _, _ = proxied
    with via("127.0.0.1") as direct:
        codes = [search(direct, url, f"198.51.100.{i}") for i in range(3)]
    assert codes == [200, 200, 429]  # one bucket (127.0.0.1), whatever the header says


def test_behind_the_trusted_proxy_the_rightmost_untrusted_address_is_the_client(proxied):
    url, _, log = proxied
    with via(PROXY) as proxy:
        # the client wrote the left part itself; the proxy appended what it saw (and may appear itself)
        codes = [search(proxy, url, "6.6.6.6, 203.0.113.7"), search(proxy, url, "1.1.1.1, 203.0.113.7"),
                 search(proxy, url, f"9.9.9.9, 203.0.113.7, {PROXY}")]
        other = search(proxy, url, "203.0.113.8")
    assert codes == [200, 200, 429] and other == 200
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    refused = [line for line in lines if line.get("refused") == "rate_limited"]
    assert refused and refused[-1]["client"] == "203.0.113.7"


def test_the_audit_log_records_the_forwarded_client(proxied):
    from sibyl.backoffice.accounts import Operators
    from sibyl.settings import Settings
    from tests.operator_support import login

    url, db, _ = proxied
    with via(PROXY) as proxy:
        proxy.base_url = url
        proxy.headers["X-Forwarded-For"] = "8.8.8.8, 198.51.100.77"
        assert login(proxy).status_code == 303
    with via("127.0.0.1") as direct:
        direct.base_url = url
        direct.headers["X-Forwarded-For"] = "198.51.100.99"  # forged: ignored
        assert login(direct).status_code == 303
    ops = Operators.from_settings(Settings(_env_file=None, database_url=f"sqlite:///{db}"))
    ips = [entry.ip for entry in ops.audit_log(username="mario", action="login")]
    ops.engine.dispose()
    assert "198.51.100.77" in ips and "127.0.0.1" in ips
    assert "198.51.100.99" not in ips and "8.8.8.8" not in ips


def test_trusted_proxies_refuse_a_wildcard():
    from pydantic import ValidationError

    from sibyl.settings import Settings

    with pytest.raises(ValidationError, match="any client"):
        Settings(_env_file=None, trusted_proxies="*")
    assert Settings(_env_file=None, trusted_proxies=" 10.0.0.5 , 172.28.0.1/16").trusted_proxy_list == [
        "10.0.0.5", "172.28.0.0/16"]


# --- 8. webhook mode with Telegram unreachable ------------------------------------------------------------
def test_webhook_mode_serves_while_telegram_is_unreachable_and_registers_later(built_index, settings,
                                                                               tmp_path_factory):
    from tests.telegram_peer import BotAPIPeer

    token, secret, hook = "5151515151:AAE-unreachable-test-token_abcdefg", "s3cret", "https://example.org/telegram/webhook"
    port = free_port()  # nothing listens here yet
    with sibyl_serve(tmp_path_factory.mktemp("webhook"), settings.index_dir, TELEGRAM_BOT_TOKEN=token,
                     TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{port}", TELEGRAM_WEBHOOK_URL=hook,
                     TELEGRAM_WEBHOOK_SECRET=secret) as (url, _, log):
        ready = httpx.get(url + "/readyz", timeout=30).json()
        assert ready["status"] == "ready" and ready["telegram"]["state"] == "retrying", ready
        assert ready["telegram"]["attempts"] >= 1 and ready["telegram"]["last_error"]
        chat = httpx.post(url + "/api/chat", json={"message": "Cosa fa il Comune per la mobilità?"}, timeout=60)
        assert chat.status_code == 200
        early = httpx.post(url + "/telegram/webhook", json={"update_id": 1},
                           headers={"X-Telegram-Bot-Api-Secret-Token": secret}, timeout=30)
        assert early.status_code == 503 and early.headers["retry-after"]

        peer = BotAPIPeer(token, port=port).start()  # Telegram comes back
        try:
            state = ready["telegram"]["state"]
            for _ in range(600):  # the retry backoff is capped at 60 s
                state = httpx.get(url + "/readyz", timeout=30).json()["telegram"]["state"]
                if state == "registered":
                    break
                time.sleep(0.2)
            assert state == "registered"
            hooks = peer.calls_since(0, "setWebhook")
            assert hooks and hooks[-1].params["url"] == hook and hooks[-1].params["secret_token"] == secret
        finally:
            peer.stop()


def test_the_replica_setup_trusts_exactly_its_proxy():
    """The compose override names the proxy's fixed address as the one trusted proxy (no `*`), and nginx
    appends the peer address and stops slow or large requests itself."""
    import yaml

    from sibyl.settings import Settings

    over = yaml.safe_load((REPO / "deploy" / "compose.replicas.yml").read_text(encoding="utf-8"))
    trusted = over["services"]["api"]["environment"]["SIBYL_TRUSTED_PROXIES"]
    assert trusted == over["services"]["proxy"]["networks"]["default"]["ipv4_address"]
    assert Settings(_env_file=None, trusted_proxies=trusted).trusted_proxy_list == [trusted]
    for path in (REPO / "docker-compose.yml", REPO / "deploy" / "compose.replicas.yml"):
        assert "FORWARDED_ALLOW_IPS" not in path.read_text(encoding="utf-8")
    nginx = (REPO / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    for directive in ("X-Forwarded-For $proxy_add_x_forwarded_for", "client_header_timeout", "client_body_timeout",
                      "limit_conn sibyl_conn", "client_max_body_size 64k"):
        assert directive in nginx
