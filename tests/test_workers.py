"""Issue 18: the workers of one `sibyl serve` spread keep-alive clients (sibyl.workers, api.middleware)."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from api.middleware import SpreadConnections
from sibyl.workers import SLOTS, WorkerBoard


def _dead_pid() -> int:
    pid = 2**22 - 1
    while pid > 1:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1
    raise RuntimeError("no free pid")


def test_a_worker_is_crowded_only_with_clearly_more_requests_than_the_others(tmp_path):
    path = tmp_path / "board.bin"
    here, other = WorkerBoard(path), WorkerBoard(path, pid=os.getppid())  # two live processes, two rows
    assert not here.crowded()
    for _ in range(3):
        here.enter()
    assert here.crowded()  # 3 against 0
    other.enter()
    other.enter()
    assert not here.crowded()  # 3 against 2: within the margin
    assert not other.crowded()
    for _ in range(3):
        here.leave()
    assert not here.crowded()
    assert other.crowded()  # 2 against 0, seen from the other side


def test_a_dead_workers_row_is_taken_over_and_never_counted(tmp_path):
    path = tmp_path / "board.bin"
    dead = WorkerBoard(path, pid=_dead_pid())
    for _ in range(5):
        dead.enter()
    here = WorkerBoard(path)
    assert here._slot == dead._slot  # the dead worker's row, reused
    here.enter()
    here.enter()
    assert not here.crowded()  # nobody else alive: nothing to compare with


def test_a_lone_worker_or_a_full_board_never_closes_connections(tmp_path):
    path = tmp_path / "board.bin"
    lone = WorkerBoard(path)
    lone.enter()
    assert not lone.crowded()
    parent = os.getppid()
    boards = [WorkerBoard(path, pid=parent) for _ in range(SLOTS)]  # the same live pid keeps its one row
    assert len({b._slot for b in boards}) == 1
    lone.close()
    assert lone._slot is None and not lone.crowded()
    lone.enter()  # no row: counting is a no-op, never an error


def _app(board: WorkerBoard) -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    app.add_middleware(SpreadConnections, board=board)
    return app


def test_a_crowded_worker_answers_then_asks_the_client_to_reconnect(tmp_path):
    path = tmp_path / "board.bin"
    here, other = WorkerBoard(path), WorkerBoard(path, pid=os.getppid())
    with TestClient(_app(here)) as client:
        calm = client.get("/ping")
        assert calm.status_code == 200 and calm.json() == {"ok": True}
        assert "close" not in calm.headers.get("connection", "")
        for _ in range(3):
            here.enter()  # three more requests in flight here, none in the other worker
        crowded = client.get("/ping")
        assert crowded.status_code == 200 and crowded.json() == {"ok": True}
        assert crowded.headers["connection"] == "close"
        for _ in range(3):
            other.enter()
        assert "close" not in client.get("/ping").headers.get("connection", "")
    assert int(here._rows[here._slot, 1]) == 3  # each request counted in and out again


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["enter", "leave"]), max_size=40))
def test_any_sequence_of_requests_leaves_the_board_consistent(tmp_path_factory, moves):
    path: Path = tmp_path_factory.mktemp("board") / "board.bin"
    here, other = WorkerBoard(path), WorkerBoard(path, pid=os.getppid())
    count = 0
    for move in moves:
        getattr(here, move)()
        count += 1 if move == "enter" else -1
        assert int(here._rows[here._slot, 1]) == count
        assert here.crowded() == (count > 0 + 1)
        assert not (here.crowded() and other.crowded())


def test_serve_gives_its_workers_a_board_and_removes_it(monkeypatch, tmp_path):
    """`sibyl serve` with several workers: the board's path in the workers' environment, gone afterwards."""
    import uvicorn

    from sibyl import cli

    seen: dict[str, str | None] = {}

    def fake_run(*args, **kwargs) -> None:
        board = os.environ["SIBYL_WORKER_BOARD"]
        WorkerBoard(Path(board))  # what a worker does at start
        seen.update(board=board, single_accept=os.environ.get("UV_TCP_SINGLE_ACCEPT"), workers=kwargs["workers"])

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setenv("SIBYL_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    for name in ("SIBYL_WORKER_BOARD", "SIBYL_DATA_DIR", "SIBYL_CORPUS_DIR", "SIBYL_EMBEDDING_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli, "_ensure_index", lambda settings: None)
    assert cli.main(["--data-dir", str(tmp_path / "data"), "serve", "--workers", "2", "--port", "0"]) == 0
    assert seen["workers"] == 2 and seen["single_accept"] == "1"
    board = Path(str(seen["board"]))
    assert not board.exists() and not Path(f"{board}.lock").exists()
