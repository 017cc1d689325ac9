"""RFC 9457 problem details: one error base class, one catalogue, one set of handlers.

Every error a client can see has a stable `type` (`/problems/<slug>`, described at
`GET /problems/<slug>` on every service), an Italian and an English title, and for
validation an `errors[]` list whose `path` is a JSON pointer into the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.i18n import Lang, pick_language, validation_message

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger("desk.errors")


@dataclass(frozen=True)
class ProblemKind:
    slug: str
    status: int
    title_it: str
    title_en: str
    description: str

    @property
    def type_uri(self) -> str:
        return f"/problems/{self.slug}"


CATALOGUE: dict[str, ProblemKind] = {}


def _kind(slug: str, status: int, title_it: str, title_en: str, description: str) -> ProblemKind:
    k = ProblemKind(slug, status, title_it, title_en, description)
    CATALOGUE[slug] = k
    return k


VALIDATION = _kind(
    "validation-error",
    422,
    "Dati non validi",
    "Invalid input",
    "The request does not satisfy the schema or the rules; see errors[] for each field.",
)
MALFORMED = _kind(
    "malformed-request",
    400,
    "Richiesta malformata",
    "Malformed request",
    "The body is not valid JSON or the request cannot be parsed.",
)
NOT_FOUND = _kind(
    "not-found", 404, "Risorsa non trovata", "Resource not found", "Nothing here, or nothing the caller may see."
)
METHOD_NOT_ALLOWED = _kind(
    "method-not-allowed",
    405,
    "Metodo non consentito",
    "Method not allowed",
    "The resource exists but does not accept this method.",
)
UNAUTHENTICATED = _kind(
    "unauthenticated",
    401,
    "Autenticazione richiesta",
    "Authentication required",
    "A valid bearer access token is needed (POST /v1/oauth/token).",
)
INVALID_CLIENT = _kind(
    "invalid-client",
    401,
    "Credenziali client non valide",
    "Invalid client credentials",
    "Client authentication failed (RFC 6749 §5.2 invalid_client).",
)
INVALID_GRANT_REQUEST = _kind(
    "invalid-token-request",
    400,
    "Richiesta di token non valida",
    "Invalid token request",
    "The token request is malformed or asks for a grant or scope not allowed.",
)
FORBIDDEN = _kind(
    "forbidden",
    403,
    "Operazione non consentita",
    "Operation not allowed",
    "The caller's role or scopes do not allow this operation.",
)
CONFLICT = _kind(
    "conflict",
    409,
    "Conflitto di stato",
    "State conflict",
    "The resource is not in a state that allows this operation.",
)
ALREADY_EXISTS = _kind(
    "already-exists",
    409,
    "Risorsa già esistente",
    "Resource already exists",
    "A resource with the same identity already exists.",
)
PRECONDITION_FAILED = _kind(
    "precondition-failed",
    412,
    "Versione non aggiornata",
    "Stale version",
    "If-Match does not match the current ETag: reload and retry.",
)
PRECONDITION_REQUIRED = _kind(
    "precondition-required",
    428,
    "If-Match obbligatorio",
    "If-Match required",
    "Changes to this resource need the If-Match header with its current ETag.",
)
IDEMPOTENCY_MISMATCH = _kind(
    "idempotency-key-reused",
    422,
    "Chiave di idempotenza riutilizzata",
    "Idempotency key reused",
    "The Idempotency-Key was already used with a different request body.",
)
IDEMPOTENCY_INVALID = _kind(
    "idempotency-key-invalid",
    400,
    "Chiave di idempotenza non valida",
    "Invalid idempotency key",
    "Idempotency-Key must be 1-255 visible ASCII characters.",
)
PAYLOAD_TOO_LARGE = _kind(
    "payload-too-large",
    413,
    "Richiesta troppo grande",
    "Payload too large",
    "The body exceeds the documented size limit.",
)
UNSUPPORTED_MEDIA = _kind(
    "unsupported-media-type", 415, "Formato non supportato", "Unsupported media type", "Send application/json."
)
WINDOW_CLOSED = _kind(
    "call-window-closed",
    409,
    "Sportello chiuso",
    "Call window closed",
    "The call does not accept submissions at this instant (server clock).",
)
CHECK_FAILED = _kind(
    "application-not-submittable",
    422,
    "Domanda non presentabile",
    "Application cannot be submitted",
    "The pre-check found blocking problems; see errors[].",
)
CALL_FROZEN = _kind(
    "call-frozen",
    409,
    "Bando congelato",
    "Call rules frozen",
    "The call's window has opened: its rules can only change through an amendment.",
)
CAPACITY_EXHAUSTED = _kind(
    "capacity-exhausted", 409, "Posti esauriti", "No places left", "The session has no free places left."
)
RATE_LIMITED = _kind(
    "rate-limited",
    429,
    "Troppe richieste",
    "Too many requests",
    "Slow down; retry after the number of seconds in Retry-After.",
)
UNAVAILABLE = _kind(
    "service-unavailable",
    503,
    "Servizio momentaneamente non disponibile",
    "Service temporarily unavailable",
    "A dependency (the database) is unreachable; retry shortly. Nothing was changed.",
)
SERVER_BUSY = _kind(
    "server-busy",
    503,
    "Servizio sovraccarico",
    "Server busy",
    "The server holds as many connections as it may; this one was closed unread. Retry after "
    "the seconds in Retry-After. Nothing was changed.",
)
REQUEST_TIMEOUT = _kind(
    "request-timeout",
    408,
    "Richiesta non ricevuta in tempo",
    "Request not received in time",
    "The request's header or body did not arrive within the server's deadline; the "
    "connection was closed and nothing was changed. Send the whole request at once.",
)
INTERNAL = _kind(
    "internal-error",
    500,
    "Errore interno",
    "Internal error",
    "Unexpected error; it has been logged with the request id.",
)
PEER_UNAVAILABLE = _kind(
    "peer-unavailable",
    503,
    "Servizio collegato non disponibile",
    "Upstream service unavailable",
    "Another desk service this request depends on is unreachable or failing; retry shortly. Nothing was changed.",
)
CONFLICT_OF_INTEREST = _kind(
    "conflict-of-interest",
    409,
    "Conflitto di interessi",
    "Conflict of interest",
    "The reviewer declared a conflict of interest with the application's company: they cannot be assigned to it.",
)
DECLARATION_REQUIRED = _kind(
    "declaration-required",
    403,
    "Dichiarazione di assenza di conflitti richiesta",
    "No-conflict declaration required",
    "The reviewer must declare that they have no conflict of interest with the "
    "application (POST /v1/assignments/{id}/declaration) before reading or scoring it.",
)

INVOICE_ALREADY_CLAIMED = _kind(
    "invoice-already-claimed",
    409,
    "Documento già rendicontato",
    "Invoice already claimed",
    "The same document (supplier VAT, number, date) is already on a claim line of this "
    "or another project, of any call, and was not rejected: it can be claimed once.",
)
EVIDENCE_TYPE_NOT_ALLOWED = _kind(
    "evidence-type-not-allowed",
    415,
    "Tipo di file non ammesso",
    "File type not allowed",
    "Evidence files must be PDF, PNG, JPEG or FatturaPA XML, recognised by their "
    "content. Signed invoices (.p7m) are not accepted: upload the XML.",
)
EVIDENCE_TYPE_MISMATCH = _kind(
    "evidence-type-mismatch",
    422,
    "Il file non è del tipo dichiarato",
    "File is not what its type says",
    "The file's content does not match its declared Content-Type or extension.",
)
FORM_UNSIGNED = _kind(
    "form-unsigned",
    422,
    "Domanda non firmata",
    "Application form not signed",
    "The uploaded file is not a PDF carrying a PAdES signature of the application form.",
)
FORM_TAMPERED = _kind(
    "form-tampered",
    422,
    "Domanda modificata dopo la firma",
    "Application form altered after signing",
    "The signature does not match the signed bytes, or the document was changed after it was signed.",
)
FORM_OTHER_DOCUMENT = _kind(
    "form-other-document",
    422,
    "La firma non è sulla domanda prodotta dallo sportello",
    "The signature is not on the desk's form",
    "The signed revision's original bytes are not the application form the desk rendered "
    "(GET /v1/applications/{id}/form.pdf): sign that file, unchanged.",
)
FORM_SIGNATURE_UNTRUSTED = _kind(
    "form-signature-untrusted",
    422,
    "Certificato di firma non valido",
    "Signing certificate not valid",
    "The signing certificate does not chain to a trusted root, or was not valid at the signing time, or the "
    "signing time lies outside the form's life.",
)
FORM_SIGNER_NOT_LEGAL_REPRESENTATIVE = _kind(
    "form-signer-not-legal-representative",
    422,
    "Il firmatario non è il legale rappresentante",
    "Signer is not the legal representative",
    "The fiscal code in the certificate's subject (serialNumber TINIT-...) is not the legal representative's "
    "registered for the company.",
)
FORM_SIGNATURE_LATE = _kind(
    "form-signature-late",
    409,
    "Termine per la domanda firmata scaduto",
    "Deadline for the signed form passed",
    "The signed form arrived after the call's deadline (formalities.signature_days after submission).",
)
STAMP_DUTY_REUSED = _kind(
    "stamp-duty-reused",
    409,
    "Marca da bollo già utilizzata",
    "Stamp duty already used",
    "The stamp duty identifier is already declared on another application: a stamp pays for one only.",
)
SLOT_TAKEN = _kind(
    "slot-taken",
    409,
    "Fascia oraria occupata",
    "Time slot taken",
    "The meeting cannot go in that time slot of the B2B event: the company or the operator already has a "
    "meeting in it, or every table of the slot is taken. Nothing was changed.",
)
MEETING_NOT_HELD = _kind(
    "meeting-not-held",
    409,
    "Incontro non avvenuto",
    "Meeting did not take place",
    "An outcome is recorded only for a confirmed meeting of a B2B event that has ended; a withdrawn or "
    "unconfirmed meeting, or one of an event not yet over, has none. Nothing was changed.",
)
IBAN_HOLDER_MISMATCH = _kind(
    "iban-holder-mismatch",
    422,
    "L'intestatario del conto non è l'impresa beneficiaria",
    "The account holder is not the beneficiary",
    "Payments go only to an account held by the beneficiary company: the holder's VAT "
    "number or fiscal code must be the company's, as registered at intake. Nothing was "
    "changed.",
)
REPORTING_CLOSED = _kind(
    "reporting-closed",
    409,
    "Rendicontazione dei risultati chiusa",
    "Results reporting closed",
    "The project takes no more KPI or milestone reports: it was revoked, or the call's "
    "follow-up years after completion are over. Nothing was changed.",
)
REPORT_PERIOD_NOT_ALLOWED = _kind(
    "report-period-not-allowed",
    422,
    "Periodo non ammesso",
    "Period not allowed",
    "The period is in the future, or outside the project's years and the call's "
    "follow-up years after completion; see errors[]. Nothing was changed.",
)
DE_MINIMIS_CEILING = _kind(
    "de-minimis-ceiling",
    409,
    "Massimale de minimis superato",
    "De minimis ceiling exceeded",
    "The aid would take the single undertaking's de minimis aid in the rolling period (the "
    "aid declared, imported from the state-aid register and granted by the desk) over the "
    "ceiling of Reg. (EU) 2023/2831: the funding must be recomputed. Nothing was changed.",
)


RANKING_NOT_READY = _kind(
    "ranking-not-ready",
    409,
    "Graduatoria non ancora formabile",
    "Ranking not ready",
    "A ranking call is allocated only after its window has closed and every admissible "
    "application has a final merit score or an exclusion with its reason. `pending[]` lists "
    "the applications still waiting (application_id, protocol_number, stage, reason); "
    "`window_closes_at` says when the window closes. Nothing was changed.",
)
PROTOCOL_ORDER_PENDING = _kind(
    "protocol-order-pending",
    409,
    "Domande precedenti non ancora decise",
    "Earlier applications not decided yet",
    "On a first-come call (a sportello) funds are committed strictly in protocol order: "
    "an application cannot be funded while an earlier one is still undecided or not "
    "allocated. `pending[]` lists them. Nothing was changed.",
)


FOUR_EYES = _kind(
    "four-eyes-same-officer",
    403,
    "Serve la conferma di un secondo funzionario",
    "A second officer must confirm",
    "Money decisions (funding approval, decree closing, payment order) are proposed by one officer and "
    "confirmed by a different one: the proposer cannot confirm their own proposal. Nothing was "
    "changed.",
)
CONFIRMATION_PENDING = _kind(
    "confirmation-pending",
    409,
    "Proposta già in attesa di conferma",
    "Proposal already awaiting confirmation",
    "The same money decision is already proposed and waits for a second officer's "
    "confirmation (POST .../confirm); `proposal` describes it. Nothing was changed.",
)
NOTHING_TO_CONFIRM = _kind(
    "nothing-to-confirm",
    409,
    "Nessuna proposta da confermare",
    "Nothing to confirm",
    "No open proposal of this money decision: an officer proposes it first. Nothing was changed.",
)


PAYMENT_NOT_CONFIRMED = _kind(
    "payment-not-confirmed",
    409,
    "Ordine di pagamento non ancora confermato",
    "Payment order not confirmed yet",
    "A payment order needs a second officer's confirmation (POST /v1/payments/{id}/confirm, "
    "by an officer other than whoever ordered it) before it is paid or exported to the "
    "treasury. Nothing was changed.",
)


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")
    code: str = Field(description="Stable machine code of the error.")
    path: str = Field(description="JSON pointer into the request (body), or the parameter's pointer.")
    location: str = Field("body", description="body, query, path or header.")
    message: str = Field(description="Human message in the negotiated language.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


@dataclass
class ProblemError:
    """One entry of errors[] before translation."""

    code: str
    path: str
    message_it: str
    message_en: str
    location: str = "body"
    extra: dict[str, Any] = field(default_factory=dict)

    def render(self, lang: Lang) -> dict[str, Any]:
        out = {
            "code": self.code,
            "path": self.path,
            "location": self.location,
            "message": self.message_it if lang == "it" else self.message_en,
        }
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Localized:
    """A text inside a problem's extension members (`extra`), rendered in the negotiated language."""

    it: str
    en: str


