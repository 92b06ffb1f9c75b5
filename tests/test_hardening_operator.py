"""Issue 10, operator side: login floods and lockout abuse, uploads that stall the event loop (zip-bomb
DOCX), integer path ids that overflowed the database, unaudited oversize uploads, audit/login rows kept
forever. Against a real uvicorn on loopback (clients on distinct 127.0.0.x addresses) or `sibyl serve`."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.operator_support import PASSWORD, add_operator, isolated_settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
UPLOAD_MAX = 60_000


# --- helpers ------------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_from(url: str, address: str) -> httpx.Client:
    """A browser at `address` (Linux routes all of 127.0.0.0/8 to loopback): one client address each."""
    return httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=address), timeout=120,
                        follow_redirects=False)


def login_token(c: httpx.Client) -> str:
    page = c.get("/operatore/login")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def login(c: httpx.Client, name: str = "mario", password: str = PASSWORD) -> httpx.Response:
    return c.post("/operatore/login", data={"username": name, "password": password, "csrf_token": login_token(c)})


def csrf_of(c: httpx.Client) -> str:
    page = c.get("/operatore/cerca")
    assert page.status_code == 200, page.text[:300]
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def signed_in(url: str, address: str, name: str = "mario") -> httpx.Client:
    c = client_from(url, address)
    assert login(c, name).status_code == 303
    return c


def upload(c: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return c.post("/operatore/documenti", data={"csrf_token": csrf_of(c)},
                  files={"file": (name, data, "application/octet-stream")})


def docx_with_body(body: bytes) -> bytes:
    """A real DOCX (python-docx's own template) whose document body is `body`: compressed at level 9, a
    body of repeated markup is a zip bomb (a few KB that unpack to megabytes)."""
    import docx

    template = io.BytesIO()
    docx.Document().save(template)
    src = zipfile.ZipFile(io.BytesIO(template.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "word/document.xml":
                head, tail = data.split(b"<w:body>")
                data = head + b"<w:body>" + body + tail
            z.writestr(info.filename, data)
    return out.getvalue()


def unpacked(data: bytes) -> int:
    return sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())


# --- one real uvicorn server in this process (the tests can count hashes and read the audit) -----------
@pytest.fixture(scope="module")
def env(settings, built_index, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hardening-operator")
    # the real login throttle and lockout defaults; only the upload limit is small, to test it cheaply
    op_settings = isolated_settings(settings, tmp, upload_max_bytes=UPLOAD_MAX,
                                    operator_login_rate_limit="10/minute;60/hour", operator_max_failed_logins=5,
                                    operator_login_concurrency=2)
    add_operator(op_settings)
    add_operator(op_settings, "lucia")  # the console user of the upload/id tests; "mario" is the one attacked
    return op_settings


@pytest.fixture(scope="module")
def server(env):
    import uvicorn

    from api.app import create_app

    app = create_app(env)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    with client_from(url, "127.0.0.200") as c:
        assert c.get("/operatore/cerca").status_code == 401  # builds the console (operators, documents)
    yield app, url
    srv.should_exit = True
    thread.join(30)


class CountingHasher:
    """The server's real argon2 hasher, counting how many verifications ran and how many at once."""

    def __init__(self, hasher) -> None:
        self.hasher = hasher
        self.lock = threading.Lock()
        self.calls = self.active = self.max_active = 0

    def __getattr__(self, name):
        return getattr(self.hasher, name)

    def verify(self, *args, **kwargs):
        with self.lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            return self.hasher.verify(*args, **kwargs)
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture()
def hashes(server, monkeypatch):
    app, _ = server
    operators = app.state.operator_console.operators
    counter = CountingHasher(operators.hasher)
    monkeypatch.setattr(operators, "hasher", counter)
    return counter


def audit(app, action=None, username=None):
    return app.state.operator_console.operators.audit_log(1000, username=username, action=action)


# --- 6. operator login -----------------------------------------------------------------------------------
def test_concurrent_anonymous_logins_are_throttled_before_hashing(server, hashes):
    from sibyl.backoffice.accounts import LoginState

    app, url = server
    address = "127.0.0.1"
    clients = [client_from(url, address) for _ in range(24)]
    tokens = [login_token(c) for c in clients]  # the form page is not throttled

    def attempt(i: int) -> httpx.Response:
        return clients[i].post("/operatore/login", data={"username": f"sconosciuto{i}", "password": "indovina-123",
                                                         "csrf_token": tokens[i]})

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        responses = list(pool.map(attempt, range(24)))
    for c in clients:
        c.close()
    codes = [r.status_code for r in responses]
    throttled = [r for r in responses if r.status_code == 429]
    assert codes.count(401) == 10 and len(throttled) == 14, codes  # 10/minute per address
    for r in throttled:
        assert int(r.headers["retry-after"]) >= 1
        assert "Troppi tentativi di accesso da questo indirizzo" in r.text
    assert hashes.calls == 10  # refused before hashing: one argon2 per admitted attempt, unknown names too
    assert hashes.max_active <= 2
    with app.state.operator_console.operators.Session() as db:  # unknown names: rows bounded by the throttle
        assert db.query(LoginState).filter(LoginState.ip == address).count() == 10


def test_login_hashes_are_bounded_across_addresses(server, hashes):
    """24 logins from 24 addresses pass every throttle: at most 2 argon2 hashes (64 MiB each) at once."""
    _, url = server
    clients = [client_from(url, f"127.0.1.{i}") for i in range(1, 25)]
    tokens = [login_token(c) for c in clients]

    def attempt(i: int) -> int:
        return clients[i].post("/operatore/login", data={"username": "mario", "password": f"sbagliata-{i}",
                                                         "csrf_token": tokens[i]}).status_code

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(attempt, range(24)))
    for c in clients:
        c.close()
    assert codes == [401] * 24
    assert hashes.calls == 24 and hashes.max_active <= 2


