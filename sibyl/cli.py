"""`sibyl` command line: ingest, search, ask, eval, bench, config (and the channels in their issues)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

EXIT_USAGE = 2
EXIT_ERROR = 1


class CliError(Exception):
    """A failure to report as one line, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _settings(args):
    from sibyl.settings import Settings, env_var_for

    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "corpus", None):
        overrides["corpus_dir"] = Path(args.corpus)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = env_var_for(str(err["loc"][0])) if err.get("loc") else "settings"
        raise CliError(f"invalid setting {name}: {err['msg']}", EXIT_USAGE) from None


def _pipeline(settings):
    """The loaded pipeline (sibyl.services.build_pipeline); builds the index first when there is none (and a
    corpus to build it from)."""
    from sibyl.services import build_pipeline

    _ensure_index(settings)
    return build_pipeline(settings, build_if_missing=False)


def _ensure_index(settings) -> None:
    from retrieval.index import IndexStore

    store = IndexStore(settings)
    if store.current() is not None:
        return
    if not settings.corpus_dir.is_dir():
        raise CliError(f"corpus directory not found: {settings.corpus_dir}")
    print("sibyl: first start, building the index from the corpus...", file=sys.stderr, flush=True)
    store.ingest(settings.corpus_dir)


EXIT_LOCKED = 75  # EX_TEMPFAIL: another ingest holds the index; try again later


def cmd_ingest(args) -> int:
    from retrieval.index import IndexStore
    from retrieval.ingest_lock import IngestLocked
    from retrieval.progress import BarProgress, for_stream

    settings = _settings(args)
    if not settings.corpus_dir.is_dir():
        raise CliError(f"corpus directory not found: {settings.corpus_dir}")
    progress = for_stream(sys.stderr)  # a bar on a terminal, a line per 10% (or 30 s) in logs and pipes
    try:
        result = IndexStore(settings).ingest(settings.corpus_dir, force=args.force, progress=progress,
                                             on_wait=lambda msg: print(f"sibyl: {msg}", file=sys.stderr, flush=True))
    except IngestLocked as exc:
        raise CliError(str(exc), EXIT_LOCKED) from None
    finally:
        if isinstance(progress, BarProgress):
            progress.close()
    for name, reason in result.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    state = "built" if result.changed else "already up to date"
    print(f"index {state}: generation {result.generation}, {result.chunks} chunks from "
          f"{len(result.documents)} documents ({result.embedded} embedded, {result.reused} reused) "
          f"in {result.seconds:.1f}s")
    return 0


def _filters(args):
    from retrieval.retriever import Filters

    return Filters(document=getattr(args, "document", None), area=getattr(args, "area", None),
                   year=getattr(args, "year", None))


def cmd_search(args) -> int:
    settings = _settings(args)
    query = _question(args.query)
    pipeline = _pipeline(settings)
    result = pipeline.search(query, k=args.k, language=args.lang, filters=_filters(args))
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
    else:
        for i, hit in enumerate(result.hits, start=1):
            print(f"{i}. [{hit.score:.4f}] {hit.record['title']} › {hit.record['section']}")
            print("   " + hit.record["text"].replace("\n", "\n   ")[:600])
    return 0


def cmd_ask(args) -> int:
    settings = _settings(args)
    pipeline = _pipeline(settings)
    if args.question:
        _print_answer(pipeline.ask(_question(args.question), language=args.lang, filters=_filters(args)), args.json)
        return 0
    print("Sibyl – Comune di Lecce. Scrivi una domanda (Ctrl-D per uscire) / Ask a question (Ctrl-D to quit).")
    from retrieval.pipeline import BadQuestion

    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line.strip():
            continue
        try:
            _print_answer(pipeline.ask(line, language=args.lang), args.json)
        except BadQuestion as exc:
            print(str(exc))


def _question(parts) -> str:
    text = " ".join(parts) if isinstance(parts, list) else parts
    if text == "-":
        text = sys.stdin.read()
    return text


def _print_answer(answer, as_json: bool) -> None:
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=1))
    else:
        print(answer.answer)


def cmd_eval(args) -> int:
    from retrieval.evaluate import evaluate, format_report, load_questions

    settings = _settings(args)
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"question file not found: {path}")
    try:
        rows = load_questions(path)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if not rows:
        raise CliError(f"no questions in {path}")
    from retrieval.citizen_eval import is_citizen_format

    if is_citizen_format(rows):
        return _eval_citizen(settings, rows, args.json)
    report = evaluate(_pipeline(settings), rows, k=args.k)
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else format_report(report))
    return 0


