"""httpcore asks which event loop runs each request of every httpx client (the delivery worker's deliveries, the
services' peer calls). Its answer comes from sniffio: without sniffio installed the question cost a failed import,
a search of the whole import path, on every request (a quarter of the worker's CPU on a click day)."""

from __future__ import annotations

import importlib.abc
import sys

from httpcore._synchronization import current_async_library


class _CountingFinder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        self.searched.append(fullname)
        return None


async def test_each_request_learns_its_event_loop_without_searching_the_import_path() -> None:
    assert current_async_library() == "asyncio"  # the first may import sniffio
    finder = _CountingFinder()
    sys.meta_path.insert(0, finder)
    try:
        for _ in range(100):
            assert current_async_library() == "asyncio"
    finally:
        sys.meta_path.remove(finder)
    assert finder.searched == []
