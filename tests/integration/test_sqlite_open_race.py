"""Processes that open one fresh SQLite file at the same moment (the launcher starts every service at once)
all get a working store: none fails with "database is locked" while another switches the file to WAL."""

from __future__ import annotations

import asyncio
import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path
from queue import Queue

from services.common.store import SqliteStore

PROCESSES = 6
ROUNDS = 10


def _open_each(paths: list[str], barrier: Barrier, results: Queue[str]) -> None:
    for path in paths:
        barrier.wait()
        try:
            store = SqliteStore(Path(path))
            asyncio.run(store.close())
            results.put("ok")
        except Exception as error:  # reported to the test, which names it
            results.put(repr(error))


def test_processes_opening_a_fresh_file_at_once_all_get_a_store(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    paths = [str(tmp_path / f"fresh-{n}.db") for n in range(ROUNDS)]
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    processes = [context.Process(target=_open_each, args=(paths, barrier, results)) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in range(PROCESSES * ROUNDS)]
    for process in processes:
        process.join(30)
    assert [o for o in outcomes if o != "ok"] == []
    assert len(outcomes) == PROCESSES * ROUNDS