def _eval_citizen(settings, rows: list[dict], as_json: bool) -> int:
    """Citizen-format items through the ConversationService (follow-ups in one session), scored like
    ../shared/eval/score_citizen.py; the sessions go to a throwaway database, not the real one."""
    import tempfile

    from retrieval.citizen_eval import format_summary, run, summary
    from sibyl.conversation import ConversationService
    from sibyl.observability import configure_logging
    from sibyl.store import Store

    configure_logging(settings)  # log lines to stderr (stdout is the report); one line per reply is noise here
    for name in ("sibyl.access", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    pipeline = _pipeline(settings)
    with tempfile.TemporaryDirectory(prefix="sibyl-eval-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'eval.db'}")
        service = ConversationService(pipeline, store, settings.context_turns)
        try:
            results = run(rows, lambda message, session_id: service.reply(message, session_id).to_dict(),
                          on_item=lambda r: print(f"{r.id:<6} {'PASS' if r.passed else 'fail'}  answered={r.answered}"
                                                  + (f"  {'; '.join(r.reasons)}" if r.reasons else ""),
                                                  file=sys.stderr, flush=True))
        finally:
            store.engine.dispose()
    report = summary(results)
    print(json.dumps(report, ensure_ascii=False, indent=1) if as_json else format_summary(report))
    return 0


CHECKOUT = Path(__file__).resolve().parents[1]  # the repository root when run from a source checkout


def _devtool(name: str):
    """A module of devtools/ (benchmarks, local model): not in the wheel, so it is loaded from the source
    checkout this CLI runs from, with a clear message when there is none."""
    import importlib

    if not (CHECKOUT / "devtools" / "__init__.py").is_file():
        raise CliError("dev tools need a source checkout: devtools/ is not installed with the package "
                       "(clone the repository and `pip install -e .`)")
    if str(CHECKOUT) not in sys.path:
        sys.path.append(str(CHECKOUT))
    return importlib.import_module(f"devtools.{name}")


def cmd_bench(args) -> int:
    bench = _devtool("bench")
    settings = _settings(args)
    if args.worst_case:
        print(bench.run_worst_case(settings, Path(args.file) if args.file else None, args.rounds, args.json))
        return 0
    print(bench.run_bench(settings, Path(args.file) if args.file else None, args.json,
                          repeat_share=args.repeat_share))
    return 0


def cmd_bench_llm(args) -> int:
    bench_llm = _devtool("bench_llm")

    try:
        if args.checks:
            print(bench_llm.run_bench_checks(_settings(args), Path(args.file) if args.file else None))
            return 0
        print(bench_llm.run_bench_llm(_settings(args), Path(args.file) if args.file else None, local=args.local,
                                      as_json=args.json, limit=args.limit))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_bench_voice(args) -> int:
    """Dev tool: ASR and TTS real-time factors and end-to-end voice-answer latency (issue 16)."""
    try:
        print(_devtool("bench_voice").run_bench_voice(_settings(args), rounds=args.rounds, as_json=args.json))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_config(args) -> int:
    from sibyl.settings import env_example, masked

    if args.env_example:
        print(env_example(), end="")
        return 0
    settings = _settings(args)
    for key, value in masked(settings).items():
        print(f"{key} = {value}")
    return 0


def cmd_telegram(args) -> int:
    """The Telegram bot by long polling: check the token first (fast, clear failure), then load the index."""
    import asyncio

    from telegram.error import InvalidToken, NetworkError

    from bot.app import MissingToken, build_application, check_token, run_polling

    settings = _settings(args)
    if settings.telegram_webhook_url:
        raise CliError("TELEGRAM_WEBHOOK_URL is set: the API serves the bot by webhook (`sibyl serve`); "
                       "unset it to use long polling", EXIT_USAGE)
    try:
        username = asyncio.run(check_token(settings))
    except MissingToken as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except InvalidToken:
        raise CliError("TELEGRAM_BOT_TOKEN was rejected by the Bot API (getMe): check the token from @BotFather"
                       ) from None
    except NetworkError as exc:
        where = settings.telegram_api_base_url or "https://api.telegram.org"
        raise CliError(f"cannot reach the Bot API at {where}: {type(exc).__name__}") from None
    from sibyl.observability import configure_logging

    configure_logging(settings)  # JSON lines like the API; the token is redacted there and in bot.logs
    logging.getLogger("sibyl.telegram").info("starting @%s by long polling", username)
    from sibyl.services import build_services

    _ensure_index(settings)
    services = build_services(settings, backoffice=False)  # the composition root, once: no console here
    run_polling(build_application(settings, services.conversation, services.cpu_limiter))
    return 0


def cmd_serve(args) -> int:
    """Build the index if this data directory has none, then serve the API and the web chat."""
    import os
    import shutil
    import tempfile

    import uvicorn

    settings = _settings(args)
    _ensure_index(settings)
    workers = args.workers or settings.serve_workers
    print(f"sibyl: web chat on http://{args.host}:{args.port}/  (API docs: http://{args.host}:{args.port}/docs)",
          file=sys.stderr, flush=True)
    log_level = "info" if args.verbose else "warning"
    server = _server_options(settings)
    if workers == 1:
        from sibyl.server import create_app

        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=log_level, **server)
    else:  # each worker process rebuilds the settings from the environment
        from sibyl.db import make_engine, upgrade

        engine = make_engine(settings.effective_database_url)
        upgrade(engine)  # migrate once here, not racing in N workers (they find the schema at head)
        engine.dispose()
        os.environ["SIBYL_DATA_DIR"] = str(settings.data_dir)
        os.environ["SIBYL_CORPUS_DIR"] = str(settings.corpus_dir)
        if not settings.embedding_threads:  # the workers share the cores: one embedding thread each
            os.environ["SIBYL_EMBEDDING_THREADS"] = "1"
        # /metrics sums every worker's metrics (prometheus_client's multiprocess mode): a fresh folder per run
        metrics = None if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else tempfile.mkdtemp(prefix="sibyl-metrics-")
        if metrics is not None:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics
        board = Path(tempfile.gettempdir()) / f"sibyl-workers-{os.getpid()}.bin"
        board.unlink(missing_ok=True)  # a killed server's board (same pid in a restarted container): start empty
        os.environ["SIBYL_WORKER_BOARD"] = str(board)
        # libuv accepts one connection per wake-up: connections arriving together spread over the workers
        os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
        try:
            uvicorn.run("sibyl.server:create_app", factory=True, host=args.host, port=args.port, workers=workers,
                        log_level=log_level, **server)
        finally:
            for leftover in (board, board.with_name(board.name + ".lock")):
                leftover.unlink(missing_ok=True)
            if metrics is not None:
                os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
                shutil.rmtree(metrics, ignore_errors=True)
    return 0


