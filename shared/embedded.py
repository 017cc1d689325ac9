"""The embedded PostgreSQL (pgserver) used when no DATABASE_URL is set.

Its data lives under the checkout's `.desk/` folder (ignored by git), so a second start
reuses it. The server keeps running between processes of the same run; `stop_embedded`
stops it at the end of `desk up`.
"""

from __future__ import annotations

import logging
import warnings
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


def stop_embedded(data_dir: Path) -> None:
    srv = _servers.pop(data_dir.resolve(), None)
    if srv is not None:
        srv.cleanup_mode = "stop"
        srv.cleanup()
