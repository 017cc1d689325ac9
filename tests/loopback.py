"""A real HTTP server for tests: an ASGI app under uvicorn on 127.0.0.1, in a task of the test's loop, with the
desk's server configuration (shared.server). It can be stopped and started again on the same port (a peer
going down and coming back)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn

from shared.server import server_config
from shared.settings import DeskSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackServer:
    def __init__(self, app: Any, port: int | None = None, settings: DeskSettings | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.settings = settings or DeskSettings.model_construct()  # the server's limits: the defaults
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        config = server_config(
            self.app,
            self.settings,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            log_level="critical",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # failed to bind: raise it here
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None