def _server_options(settings) -> dict:
    """uvicorn options that bound what one client can hold: no blind trust in forwarded headers (the app
    applies SIBYL_TRUSTED_PROXIES), header and keep-alive deadlines, header size, connection limit."""
    from api.middleware import GuardedHttpToolsProtocol

    options: dict = {"proxy_headers": False, "access_log": False,  # the app logs each request (observability)
                     "timeout_keep_alive": settings.keep_alive_seconds,
                     "limit_concurrency": settings.max_connections or None,
                     "h11_max_incomplete_event_size": 64 * 1024}
    if GuardedHttpToolsProtocol is not None:
        GuardedHttpToolsProtocol.configure(settings.header_timeout_seconds)
        options["http"] = GuardedHttpToolsProtocol
    return options


def _share(text: str) -> float:
    """A fraction in [0, 1) for --repeat-share (1 would repeat forever the first question)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("must be at least 0 and less than 1")
    return value


def cmd_bench_api(args) -> int:
    settings = _settings(args)
    run_bench_api = _devtool("bench_api").run_bench_api
    print(run_bench_api(settings, questions=Path(args.file) if args.file else None, clients=args.clients,
                        seconds=args.seconds, workers=args.workers, url=args.url, as_json=args.json,
                        repeat_share=args.repeat_share, single_seconds=args.single_seconds))
    return 0


def cmd_bench_robust(args) -> int:
    """Dev tool: fuzz every endpoint and the bot, then soak; exit 1 on any crash, 5xx or hang."""
    try:
        run_bench_robust = _devtool("bench_robust").run_bench_robust
    except ImportError as exc:
        raise CliError(f"bench-robust needs the test extras (pip install -e '.[test]'): {exc}") from None
    report, passed = run_bench_robust(_settings(args), fuzz=args.fuzz, soak_seconds=args.soak_seconds,
                                      clients=args.clients, timeout=args.timeout, concurrency=args.concurrency,
                                      seed=args.seed, bot=not args.no_bot, max_rss_growth=args.max_rss_growth,
                                      as_json=args.json)
    print(report)
    return 0 if passed else EXIT_ERROR


def cmd_translate(args) -> int:
    """Draft missing or stale English lines with SIBYL_LLM; stored as pending for the console's review."""
    from sibyl.backoffice.translate import TranslateError, run_translate

    if args.limit is not None and args.limit < 1:
        raise CliError("--limit must be at least 1", EXIT_USAGE)
    try:
        run_translate(_settings(args), document=args.document, limit=args.limit)
    except TranslateError as exc:
        raise CliError(str(exc), exc.code) from None
    return 0


