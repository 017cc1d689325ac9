"""The typed client of the evaluation service, as monitoring uses it: releasing aid back to a call's budget
(revocation or reduction). Its response model is the contract evaluation serves (shared.contracts.funding)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from shared.clients.base import ServiceClient
from shared.contracts.funding import ReleaseOut


class EvaluationClient(ServiceClient):
    peer = "evaluation"

    async def release_budget(
        self, call_id: uuid.UUID, *, application_id: uuid.UUID, amount: Decimal, reason: str, idempotency_key: str
    ) -> ReleaseOut:
        """`POST /v1/calls/{call_id}/budget/releases`: the whole granted aid is a revocation, less a reduction.
        The key makes a retry (ours, or the client's own) replay the first answer instead of releasing twice."""
        resp = await self.request(
            "POST",
            f"/v1/calls/{call_id}/budget/releases",
            json={"application_id": str(application_id), "amount": str(amount), "reason": reason},
            idempotency_key=idempotency_key,
        )
        return self.parse(resp, ReleaseOut)
