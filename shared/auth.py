"""Authentication and authorisation: OAuth2 client credentials (RFC 6749 §4.4) and JWT bearer tokens.

Client secrets are stored as argon2 hashes in `desk.api_clients`. Access tokens are short-lived
JWTs signed with the desk's Ed25519 key, so every service verifies them without a database
round trip. Routes declare who may call them with `Authenticator(kinds=..., scopes=...)`.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from nacl.signing import SigningKey
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import FORBIDDEN, DeskError, Unauthenticated
from shared.models import ApiClient
from shared.revocation import RevokedClients

PrincipalKind = Literal["partner", "company", "officer", "auditor", "service", "expert"]
PRINCIPAL_KINDS: tuple[PrincipalKind, ...] = ("partner", "company", "officer", "auditor", "service", "expert")

SCOPES: dict[str, str] = {
    "intake:read": "Read calls, companies, applications and trainings within reach.",
    "intake:write": "Register companies, prepare, submit and withdraw applications, enrol in trainings.",
    "intake:admin": "Publish calls, register partners and their clients, manage the training catalogue.",
    "evaluation:read": "Read evaluations, rankings and decisions within reach.",
    "evaluation:write": "Evaluate, score and decide (officers).",
    "monitoring:read": "Read projects, claims and payments within reach.",
    "monitoring:write": "File claims and reports (beneficiaries) or check them (officers).",
    "audit:read": "Read the audit trail.",
    "intake:accompaniment": "Confirm or decline own accompaniment engagements and log their sessions (experts).",
    "internal": "Service-to-service calls.",
}

DEFAULT_SCOPES: dict[str, tuple[str, ...]] = {
    "partner": ("intake:read", "intake:write", "evaluation:read", "monitoring:read", "monitoring:write"),
    "company": ("intake:read", "intake:write", "evaluation:read", "monitoring:read", "monitoring:write"),
    "officer": (
        "intake:read",
        "intake:admin",
        "evaluation:read",
        "evaluation:write",
        "monitoring:read",
        "monitoring:write",
        "audit:read",
    ),
    "auditor": ("intake:read", "evaluation:read", "monitoring:read", "audit:read"),
    "service": ("internal", "intake:read", "evaluation:read", "monitoring:read"),
    # An accredited expert of the accompaniment roster: its own engagements only (intake.experts.client_id).
    "expert": ("intake:accompaniment",),
}

AUDIENCE = "regional-desk"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# argon2-cffi's defaults, RFC 9106's low-memory profile (argon2id, t=3, m=64 MiB, p=4): what client secrets
# are hashed with. A hash carries its own parameters, so a stored secret verifies whatever hasher is set.
PRODUCTION_HASHER = PasswordHasher()
_hasher = PRODUCTION_HASHER


def use_secret_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Hash new client secrets with `hasher` from now on; returns the one it replaces. The tests set a cheap
    one (a production hash costs a fifth of a second, and every test client has one); nothing else does."""
    global _hasher
    previous, _hasher = _hasher, hasher
    return previous


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    """Whether `secret` is the one hashed (with the hash's own parameters); raises argon2's
    `VerificationError` when it is not."""
    return _hasher.verify(secret_hash, secret)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the client, its kind, and the partner or company it acts for."""

    client_id: str
    kind: PrincipalKind
    scopes: frozenset[str]
    partner_id: uuid.UUID | None = None
    company_id: uuid.UUID | None = None

    @property
    def reads_everything(self) -> bool:
        return self.kind in ("officer", "auditor", "service")


# ---------------------------------------------------------------- keys


class KeyRing:
    """The desk's Ed25519 key: signs access tokens and receipts; its public half verifies them."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self.private_key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        # Receipts are signed with libsodium (PyNaCl): the same deterministic Ed25519 signature, in half the time
        # of OpenSSL 3's per-call context set-up (18 against 32-38 us), once per submit on click day
        self._signer = SigningKey(
            private_key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
        )
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_raw = raw
        self.key_id = base64.urlsafe_b64encode(__import__("hashlib").sha256(raw).digest()[:9]).decode()

    @classmethod
    def from_pem(cls, pem: str | bytes) -> KeyRing:
        key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("DESK_SIGNING_KEY must be an Ed25519 private key in PEM")
        return cls(key)

    @classmethod
    def generate(cls) -> KeyRing:
        return cls(Ed25519PrivateKey.generate())

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def sign(self, data: bytes) -> str:
        return base64.urlsafe_b64encode(self._signer.sign(data).signature).rstrip(b"=").decode()

    def verify(self, data: bytes, signature: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self.public_key.verify(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), data)
            return True
        except (InvalidSignature, ValueError):
            return False