def cmd_db(args) -> int:
    """Schema migrations (Alembic): `upgrade` brings the database to head (also done on every start);
    `current` shows where it is without changing it."""
    from sibyl.db import current, head, make_engine, upgrade

    settings = _settings(args)
    engine = make_engine(settings.effective_database_url)
    where = engine.url.render_as_string(hide_password=True)
    try:
        if args.action == "upgrade":
            print(f"database {where}: revision {upgrade(engine)} (head)")
            return 0
        revision, newest = current(engine), head()
        state = "head" if revision == newest else f"behind head {newest}: run `sibyl db upgrade`"
        print(f"database {where}: revision {revision or 'none'} ({state})")
        return 0
    finally:
        engine.dispose()


def cmd_operator(args) -> int:
    """URP console accounts: the password is prompted (never an argument, so it stays out of shell history)."""
    from sibyl.backoffice.accounts import OperatorError, Operators

    operators = Operators.from_settings(_settings(args))
    if args.action == "list":
        for name in operators.usernames():  # one name a line, as scripts read it (`add` prints the role)
            print(name)
        return 0
    if not args.name:
        raise CliError(f"operator {args.action} needs a username", EXIT_USAGE)
    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise CliError("the passwords do not match", EXIT_USAGE)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        operators.add(args.name, password, replace=args.action == "passwd", role=args.role)
    except OperatorError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    print(f"operator {args.name} {'updated' if args.action == 'passwd' else 'added'} ({operators.role(args.name)})")
    return 0


