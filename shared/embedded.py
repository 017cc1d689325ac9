"""The embedded PostgreSQL (pgserver) used when no DATABASE_URL is set.

Its data lives under the checkout's `.desk/` folder (ignored by git), so a second start
reuses it. The server keeps running between processes of the same run; `stop_embedded`
stops it at the end of `desk up`, and `embedded_for_run` at the end of a test run that started it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_servers: dict[Path, Any] = {}


def embedded_server(data_dir: Path) -> Any:
    data_dir = data_dir.resolve()
    if data_dir not in _servers:
        warnings.filterwarnings("ignore", module="platformdirs")
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        import pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        _servers[data_dir] = pgserver.get_server(data_dir / "pgdata", cleanup_mode=None)  # type: ignore[attr-defined]
    return _servers[data_dir]


def embedded_database_url(data_dir: Path, database: str = "postgres") -> str:
    return str(embedded_server(data_dir).get_uri(database))


def embedded_running(data_dir: Path) -> bool:
    """Whether a PostgreSQL is running on this data folder now (its postmaster.pid names a live process)."""
    try:
        pid = int((data_dir.resolve() / "pgdata" / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError) as exc:
        return isinstance(exc, PermissionError)  # alive, run by pgserver's own system user
    return True


def stop_embedded(data_dir: Path) -> None:
    """Stop the server unless another live process still holds it (pgserver counts its handles; a process
    that was killed never gave its handle back, so the handles of processes that are gone are dropped)."""
    import psutil

    srv = _servers.pop(data_dir.resolve(), None)
    if srv is not None:
        handles = srv.global_process_id_list
        handles.put([pid for pid in handles.get() if pid == os.getpid() or psutil.pid_exists(pid)])
        srv.cleanup_mode = "stop"
        srv.cleanup()


@contextmanager
def embedded_for_run(data_dir: Path, database: str = "postgres") -> Iterator[str]:
    """The embedded server's URL for one run (the tests' session): started when it is not running, and then
    stopped at the end; left running when it was already (it belongs to whoever started it)."""
    started = not embedded_running(data_dir)
    url = embedded_database_url(data_dir, database)
    try:
        yield url
    finally:
        if started:
            stop_embedded(data_dir)