def _localize(value: Any, lang: Lang) -> Any:
    if isinstance(value, Localized):
        return value.it if lang == "it" else value.en
    if isinstance(value, dict):
        return {k: _localize(v, lang) for k, v in value.items()}
    if isinstance(value, list):
        return [_localize(v, lang) for v in value]
    return value


class DeskError(Exception):
    """Base of every error a client may see; knows its kind (status, type) and detail."""

    kind: ProblemKind = INTERNAL

    def __init__(
        self,
        detail_it: str | None = None,
        detail_en: str | None = None,
        *,
        kind: ProblemKind | None = None,
        errors: list[ProblemError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail_en or detail_it or (kind or self.kind).title_en)
        if kind is not None:
            self.kind = kind
        self.detail_it = detail_it
        self.detail_en = detail_en or detail_it
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


class NotFound(DeskError):
    kind = NOT_FOUND


class Conflict(DeskError):
    kind = CONFLICT


class Forbidden(DeskError):
    kind = FORBIDDEN


class Unauthenticated(DeskError):
    kind = UNAUTHENTICATED


class ValidationFailed(DeskError):
    kind = VALIDATION


def problem_body(
    kind: ProblemKind,
    request: Request | None,
    lang: Lang,
    *,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": kind.type_uri,
        "title": kind.title_it if lang == "it" else kind.title_en,
        "status": kind.status,
    }
    if detail:
        body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
        rid = request.scope.get("state", {}).get("request_id")
        if rid:
            body["request_id"] = rid
    if errors is not None:
        body["errors"] = errors
    if extra:  # extension members never override the standard ones
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _lang(request: Request) -> Lang:
    return pick_language(request.headers.get("accept-language"))


def loc_to_pointer(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str]:
    """(`body`, `a`, 0, `b`) -> ("body", "/a/0/b"), escaped per RFC 6901."""
    parts = list(loc)
    location = str(parts.pop(0)) if parts and parts[0] in ("body", "query", "path", "header", "cookie") else "body"
    segs = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return location, "/" + "/".join(segs) if segs else ""


def _validation_errors(exc: RequestValidationError, lang: Lang) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        location, path = loc_to_pointer(err.get("loc", ()))
        code = err.get("type", "value_error")
        ctx = dict(err.get("ctx") or {})
        if code == "value_error" and "error" in ctx:
            ctx["error"] = str(ctx["error"])
        out.append(
            {
                "code": code,
                "path": path,
                "location": location,
                "message": validation_message(code, ctx, err.get("msg", ""), lang),
            }
        )
    return out


async def desk_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DeskError)
    lang = _lang(request)
    errors = [e.render(lang) for e in exc.errors] if exc.errors is not None else None
    detail = exc.detail_it if lang == "it" else exc.detail_en
    return problem_response(
        problem_body(exc.kind, request, lang, detail=detail, errors=errors, extra=_localize(exc.extra, lang)),
        exc.headers,
    )