def cmd_cases(args) -> int:
    """Open URP cases with their conversation (issue 15), for scripts and monitoring."""
    from sibyl.backoffice.cases import Cases
    from sibyl.db import make_engine, upgrade

    engine = make_engine(_settings(args).effective_database_url)
    try:
        upgrade(engine)
        cases = Cases(engine)
        views = [view for case in cases.find(open_only=True) if (view := cases.get(case.id)) is not None]
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps([v.to_dict() for v in views], ensure_ascii=False, indent=2))
        return 0
    if not views:
        print("no open cases")
    for view in views:
        c = view.case
        print(f"{c.number}  [{c.status}]  {c.channel}  {c.created_at:%Y-%m-%d %H:%M} UTC  "
              f"assignee: {c.assignee or '-'}  contact: {c.email or c.telegram_chat or '-'}")
        for m in view.thread:
            who = "citizen" if m.role == "user" else "sibyl"
            after = f" (follow-up of: {m.previous_question})" if m.previous_question else ""
            print(f"  {who}: {' '.join(m.text.split())[:300]}{after}")
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sibyl", description="Sibyl, the City of Lecce's citizen assistant.")
    parser.add_argument("--data-dir", help="data directory (default: SIBYL_DATA_DIR or ./data)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="parse the corpus and (re)build the index")
    p.add_argument("--corpus", help="corpus directory (default: SIBYL_CORPUS_DIR or ./corpus)")
    p.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    p.set_defaults(func=cmd_ingest)

    def add_common(p):
        p.add_argument("--json", action="store_true", help="print JSON")
        p.add_argument("--lang", choices=["it", "en"], help="answer language (default: detected)")
        p.add_argument("--document", help="only this document id")
        p.add_argument("--area", type=int, help="only this DUP/report area number")
        p.add_argument("--year", type=int, help="only passages covering this year")

    p = sub.add_parser("search", help="show the passages retrieved for a query")
    p.add_argument("query", nargs="+", help="query text ('-' reads stdin)")
    p.add_argument("-k", type=int, default=5, choices=range(1, 51), metavar="N", help="results (1-50)")
    add_common(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question (interactive without one)")
    p.add_argument("question", nargs="*", help="question text ('-' reads stdin)")
    add_common(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("eval", help="measure retrieval and answers on a JSONL question set")
    p.add_argument("file")
    p.add_argument("-k", type=int, default=5, choices=range(1, 51), metavar="N")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="benchmark: cold ingest, warm ask latency, peak memory")
    p.add_argument("file", nargs="?", help="questions JSONL (default: ../shared/eval/questions.jsonl)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--worst-case", action="store_true",
                   help="instead: CPU per ask of the costliest long inputs as a ratio to normal questions")
    p.add_argument("--rounds", type=int, default=3, choices=range(1, 101), metavar="N")
    p.add_argument("--repeat-share", type=_share, default=0.0, metavar="F",
                   help="share of repeated questions (cache hits, reported apart); default 0: all unique")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-llm", help="benchmark LLM mode: latency, answers passing the checks, fallbacks, examples")
    p.add_argument("file", nargs="?", help="questions JSONL (default: ../shared/eval/questions.jsonl)")
    p.add_argument("--local", action="store_true", help="start the bundled Gemma 3 270M server on loopback")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions")
    p.add_argument("--json", action="store_true")
    p.add_argument("--checks", action="store_true", help="no model: time the sentence support check over a labelled "
                   "set (default tests/data/support_cases.jsonl), ms per answer, inventions shown, paraphrases kept")
    p.set_defaults(func=cmd_bench_llm)

    p = sub.add_parser("bench-voice", help="benchmark voice: ASR and TTS real-time factors, end-to-end voice answer "
                                           "latency for ~10 s of English speech (needs the voice extra)")
    p.add_argument("--rounds", type=int, default=3, choices=range(1, 51), metavar="N")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_voice)

    p = sub.add_parser("serve", help="serve the HTTP API and the web chat (builds the index on first start)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default SIBYL_API_WORKERS, else one per core)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench-api", help="benchmark /api/chat: concurrent clients over loopback, req/s and p50/p95")
    p.add_argument("file", nargs="?", help="questions JSONL (default: ../shared/eval/questions.jsonl)")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--workers", type=int, default=None,
                   help="server worker processes (default SIBYL_API_WORKERS, else one per core)")
    p.add_argument("--url", help="benchmark a running server instead of starting one")
    p.add_argument("--repeat-share", type=_share, default=0.0, metavar="F",
                   help="share of repeated questions (cache hits, reported apart); default 0: all unique")
    p.add_argument("--single-seconds", type=float, default=5.0,
                   help="seconds of one client first, for the single-question latency (0 = skip)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_api)

    p = sub.add_parser("bench-robust", help="dev: fuzz every endpoint and the bot, then soak; counts 5xx, crashes, "
                                            "hangs, RSS growth")
    p.add_argument("--fuzz", type=int, default=10_000, help="fuzzed inputs (default 10000)")
    p.add_argument("--soak-seconds", type=float, default=600.0, help="soak duration after the fuzz (default 600)")
    p.add_argument("--clients", type=int, default=8, help="concurrent soak clients (default 8)")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent fuzz requests (default 4)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as a hang")
    p.add_argument("--seed", type=int, default=None, help="hypothesis seed (default random; printed)")
    p.add_argument("--max-rss-growth", type=float, default=10.0, help="soak RSS growth %% that fails (default 10)")
    p.add_argument("--no-bot", action="store_true", help="skip the Telegram webhook")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_robust)

    p = sub.add_parser("telegram", help="run the Telegram bot (long polling; needs TELEGRAM_BOT_TOKEN)")
    p.set_defaults(func=cmd_telegram)

    p = sub.add_parser("config", help="print the effective settings (secrets masked)")
    p.add_argument("--env-example", action="store_true", help="print every variable with its default (.env.example)")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("translate", help="draft missing or stale English translations with SIBYL_LLM (stored as "
                                         "pending, reviewed in the console)")
    p.add_argument("--document", help="only this document id")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="draft at most N lines")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("db", help="database schema migrations (Alembic): upgrade to head, or show the current revision")
    p.add_argument("action", choices=["upgrade", "current"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("operator", help="URP operator console accounts (password prompted or read from stdin)")
    p.add_argument("action", choices=["add", "passwd", "list"], help="add an account, change a password, list")
    p.add_argument("name", nargs="?", help="username")
    p.add_argument("--role", choices=["operator", "admin"],
                   help="operator (cases, drafts, FAQs) or admin (also documents, re-index, accounts, offices); "
                        "default: admin for the first account, operator after; passwd keeps the role")
    p.set_defaults(func=cmd_operator)

    p = sub.add_parser("cases", help="URP cases: list the open ones with their conversation")
    p.add_argument("action", choices=["list"])
    p.add_argument("--json", action="store_true", help="JSON array of cases (for scripts)")
    p.set_defaults(func=cmd_cases)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from retrieval.progress import quiet_libraries

    quiet_libraries()  # -v is for Sibyl's own progress, not bm25s/chromadb/httpx debug lines
    from retrieval.index import IndexMissing
    from retrieval.pipeline import BadQuestion

    if isinstance(getattr(args, "question", None), list) and args.question == []:
        args.question = None
    try:
        return args.func(args)
    except CliError as exc:
        print(f"sibyl: {exc}", file=sys.stderr)
        return exc.code
    except BadQuestion as exc:
        print(f"sibyl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (IndexMissing, FileNotFoundError, ValueError) as exc:
        print(f"sibyl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