def test_anonymous_wrong_passwords_do_not_lock_out_the_operator(server):
    app, url = server
    with client_from(url, "127.0.0.3") as attacker:
        codes = [login(attacker, "mario", f"tentativo-{i}").status_code for i in range(5)]
        assert codes == [401, 401, 401, 401, 429]  # the attacker's address is locked out of "mario"
        r = login(attacker, "mario", PASSWORD)
        assert r.status_code == 429 and "bloccato" in r.text  # even with the right password, from there
    with client_from(url, "127.0.0.4") as operator:  # the real operator, elsewhere, signs in at once
        assert login(operator, "mario", PASSWORD).status_code == 303
        assert operator.get("/operatore/cerca").status_code == 200
    assert {e.ip for e in audit(app, "login_locked", "mario")} == {"127.0.0.3"}


# --- 8. integer path ids --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def operator(server):
    _, url = server
    c = signed_in(url, "127.0.0.5", "lucia")
    yield c
    c.close()


@pytest.mark.parametrize("value", ["99999999999999999999999", "2147483648", "9223372036854775808", "0", "-1"])
def test_out_of_range_ids_are_404(operator, value):
    token = csrf_of(operator)
    r = operator.post(f"/operatore/feedback/{value}/rivisto", headers={"x-csrf-token": token})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = operator.get(f"/operatore/documenti/lavori/{value}")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.integers(min_value=-(10**40), max_value=10**40))
def test_any_integer_id_is_a_404_never_a_500(operator, value):
    token = csrf_of(operator)
    assert operator.post(f"/operatore/feedback/{value}/rivisto", headers={"x-csrf-token": token}).status_code == 404
    assert operator.get(f"/operatore/documenti/lavori/{value}").status_code == 404


# --- 7. zip bombs -------------------------------------------------------------------------------------------
def corpus_state(env) -> list[str]:
    return sorted(p.name for p in env.corpus_dir.iterdir())


