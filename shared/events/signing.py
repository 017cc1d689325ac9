"""Standard Webhooks signatures (webhook-id, webhook-timestamp, webhook-signature).

During a secret rotation the payload is signed with both the new and the previous secret,
space-separated, so receivers verifying with either keep working through the overlap.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign_headers(*, msg_id: str, at: datetime, body: str, secrets_: list[str]) -> dict[str, str]:
    signatures = " ".join(Webhook(s).sign(msg_id, at, body) for s in secrets_)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signatures}
