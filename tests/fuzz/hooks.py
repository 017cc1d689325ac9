"""Schemathesis hooks of the fuzz runs (`SCHEMATHESIS_HOOKS=tests.fuzz.hooks`): how to send the media types it
cannot serialise by itself. A signed form is a PDF body: whatever the fuzzer draws is sent as bytes behind a PDF
header, so the route's refusals (not a PDF, unsigned) are exercised instead of the operation being skipped."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/pdf")
def pdf(ctx: Any, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return b"%PDF-1.7\n" + str(value).encode("utf-8", "replace")
