"""`desk up` runs the three services and the delivery worker as processes, and stops them all on Ctrl-C.

A real `desk up` on free ports and a database of its own (it migrates and seeds, which the shared test
database must not receive). Bounded: it fails after 120 s of starting, and kills whatever is left."""

from __future__ import annotations

import asyncio
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
from tests.conftest import _server_url
from tests.loopback import free_port

START_TIMEOUT = 120


@pytest.fixture
def own_db() -> Iterator[str]:
    server = _server_url()
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


def test_desk_up_starts_the_worker_with_the_services_and_stops_it_on_ctrl_c(own_db: str, tmp_path) -> None:
    env = {**os.environ, "DESK_DATABASE_URL": own_db, "DATABASE_URL": own_db, "DESK_DATA_DIR": str(tmp_path),
           "INTAKE_PORT": str(free_port()), "EVALUATION_PORT": str(free_port()),
           "MONITORING_PORT": str(free_port()), "DESK_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    for name in ("DESK_EVALUATION_URL", "DESK_INTAKE_URL", "DESK_MONITORING_URL"):
        env.pop(name, None)
    desk = subprocess.Popen([sys.executable, "-m", "desk.cli", "up"], cwd=REPO_ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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
        if not children:  # a failure above: still stop every process desk up started, not only desk up
            try:
                children = psutil.Process(desk.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        if desk.poll() is None:
            desk.kill()
            desk.wait(timeout=10)
        for child in children:
            if child.is_running():
                child.kill()
    time.sleep(0.2)  # let the reader drain the last lines
    while not lines.empty():
        seen.append(lines.get())
    out = "".join(seen)
    assert "services and worker stopped" in out, out
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], "all stopped"
