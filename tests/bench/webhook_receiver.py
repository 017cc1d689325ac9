"""Partners' webhook endpoints for the click-day benchmark: one small async HTTP server (uvicorn, a bare ASGI
app, keep-alive), run as its own process so its CPU and memory are measured apart from the desk's.

    python tests/bench/webhook_receiver.py --port 8123 --secrets secrets.json

`secrets.json` maps each subscription id to its signing secret. A delivery is POSTed to
`/hooks/{subscription_id}`; its Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) is verified with the `standardwebhooks` package and that subscription's secret, then the
delivery is counted by subscription and event id (the `webhook-id`, which the desk sets to the event's id) and
answered 204 at once. A bad signature or an unknown subscription is counted too and answered 400/404, so the
desk retries it and the benchmark reports it.

`GET /counts` returns what was received: `{"deliveries": n, "distinct": n, "bad_signature": n,
"unknown_subscription": n, "counts": {subscription_id: {event_id: times}}}`; `GET /counts?summary=1` leaves
the per-event counts out (cheap to poll). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Receiver:
    """The ASGI app: verify, count, answer."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.hooks = {sub: Webhook(secret) for sub, secret in secrets.items()}
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.deliveries = 0
        self.distinct = 0
        self.bad_signature = 0
        self.unknown = 0

    def summary(self, full: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "deliveries": self.deliveries,
            "distinct": self.distinct,
            "bad_signature": self.bad_signature,
            "unknown_subscription": self.unknown,
        }
        if full:
            out["counts"] = self.counts
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path, method = scope["path"], scope["method"]
        if method == "GET" and path == "/counts":
            full = b"summary=1" not in scope.get("query_string", b"")
            await respond(send, 200, orjson.dumps(self.summary(full)))
            return
        if method != "POST" or not path.startswith("/hooks/"):
            await respond(send, 404, b"")
            return
        sub = path.removeprefix("/hooks/")
        hook = self.hooks.get(sub)
        if hook is None:
            self.unknown += 1
            await respond(send, 404, b"")
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            hook.verify(bytes(body), headers, json_parse=False)
        except WebhookVerificationError:
            self.bad_signature += 1
            await respond(send, 400, b"")
            return
        seen = self.counts[sub]
        event_id = headers["webhook-id"]
        if event_id not in seen:
            self.distinct += 1
        seen[event_id] += 1
        self.deliveries += 1
        await respond(send, 204, b"")


async def respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--secrets", type=Path, required=True, help="JSON: subscription id -> signing secret")
    a = p.parse_args()
    secrets = json.loads(a.secrets.read_text())
    uvicorn.run(
        Receiver(secrets),
        host=a.host,
        port=a.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=60,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