async def validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    lang = _lang(request)
    errors = _validation_errors(exc, lang)
    if any(e["code"] in ("json_invalid",) for e in errors):
        return problem_response(problem_body(MALFORMED, request, lang, errors=errors))
    return problem_response(problem_body(VALIDATION, request, lang, errors=errors))


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    lang = _lang(request)
    kind = {
        404: NOT_FOUND,
        405: METHOD_NOT_ALLOWED,
        401: UNAUTHENTICATED,
        403: FORBIDDEN,
        413: PAYLOAD_TOO_LARGE,
        415: UNSUPPORTED_MEDIA,
        400: MALFORMED,
    }.get(exc.status_code)
    if kind is None:
        kind = ProblemKind(f"http-{exc.status_code}", exc.status_code, str(exc.detail), str(exc.detail), "")
    return problem_response(problem_body(kind, request, lang), dict(exc.headers or {}))


async def database_error_handler(request: Request, exc: Exception) -> Response:
    if _is_connection_error(exc):
        log.warning("database unavailable", error=str(exc))
        return problem_response(problem_body(UNAVAILABLE, request, _lang(request)), {"Retry-After": "5"})
    return await unhandled_handler(request, exc)


def _is_connection_error(exc: BaseException) -> bool:
    import asyncpg

    if isinstance(exc, (InterfaceError, OperationalError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None) or exc
    return isinstance(
        orig,
        (
            OSError,
            ConnectionError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.AdminShutdownError,
        ),
    )


async def unhandled_handler(request: Request, exc: Exception) -> Response:
    if _is_connection_error(exc):
        return problem_response(problem_body(UNAVAILABLE, request, _lang(request)), {"Retry-After": "5"})
    log.exception("unhandled error", path=request.url.path)
    return problem_response(problem_body(INTERNAL, request, _lang(request)))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DeskError, desk_error_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)
    app.add_exception_handler(OSError, database_error_handler)
    app.add_exception_handler(Exception, unhandled_handler)