def load_or_create_key(pem: str | None, data_dir: Path, *, allow_generate: bool) -> KeyRing:
    """Key from settings; in local mode, generated once and kept under the data folder."""
    if pem:
        return KeyRing.from_pem(pem)
    if not allow_generate:
        raise RuntimeError("DESK_SIGNING_KEY is required outside local mode")
    path = data_dir / "signing_key.pem"
    if path.exists():
        return KeyRing.from_pem(path.read_bytes())
    ring = KeyRing.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(ring.private_pem())
    tmp.chmod(0o600)
    try:
        # The first process to publish its key wins; the others started with it on the same new folder read
        # that one, so every process signs and verifies with the same key.
        os.link(tmp, path)
    except FileExistsError:
        return KeyRing.from_pem(path.read_bytes())
    finally:
        tmp.unlink()
    return ring


# ---------------------------------------------------------------- tokens


def mint_token(
    ring: KeyRing,
    *,
    sub: str,
    kind: PrincipalKind,
    scopes: list[str],
    issuer: str,
    ttl: int,
    partner_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        "kind": kind,
        "scope": " ".join(scopes),
    }
    if partner_id:
        claims["partner_id"] = str(partner_id)
    if company_id:
        claims["company_id"] = str(company_id)
    return jwt.encode(claims, ring.private_key, algorithm="EdDSA", headers={"kid": ring.key_id})


def issue_token(ring: KeyRing, *, client: ApiClient, scopes: list[str], issuer: str, ttl: int) -> str:
    return mint_token(
        ring,
        sub=client.client_id,
        kind=client.kind,  # type: ignore[arg-type]
        scopes=scopes,
        issuer=issuer,
        ttl=ttl,
        partner_id=client.partner_id,
        company_id=client.company_id,
    )


_VERIFIED: dict[str, tuple[Principal, int]] = {}


def decode_token(ring: KeyRing, token: str, issuer: str) -> Principal:
    """Verify a bearer token. A verified token is remembered until it expires (bounded cache), so a
    client's burst of requests pays the signature check once; expiry is checked on every use."""
    hit = _VERIFIED.get(token)
    if hit is not None and hit[1] > time.time():
        return hit[0]
    principal, exp = _decode(ring, token, issuer)
    if len(_VERIFIED) >= 50_000:
        _VERIFIED.clear()
    _VERIFIED[token] = (principal, exp)
    return principal


