"""The desk's server configuration (shared/server.py) at start: the open-file limit raised, the connection cap
fitted under it, and the configuration intact in the worker processes of `desk serve --workers N`. How a
running server treats slow clients: tests/reliability/test_slow_clients.py."""

from __future__ import annotations

import pickle
import resource
import subprocess
import sys

from shared.server import FD_RESERVE, DeskHttpProtocol, DeskServerConfig, server_config
from shared.settings import REPO_ROOT, DeskSettings

PROBE = ("import resource; from shared.server import server_config; from shared.settings import DeskSettings; "
         "c = server_config('services.intake.app:build_app', DeskSettings(), factory=True); "
         "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], c.limits.max_connections)")


def _start_with_open_files(soft: int, hard: int, max_connections: int) -> tuple[int, int]:
    """(soft open-file limit, connection cap) of a process started with these limits."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
        env={"PATH": "/usr/bin:/bin", "DESK_HTTP_MAX_CONNECTIONS": str(max_connections)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)))
    limit, cap = out.stdout.splitlines()[-1].split()  # after the warning, when the cap was lowered
    return int(limit), int(cap)


def test_the_open_file_limit_is_raised_and_the_cap_fits_under_it() -> None:
    # the soft limit goes up to the hard one; the cap stays as configured when it fits...
    assert _start_with_open_files(100, 2000, 1000) == (2000, 1000)
    # ...and is lowered, leaving FD_RESERVE files for the database pools and the rest, when it does not
    assert _start_with_open_files(100, 600, 1000) == (600, 600 - FD_RESERVE)


def test_worker_processes_get_the_desks_protocol_and_limits() -> None:
    # `--workers N` hands the configuration to each worker process by pickling it (multiprocessing spawn)
    settings = DeskSettings.model_construct(http_header_timeout_seconds=3.0, http_body_timeout_seconds=7.0,
                                            http_max_connections=50)
    config = server_config("services.intake.app:build_app", settings, factory=True, workers=2)
    copy = pickle.loads(pickle.dumps(config))
    assert isinstance(copy, DeskServerConfig) and copy.http is DeskHttpProtocol and copy.ws == "none"
    assert (copy.limits.header_timeout, copy.limits.body_timeout, copy.limits.max_connections) == (3.0, 7.0, 50)
