"""The typed client of the intake service. Its response models are the contracts intake serves (shared.contracts)."""

from __future__ import annotations

import uuid

from shared.clients.base import ServiceClient
from shared.contracts.applications import ApplicationOut, SnapshotsOut
from shared.contracts.calls import CallDetail, CallVersionOut
from shared.contracts.companies import CompanyOut
from shared.pagination import Page


class IntakeClient(ServiceClient):
    peer = "intake"

    async def get_application(self, application_id: uuid.UUID) -> ApplicationOut:
        return await self.get_model(f"/v1/applications/{application_id}", ApplicationOut)

    async def get_company(self, company_id: uuid.UUID) -> CompanyOut:
        return await self.get_model(f"/v1/companies/{company_id}", CompanyOut)

    async def find_company_by_vat(self, vat_number: str) -> CompanyOut | None:
        """The company registered with this VAT number, or None if intake has none."""
        page = await self.get_model("/v1/companies", Page[CompanyOut], params={"vat_number": vat_number, "limit": 1})
        return page.items[0] if page.items else None

    async def get_call(self, call_id: uuid.UUID) -> CallDetail:
        return await self.get_model(f"/v1/calls/{call_id}", CallDetail)

    async def get_call_version(self, call_id: uuid.UUID, version: int) -> CallVersionOut:
        """One version of the call's rules (versions never change once published)."""
        return await self.get_model(f"/v1/calls/{call_id}/versions/{version}", CallVersionOut)

    async def get_snapshots(self, application_ids: list[uuid.UUID]) -> SnapshotsOut:
        """Many applications in one request (at most 200 ids; a read, so retried like a GET)."""
        resp = await self.request(
            "POST",
            "/v1/internal/applications/snapshots",
            json={"ids": [str(i) for i in application_ids]},
            safe=True,
        )
        return self.parse(resp, SnapshotsOut)
