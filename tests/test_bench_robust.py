"""`sibyl bench-robust`: its counters, checked against a real server process that fails on purpose
(500s, a hang, a crash it must restart from), its inputs, and one tiny end-to-end run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devtools.bench_api import free_port
from devtools.bench_robust import (
    Case,
    ProcessTarget,
    _format,
    bot_counts,
    expanding_characters,
    generate_cases,
    list_routes,
    run_fuzz,
)

REPO = Path(__file__).resolve().parents[1]

# A real HTTP server in its own process: /die ends the process the way an abort in C code would.
FAULTY_SERVER = textwrap.dedent("""
    import os, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == "/die":
                sys.stderr.write("malloc(): invalid size (simulated)\\n")
                sys.stderr.flush()
                os._exit(134)
            if self.path == "/slow":
                time.sleep(4)
            status = 500 if self.path == "/boom" else 200
            body = b"broken" if status == 500 else b"ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
""")


@pytest.fixture
def faulty(tmp_path):
    port = free_port()
    script = tmp_path / "faulty.py"
    script.write_text(FAULTY_SERVER)
    target = ProcessTarget([sys.executable, str(script), str(port)], {}, port, tmp_path / "faulty.log",
                           ready_path="/ok", ready_timeout=30)
    target.start()
    yield target
    target.stop()


def _get(path: str) -> Case:
    return Case(f"GET {path}", "GET", path, "test")


def test_counts_5xx_hangs_and_a_crash_it_restarts_from(faulty):
    first_pid = faulty.proc.pid
    cases = [_get("/ok"), _get("/boom"), _get("/ok"), _get("/slow"), _get("/boom"), _get("/die"), _get("/ok"),
             _get("/ok")]
    tally = asyncio.run(run_fuzz(faulty, cases, timeout=1.5, concurrency=1))

    assert tally.sent == len(cases)
    assert [f.case.path for f in tally.server_errors] == ["/boom", "/boom"]
    assert [f.case.path for f in tally.hangs] == ["/slow"]
    assert len(tally.crashes) == 1
    crash = tally.crashes[0]
    assert crash.returncode == 134
    assert [c.path for c in crash.suspects] == ["/die"]
    assert "malloc(): invalid size" in crash.log_tail
    # restarted: the requests after the crash reached a new process and were answered
    assert faulty.alive() and faulty.proc.pid != first_pid and faulty.generation == 2
    assert tally.statuses["GET /ok"]["2xx"] == 4
    assert tally.statuses["GET /die"]["crash"] == 1
    assert not tally.connection_errors


def test_a_server_killed_from_outside_is_a_crash_too(faulty):
    """The crash counter watches the process, not the request: SIGKILL mid-run is counted once."""
    faulty.proc.kill()
    faulty.proc.wait()
    tally = asyncio.run(run_fuzz(faulty, [_get("/ok")] * 6, timeout=5, concurrency=3))
    assert len(tally.crashes) == 1 and tally.crashes[0].returncode == -9
    assert faulty.alive()
    assert tally.sent == 6
    assert sum(tally.statuses["GET /ok"].values()) == 6


def test_bot_counts_read_the_update_counters():
    text = textwrap.dedent("""
        # TYPE sibyl_bot_updates_total counter
        sibyl_bot_updates_total{channel="telegram",kind="message",result="ok"} 7.0
        sibyl_bot_updates_total{channel="telegram",kind="callback",result="error"} 2.0
        sibyl_bot_updates_created{channel="telegram",kind="message",result="ok"} 1.7e9
    """)
    assert bot_counts(text) == (9, 2)


@pytest.fixture(scope="module")
def routes_and_schemas(tmp_path_factory):
    from api.app import create_app
    from sibyl.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("robust-routes"), corpus_dir=REPO / "corpus",
                        _env_file=None)
    openapi = create_app(settings).openapi()
    return list_routes(settings, openapi), openapi["components"]["schemas"]


def test_routes_cover_the_api_the_pages_and_the_console(routes_and_schemas):
    routes, _ = routes_and_schemas
    found = {f"{r.method} {r.path}" for r in routes}
    for expected in ("POST /api/chat", "POST /api/search", "POST /api/chat/stream", "POST /api/feedback",
                     "GET /healthz", "GET /readyz", "GET /metrics", "GET /", "GET /embed", "GET /operatore/login",
                     "POST /operatore/login", "POST /operatore/feedback/{feedback_id}/rivisto"):
        assert expected in found
    assert "POST /telegram/webhook" not in found  # fuzzed with Telegram updates instead


def test_generated_inputs_are_distinct_sendable_and_reach_every_channel(routes_and_schemas):
    routes, schemas = routes_and_schemas
    cases = generate_cases(200, routes, schemas, seed=7, bot_share=0.15, signed_in=True)
    assert len(cases) == 200
    keys = {(c.method, c.path, tuple(c.params), tuple(sorted(c.headers.items())), c.content, c.auth) for c in cases}
    assert len(keys) == 200
    endpoints = {c.endpoint for c in cases}
    assert {"POST /api/chat", "POST /api/search", "POST /telegram/webhook (bot)"} <= endpoints
    assert any(c.auth for c in cases) and any(c.bot for c in cases)
    for case in cases:  # what an HTTP/1.1 client can put on the wire: no control bytes or outer blanks
        for value in case.headers.values():
            assert value == value.strip(b" ") and all(b >= 0x20 and b != 0x7f for b in value)
    bodies = b"".join(c.content or b"" for c in cases).decode("utf-8", "replace")
    assert any(ch in bodies or f"\\u{ord(ch):04x}" in bodies for ch in expanding_characters())  # raw or JSON-escaped


def test_expanding_characters_include_the_crash_reproducer():
    assert "\ufdfa" in expanding_characters()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_command_runs_end_to_end_and_prints_its_summary(tmp_path):
    """Tiny numbers: the point is that every phase runs and is counted, not that the server is bug-free."""
    done = subprocess.run([sys.executable, "-m", "sibyl", "bench-robust", "--fuzz", "200", "--soak-seconds", "5",
                           "--clients", "2", "--seed", "11", "--json"], cwd=REPO, capture_output=True, text=True,
                          timeout=1700, check=False)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    fuzz, soak = report["fuzz"], report["soak"]
    assert fuzz["sent"] == 200
    assert sum(sum(c.values()) for c in fuzz["by_endpoint"].values()) == 200
    assert "POST /api/chat" in fuzz["by_endpoint"] and "POST /telegram/webhook (bot)" in fuzz["by_endpoint"]
    posted = fuzz["bot"]["updates_posted"]
    assert posted > 0 and posted == sum(fuzz["by_endpoint"]["POST /telegram/webhook (bot)"].values())
    assert fuzz["bot"]["accepted"] == fuzz["by_endpoint"]["POST /telegram/webhook (bot)"].get("2xx", 0)
    assert soak["requests"] > 0 and soak["rss_start_mb"] > 0 and soak["rss_growth_pct"] is not None
    assert report["passed"] == (done.returncode == 0) == (not any(report["failures"].values()))
    summary = _format(report)
    assert "endpoint" in summary and "Soak:" in summary and "RSS: start" in summary
    assert summary.splitlines()[-1].startswith("PASS" if report["passed"] else "FAIL")