def _decode(ring: KeyRing, token: str, issuer: str) -> tuple[Principal, int]:
    try:
        c = jwt.decode(
            token,
            ring.public_key,
            algorithms=["EdDSA"],
            audience=AUDIENCE,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated(
            "Il token è scaduto.",
            "The access token has expired.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    except jwt.PyJWTError:
        raise Unauthenticated(
            "Token non valido.", "Invalid access token.", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None
    kind = c.get("kind")
    if kind not in PRINCIPAL_KINDS:
        raise Unauthenticated("Token non valido.", "Invalid access token.")
    return Principal(
        client_id=c["sub"],
        kind=kind,
        scopes=frozenset(str(c.get("scope", "")).split()),
        partner_id=uuid.UUID(c["partner_id"]) if c.get("partner_id") else None,
        company_id=uuid.UUID(c["company_id"]) if c.get("company_id") else None,
    ), int(c["exp"])


def current_principal(request: Request) -> Principal:
    """Decode the bearer token once per request (cached on request.state)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(
            "Serve un token di accesso (Authorization: Bearer).",
            "A bearer access token is required.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = decode_token(request.app.state.keyring, token.strip(), request.app.state.settings.token_issuer)
    request.state.principal = principal
    return principal


class Authenticator:
    """Dependency: the caller must be authenticated, of one of `kinds`, holding every scope in `scopes`.

    `scopes_by_kind` lets one route serve several roles with the scopes each needs (e.g. officers
    with `intake:admin`, partners and companies with `intake:write`); it also sets the kinds.
    """

    def __init__(
        self,
        *,
        kinds: tuple[PrincipalKind, ...] = PRINCIPAL_KINDS,
        scopes: tuple[str, ...] = (),
        scopes_by_kind: dict[PrincipalKind, tuple[str, ...]] | None = None,
    ) -> None:
        self.kinds = tuple(scopes_by_kind) if scopes_by_kind else kinds
        self.scopes = frozenset(scopes)
        self.scopes_by_kind = {k: frozenset(v) for k, v in (scopes_by_kind or {}).items()}

    async def __call__(self, request: Request) -> Principal:
        p = current_principal(request)
        await refuse_revoked(request, p)
        if p.kind not in self.kinds:
            raise DeskError(
                "Il tuo ruolo non consente questa operazione.",
                "Your role does not allow this operation.",
                kind=FORBIDDEN,
            )
        if request.method not in _SAFE_METHODS and not getattr(request.state, "rate_checked", False):
            request.state.rate_checked = True
            request.app.state.write_limiter.check(p.client_id)
        needed = self.scopes | self.scopes_by_kind.get(p.kind, frozenset())
        missing = needed - p.scopes
        if missing:
            raise DeskError(
                f"Mancano gli scope: {' '.join(sorted(missing))}.",
                f"Missing scopes: {' '.join(sorted(missing))}.",
                kind=FORBIDDEN,
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{" ".join(sorted(needed))}"'},
            )
        return p


@asynccontextmanager
async def _borrowed(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    yield session


async def refuse_revoked(request: Request, principal: Principal) -> None:
    """401 for a token whose client was revoked (within `DESK_REVOCATION_REFRESH_SECONDS`, see
    `shared.revocation`). The list is re-read, when stale, in the request's own session if it has one."""
    if getattr(request.state, "revocation_checked", False):
        return
    revoked: RevokedClients | None = getattr(request.app.state, "revoked_clients", None)
    if revoked is None:
        return
    session = getattr(request.state, "session", None)

    def factory() -> Any:
        return _borrowed(session) if session is not None else request.app.state.sessionmaker()

    if await revoked.is_revoked(principal.client_id, factory):
        raise Unauthenticated(
            "Le credenziali di questo token sono state revocate.",
            "The credentials of this access token were revoked.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    request.state.revocation_checked = True


authenticated = Authenticator()


# ---------------------------------------------------------------- credentials


def new_secret() -> str:
    return secrets.token_urlsafe(32)


async def create_client(
    session: AsyncSession,
    *,
    kind: PrincipalKind,
    name: str,
    partner_id: uuid.UUID | None = None,
    company_id: uuid.UUID | None = None,
    scopes: tuple[str, ...] | None = None,
    client_id: str | None = None,
    secret: str | None = None,
) -> tuple[ApiClient, str]:
    """Register an API client; the plain secret is returned once and only its hash is stored."""
    if kind == "partner" and partner_id is None:
        raise ValueError("a partner client needs partner_id")
    if kind == "company" and company_id is None:
        raise ValueError("a company client needs company_id")
    secret = secret or new_secret()
    client = ApiClient(
        id=uuid.uuid4(),
        client_id=client_id or f"{kind}-{secrets.token_hex(6)}",
        secret_hash=await run_in_threadpool(hash_secret, secret),
        kind=kind,
        name=name,
        partner_id=partner_id,
        company_id=company_id,
        scopes=list(scopes or DEFAULT_SCOPES[kind]),
        active=True,
    )
    session.add(client)
    await session.flush()
    return client, secret


MAX_PREVIOUS_SECRETS = 3  # a failed token request verifies at most this many more hashes


def live_previous_secrets(client: ApiClient, now: datetime) -> list[dict[str, str]]:
    """The secrets a rotation replaced whose overlap has not ended."""
    return [p for p in client.previous_secrets or [] if datetime.fromisoformat(p["expires_at"]) > now]


def _matches(secret_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


async def verify_client_secret(client: ApiClient, secret: str, now: datetime) -> bool:
    """The current secret, or one replaced by a rotation while its overlap lasts."""
    for secret_hash in [client.secret_hash, *(p["hash"] for p in live_previous_secrets(client, now))]:
        if await run_in_threadpool(_matches, secret_hash, secret):
            return True
    return False


async def rotate_client_secret(session: AsyncSession, client: ApiClient, *, overlap: timedelta, now: datetime) -> str:
    """A new secret (returned once, stored hashed); the replaced one keeps working until now + overlap.

    Earlier replaced secrets keep their own overlap (a rotation retried after a lost response does not cut
    off the secret still in use), at most `MAX_PREVIOUS_SECRETS` of them, the oldest dropped first."""
    secret = new_secret()
    previous = live_previous_secrets(client, now)
    if overlap > timedelta(0):
        previous.append({"hash": client.secret_hash, "expires_at": (now + overlap).isoformat()})
    client.previous_secrets = previous[-MAX_PREVIOUS_SECRETS:]
    client.secret_hash = await run_in_threadpool(_hasher.hash, secret)
    client.rotated_at = now
    client.version += 1
    await session.flush()
    return secret