def test_zip_bomb_docx_is_refused_with_a_clear_413(server, env, operator):
    app, _ = server
    before = corpus_state(env)
    wide = docx_with_body(b"<w:p><w:r><w:t>" + b" " * 26_000_000 + b"</w:t></w:r></w:p>")  # over 25 MB unpacked
    many = docx_with_body(b"<w:p/>" * 60_000)  # under the byte limit, over the paragraph limit
    assert len(wide) < UPLOAD_MAX and unpacked(wide) > 25_000_000  # the default SIBYL_UPLOAD_MAX_UNPACKED_BYTES
    assert len(many) < UPLOAD_MAX and unpacked(many) < 25_000_000
    for name, data, reason in (("bomba.docx", wide, "unpacks to"), ("paragrafi.docx", many, "paragraphs")):
        r = upload(operator, name, data)
        assert r.status_code == 413, r.text[-400:]
        error = re.search(r'id="doc-error"[^>]*>(.*?)<', r.text, re.DOTALL).group(1)
        assert "troppo grande una volta espanso" in error and reason in error
        assert audit(app, "upload_rejected", "lucia")[0].detail["file"] == name
    assert corpus_state(env) == before
    assert app.state.operator_console.documents.running() is None


def archives():
    """Zip archives with members of random sizes (stored, so the sizes are real), plus random bytes."""
    member = st.tuples(st.sampled_from(["word/document.xml", "word/styles.xml", "media/a.png", "x"]),
                       st.integers(0, 6000))

    def build(members):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            for i, (name, size) in enumerate(members):
                z.writestr(f"{i}/{name}" if i else name, b"<w:p/>" * (size // 6))
        return out.getvalue()

    return st.lists(member, max_size=8).map(build)


@hsettings(max_examples=200, deadline=None)
@given(data=st.one_of(archives(), st.binary(max_size=2000).map(lambda b: b"PK\x03\x04" + b)),
       limit=st.integers(1024, 40_000))
def test_check_archive_refuses_exactly_what_is_too_big(data, limit):
    from sibyl.backoffice.documents import MAX_DOCX_PARAGRAPHS, UploadRejected, check_archive

    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except zipfile.BadZipFile:
        members = None
    try:
        check_archive(data, limit)
        refused = None
    except UploadRejected as exc:
        refused = exc
    if members is None:
        assert refused is not None and refused.code == 422
    else:
        total = sum(m.file_size for m in members)
        body = next((m.file_size for m in members if m.filename == "word/document.xml"), 0)
        too_big = total > limit or body // 6 > MAX_DOCX_PARAGRAPHS
        assert (refused is not None and refused.code == 413) == too_big


def test_check_archive_counts_paragraphs_of_any_prefix():
    from sibyl.backoffice.documents import MAX_DOCX_PARAGRAPHS, UploadRejected, check_archive

    for markup in (b"<w:p/>", b"<x:p/>", b"<p/>", b'<w:p w:rsidR="00A1">x</w:p>'):
        bomb = docx_with_body(markup * (MAX_DOCX_PARAGRAPHS + 1))
        with pytest.raises(UploadRejected) as exc:
            check_archive(bomb, 50_000_000)
        assert exc.value.code == 413 and "paragraphs" in str(exc.value)
    check_archive(docx_with_body(b"<w:p/>" * 1000 + b"<w:pPr/>" * 100_000), 50_000_000)  # other tags: fine


# --- 8. oversize uploads are audited ------------------------------------------------------------------------
def test_oversize_upload_refused_by_the_middleware_is_audited(server, env, operator):
    app, url = server
    secret = b"contenuto riservato " * 20_000  # 400 KB, over the 60 KB limit
    r = upload(operator, "riservato.txt", secret)
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    size = int(r.request.headers["content-length"])
    entries = audit(app, "upload_rejected", "lucia")
    assert entries, "the refused upload is not in the audit log"
    entry = entries[0]
    assert entry.ip == "127.0.0.5"
    assert entry.detail["reason"] == "too_large" and entry.detail["bytes"] == size
    assert "riservato" not in json.dumps(entry.detail)  # no content, no file name (the body is never read)
    with client_from(url, "127.0.0.7") as anonymous:  # refused before any session check: audited too
        r = anonymous.post("/operatore/documenti", files={"file": ("x.txt", secret)})
        assert r.status_code == 413
    anon = [e for e in audit(app, "upload_rejected") if e.ip == "127.0.0.7"]
    assert len(anon) == 1 and anon[0].username == "-" and anon[0].detail["bytes"] > UPLOAD_MAX
    # a chunked body (no Content-Length) could only be measured by reading it: refused up front
    r = operator.post("/operatore/documenti", content=iter([b"x" * 1000] * 3),
                      headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 411 and r.json()["code"] == "length_required"


# --- 8. retention of audit and login-state rows ----------------------------------------------------------------
def test_old_audit_and_login_rows_are_purged_at_start(settings, built_index, tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from sibyl.backoffice.accounts import LoginState, Operators
    from sibyl.backoffice.audit import AuditEntry
    from sibyl.store import utcnow

    env = isolated_settings(settings, tmp_path, audit_retention_days=30, operator_lockout_minutes=15)
    ops = Operators.from_settings(env)
    now = utcnow()
    with ops.Session() as db:
        for days in (400, 31, 29, 1):
            db.add(AuditEntry(username="mario", action="view", at=now - timedelta(days=days), ip="10.0.0.1"))
        for i, minutes in enumerate((60 * 24 * 90, 16, 14, 0)):
            db.add(LoginState(username=f"sconosciuto{i}", ip="10.0.0.9", failures=1,
                              updated_at=now - timedelta(minutes=minutes)))
        db.commit()
    ops.engine.dispose()
    with TestClient(create_app(env)) as c:  # the lifespan purges before serving, then hourly
        assert c.get("/healthz").status_code == 200
        operators = Operators.from_settings(env)
        with operators.Session() as db:
            ages = sorted((now - e.at).days for e in db.query(AuditEntry).all())
            names = sorted(s.username for s in db.query(LoginState).all())
        operators.engine.dispose()
    assert ages == [1, 29]
    assert names == ["sconosciuto2", "sconosciuto3"]  # stale rows (their count had run out) are gone


# --- 7. the event loop stays free while an upload is parsed (real `sibyl serve`) -------------------------------
@pytest.fixture()
def serve(settings, built_index, tmp_path):
    """`sibyl serve` over a private index copy, with its own TMPDIR so the test sees when a parse starts."""
    env_settings = isolated_settings(settings, tmp_path)
    add_operator(env_settings)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port = free_port()
    env = dict(os.environ, SIBYL_CORPUS_DIR=str(env_settings.corpus_dir), HF_HUB_OFFLINE="1", SIBYL_RATE_LIMIT="",
               SIBYL_OPERATOR_LOGIN_RATE_LIMIT="", TMPDIR=str(scratch))
    env.pop("SIBYL_DATABASE_URL", None)
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sibyl", "--data-dir", str(env_settings.data_dir), "serve",
                                 "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log_path.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "not ready in time:\n" + log_path.read_text()
            time.sleep(0.3)
        yield url, scratch, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_chat_is_answered_while_a_zip_bomb_docx_is_parsed(serve):
    url, scratch, log_path = serve
    # 45,000 empty paragraphs: 20 KB that unpack to 300 KB, within every limit, and take seconds to parse
    bomb = docx_with_body(b"<w:p/>" * 45_000)
    operator = signed_in(url, "127.0.0.1")
    token = csrf_of(operator)
    finished: list[str] = []
    results: dict[str, httpx.Response] = {}
    lock = threading.Lock()

    def run(name: str, call) -> None:
        response = call()
        with lock:
            finished.append(name)
            results[name] = response

    uploading = threading.Thread(target=run, args=("upload", lambda: operator.post(
        "/operatore/documenti", data={"csrf_token": token}, files={"file": ("bomba.docx", bomb)})))
    uploading.start()
    deadline = time.monotonic() + 120
    while not list(scratch.glob("sibyl-upload-*/*.docx")):  # the server has the file and is parsing it
        assert uploading.is_alive() and time.monotonic() < deadline, (finished, log_path.read_text()[-2000:])
        time.sleep(0.005)
    with httpx.Client(base_url=url, timeout=120) as citizen:
        run("healthz", lambda: citizen.get("/healthz"))
        run("chat", lambda: citizen.post("/api/chat", json={"message": "Quali sono gli obiettivi sulla mobilità?"}))
    uploading.join(300)
    operator.close()
    assert finished == ["healthz", "chat", "upload"], finished  # the citizen did not wait for the parse
    assert results["healthz"].status_code == 200 and results["chat"].status_code == 200
    assert results["upload"].status_code == 422  # no text in it: a clear refusal once parsed
    assert "non è leggibile" in results["upload"].text
