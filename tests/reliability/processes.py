"""The intake service as a real operating-system process (`desk serve intake` on loopback, as deployed), for
tests that kill it, stop its database, send it SIGTERM or hold its connections. It shares the tests' signing
key, so tokens minted by the tests are valid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from shared.settings import REPO_ROOT
from tests.conftest import KEYRING
from tests.loopback import free_port


class IntakeProcess:
    def __init__(
        self,
        database_url: str,
        *,
        port: int | None = None,
        graceful_seconds: int = 10,
        env: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.port = port or free_port()
        self.graceful_seconds = graceful_seconds
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="desk-intake-")
        self.log = Path(self._dir.name) / "intake.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_ready: bool = True, within: float = 30) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DESK_", "INTAKE_"))}
        env.update(
            {
                "DESK_DATABASE_URL": self.database_url,
                "DESK_SIGNING_KEY": KEYRING.private_pem().decode(),
                "DESK_ENVIRONMENT": "test",
                "DESK_DATA_DIR": self._dir.name,
                "DESK_LOG_LEVEL": "WARNING",
                "DESK_ACCESS_LOG": "false",
                "DESK_RATE_LIMIT_WRITE_PER_MINUTE": "0",
                "DESK_RATE_LIMIT_TOKEN_PER_MINUTE": "0",
                **self.extra_env,
            }
        )
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "desk.cli",
                    "serve",
                    "intake",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                    "--graceful-timeout",
                    str(self.graceful_seconds),
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_answering("/readyz" if wait_ready else "/healthz", within)
        except BaseException:  # not answering (or interrupted): stopped here, whatever the caller does next
            self.stop()
            raise

    def _wait_answering(self, probe: str, within: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + within
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"intake exited at start ({self.proc.returncode}):\n{self.output()}")
            try:
                if httpx.get(self.url + probe, timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"intake not answering {probe} within {within}s:\n{self.output()}")
            time.sleep(0.05)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Whatever state it is in: SIGTERM, then SIGKILL after a while. Idempotent."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.graceful_seconds + 5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> IntakeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
