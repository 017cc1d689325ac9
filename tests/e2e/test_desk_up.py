"""`desk up` runs the three services and the delivery worker as processes, and stops them all on Ctrl-C.

A real `desk up` on free ports and a database of its own (it migrates and seeds, which the shared test
database must not receive). Bounded: it fails after 120 s of starting, and kills whatever is left."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import asyncpg
import psutil
import pytest
from sqlalchemy.engine import make_url

from shared.db import plain_url
from shared.settings import REPO_ROOT
from tests.loopback import free_port

START_TIMEOUT = 120


@pytest.fixture
def own_db(server_url: str) -> Iterator[str]:
    server = server_url
    name = f"desk_up_{os.getpid()}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(plain_url(server))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _reader(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def _cmdline(proc: psutil.Process, timeout: float = 10.0) -> list[str]:
    """The process's command line. Between fork and exec Linux reports an empty one, and desk up prints the
    worker's pid as soon as it is forked: wait until the command line is filled in."""
    deadline = time.monotonic() + timeout
    while not (cmdline := proc.cmdline()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return cmdline


def _started_for(data_dir: str) -> list[psutil.Process]:
    """Every live process started for this test: `desk up` and whatever it started inherit its DESK_DATA_DIR,
    so they are found even when `desk up` died first and left them to init."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("DESK_DATA_DIR") == data_dir:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def _kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)


def test_desk_up_starts_the_worker_with_the_services_and_stops_it_on_ctrl_c(own_db: str, tmp_path) -> None:
    env = {
        **os.environ,
        "DESK_DATABASE_URL": own_db,
        "DATABASE_URL": own_db,
        "DESK_DATA_DIR": str(tmp_path),
        "INTAKE_PORT": str(free_port()),
        "EVALUATION_PORT": str(free_port()),
        "MONITORING_PORT": str(free_port()),
        "DESK_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("DESK_EVALUATION_URL", "DESK_INTAKE_URL", "DESK_MONITORING_URL"):
        env.pop(name, None)
    desk = subprocess.Popen(
        [sys.executable, "-m", "desk.cli", "up"],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(desk.stdout, lines), daemon=True).start()
    seen: list[str] = []
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not any("Press Ctrl-C to stop" in line for line in seen):
            assert desk.poll() is None, "".join(seen)
            assert time.monotonic() < deadline, "desk up did not start in time:\n" + "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        out = "".join(seen)
        match = re.search(r"worker\s+delivering events \(pid (\d+)\) to webhooks and to evaluation at (\S+)", out)
        assert match, out
        worker = psutil.Process(int(match.group(1)))
        assert worker.is_running() and "worker" in _cmdline(worker)
        assert match.group(2) == f"http://127.0.0.1:{env['EVALUATION_PORT']}", "the worker reaches this evaluation"
        children = psutil.Process(desk.pid).children(recursive=True)
        assert worker.pid in [c.pid for c in children]

        desk.send_signal(signal.SIGINT)
        assert desk.wait(timeout=60) == 0
    finally:
        # a failure above: still stop every process desk up started, not only desk up
        _kill_all(_started_for(str(tmp_path)))
        desk.wait(timeout=10)
    time.sleep(0.2)  # let the reader drain the last lines
    while not lines.empty():
        seen.append(lines.get())
    out = "".join(seen)
    assert "services and worker stopped" in out, out
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], "all stopped"
    assert _started_for(str(tmp_path)) == [], "nothing left running"
