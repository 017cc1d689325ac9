"""Who may call intake's routes: the principal dependencies that several of intake's domains share.

One definition per rule, so that "an officer with `intake:admin`" or "a participant" admits the same callers
on every route that names it. A rule only one domain uses (a delegation's acceptor, the reader of the
accompaniment's engagements, which includes experts) stays next to its routes.

Each rule comes as the dependency (`officer`, for a route's `dependencies=[...]`) where routes use it so, and
as the `Annotated` alias (`Officer`) for a parameter or a validator that needs the caller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.auth import Authenticator, Principal

READ = ("intake:read",)
WRITE = ("intake:write",)
ADMIN = ("intake:admin",)

#: an officer of the Region, managing intake (`intake:admin`)
officer = Depends(Authenticator(kinds=("officer",), scopes=ADMIN))
Officer = Annotated[Principal, officer]

#: any authenticated caller holding `intake:read`; what it then sees is its reach (shared.access)
reader = Depends(Authenticator(scopes=READ))
Reader = Annotated[Principal, reader]

#: officers and auditors reading what the Region oversees (`intake:read`); partners and companies get 403
Overseer = Annotated[Principal, Depends(Authenticator(kinds=("officer", "auditor"), scopes=READ))]

#: the applicant's side acting on what is its own or its companies': a partner or a company (`intake:write`);
#: officers and auditors get 403
applicant = Depends(Authenticator(kinds=("partner", "company"), scopes=WRITE))
Applicant = Annotated[Principal, applicant]

#: a participant acting for a company: its partner or the company itself (`intake:write`), or an officer acting
#: for it (`intake:admin`)
participant = Depends(Authenticator(scopes_by_kind={"partner": WRITE, "company": WRITE, "officer": ADMIN}))
Participant = Annotated[Principal, participant]
