"""The embedded PostgreSQL is stopped by the run that started it, and only by that one: `python3 dev.py test`
(the tests' session, `tests/conftest.py::server_url`) leaves nothing running it did not find running."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from shared.embedded import embedded_for_run, embedded_running, embedded_server, stop_embedded


@pytest.fixture
def data_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="desk-embedded-"))
    root.chmod(0o755)  # as root, pgserver runs PostgreSQL as its own system user
    try:
        yield root
    finally:
        stop_embedded(root)  # whatever a failure left running
        shutil.rmtree(root, ignore_errors=True)


def _answers(url: str) -> int:
    async def one() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT 1"))
        finally:
            await conn.close()

    return asyncio.run(one())


def test_a_run_that_starts_the_embedded_server_stops_it_and_one_that_found_it_running_does_not(data_dir: Path) -> None:
    assert not embedded_running(data_dir)
    with embedded_for_run(data_dir) as url:
        assert embedded_running(data_dir) and _answers(url) == 1
    assert not embedded_running(data_dir), "started by the run: stopped at its end"

    embedded_server(data_dir)  # someone else's (a `desk up`, another run) before this run starts
    with embedded_for_run(data_dir) as url:
        assert _answers(url) == 1
    assert embedded_running(data_dir), "found running: left to whoever started it"
    stop_embedded(data_dir)
    assert not embedded_running(data_dir)
