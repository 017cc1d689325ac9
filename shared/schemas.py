"""API field types shared by every service: money as strings, ISO countries, Italian identifiers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.it import codicefiscale, iva

from shared.i18n import stdnum_reason

# What PostgreSQL's integer columns hold: every integer a client sends is bounded by its column's type, so an
# over-large number is a 422 at the edge instead of an out-of-range error (500) in the database.
INT32_MAX = 2_147_483_647
BIGINT_MAX = 9_223_372_036_854_775_807


class ApiModel(BaseModel):
    """Requests refuse unknown fields (mass assignment); responses are plain."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OutModel(BaseModel):
    """Responses: every instant in UTC ("...Z"), whatever zone it was declared in."""

    model_config = ConfigDict(from_attributes=True)

    @model_validator(mode="after")
    def _utc(self) -> Any:
        # A validator, not a serializer: a wrapping serializer would erase every field's type from the
        # OpenAPI schema, and generated clients would get untyped responses.
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset():
                object.__setattr__(self, name, value.astimezone(UTC))
        return self


# Money on the wire: a JSON string, digits with at most two decimals after a dot ("1234.50", "7", "-3.5"). The
# schema says exactly what validation accepts: no numbers, exponents, signs other than "-", separators or spaces.
MONEY_PATTERN = r"^-?\d+(\.\d{1,2})?$"
MONEY_RE = re.compile(MONEY_PATTERN)
_MANY_PLACES_RE = re.compile(r"-?\d+\.\d{3,}")
# Any other decimal (rates, scores, shares) is a string too, in plain decimal notation.
DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"
MONEY_SCHEMA: dict[str, Any] = {"type": "string", "pattern": MONEY_PATTERN, "examples": ["12500.00"]}
DECIMAL_SCHEMA: dict[str, Any] = {"type": "string", "pattern": DECIMAL_PATTERN}


def _money_string(v: Any) -> Any:
    if isinstance(v, (float, int)) and not isinstance(v, bool):
        raise PydanticCustomError("money_not_string", 'Amounts must be strings such as "1234.50"')
    if isinstance(v, str) and not MONEY_RE.fullmatch(v):
        if _MANY_PLACES_RE.fullmatch(v):
            raise PydanticCustomError(
                "decimal_max_places",
                "Decimal input should have no more than {decimal_places} decimal places",
                {"decimal_places": 2},
            )
        raise PydanticCustomError("decimal_parsing", "Input should be a valid decimal")
    return v


def _finite(v: Decimal) -> Decimal:
    if not v.is_finite():
        raise PydanticCustomError("decimal_parsing", "Input should be a finite decimal")
    return v


_MONEY: dict[str, Any] = {"max_digits": 14, "decimal_places": 2}
Money = Annotated[
    Decimal,
    BeforeValidator(_money_string),
    AfterValidator(_finite),
    Field(ge=0, **_MONEY),
    WithJsonSchema({**MONEY_SCHEMA, "description": "An amount in euro, at least 0."}),
]
PositiveMoney = Annotated[
    Decimal,
    BeforeValidator(_money_string),
    AfterValidator(_finite),
    Field(gt=0, **_MONEY),
    WithJsonSchema({**MONEY_SCHEMA, "description": "An amount in euro, more than 0."}),
]
# An amount the desk answers with (euro, to the cent), typed as the inputs are.
Amount = Annotated[Decimal, WithJsonSchema(MONEY_SCHEMA)]


def decimals_as_strings(node: Any) -> Any:
    """OpenAPI post-processing: pydantic types a plain `Decimal` as "number or string", but the desk answers
    every decimal as a string and refuses numbers for amounts; say so (a string in decimal notation)."""
    if isinstance(node, list):
        return [decimals_as_strings(n) for n in node]
    if not isinstance(node, dict):
        return node
    any_of = node.get("anyOf")
    number = [a for a in any_of or () if isinstance(a, dict) and a.get("type") == "number"]
    if isinstance(any_of, list) and number and {"type": "string"} in any_of:
        rest = [a for a in any_of if a != {"type": "string"} and a not in number]
        node = {k: v for k, v in node.items() if k != "anyOf"}
        if rest:
            node["anyOf"] = [dict(DECIMAL_SCHEMA), *rest]
        else:
            node.update(DECIMAL_SCHEMA)
    return {k: decimals_as_strings(v) for k, v in node.items()}


def _country(v: Any) -> Any:
    if not isinstance(v, str) or len(v) != 2 or pycountry.countries.get(alpha_2=v.upper()) is None:
        raise PydanticCustomError("country_unknown", "Unknown country {value}", {"value": v})
    return v.upper()


CountryCode = Annotated[str, BeforeValidator(_country), Field(description="ISO 3166-1 alpha-2", examples=["VN"])]


def _vat(v: Any) -> Any:
    if not isinstance(v, str):
        raise PydanticCustomError("vat_number_invalid", "Invalid VAT number: {reason}", {"reason": "not_a_string"})
    try:
        return iva.validate(v.removeprefix("IT").removeprefix("it"))
    except StdnumError as e:
        raise PydanticCustomError(
            "vat_number_invalid", "Invalid VAT number: {reason}", {"reason": stdnum_reason(e)}
        ) from None


VatNumber = Annotated[
    str,
    BeforeValidator(_vat),
    Field(description="Partita IVA (11 digits, check digit verified)", examples=["01234567897"]),
]


def _fiscal_code(v: Any) -> Any:
    if not isinstance(v, str):
        raise PydanticCustomError("fiscal_code_invalid", "Invalid fiscal code: {reason}", {"reason": "not_a_string"})
    try:
        return codicefiscale.validate(v)
    except StdnumError as e:
        raise PydanticCustomError(
            "fiscal_code_invalid", "Invalid fiscal code: {reason}", {"reason": stdnum_reason(e)}
        ) from None


FiscalCode = Annotated[
    str, BeforeValidator(_fiscal_code), Field(description="Codice fiscale (16 characters, or 11 digits for companies)")
]

# ISTAT two-letter codes of the Italian provinces; the twelve of Lombardy are marked.
LOMBARDY_PROVINCES = frozenset({"BG", "BS", "CO", "CR", "LC", "LO", "MN", "MI", "MB", "PV", "SO", "VA"})
ITALIAN_PROVINCES = LOMBARDY_PROVINCES | frozenset(
    """
AG AL AN AO AP AQ AR AT AV BA BI BL BN BO BR BT BZ CA CB CE CH CL CN CS CT CZ EN FC FE FG FI FM FR GE GO GR IM IS
KR LE LI LT LU MC ME MO MS MT NA NO NU OR PA PC PD PE PG PI PN PO PR PT PU PZ RA RC RE RG RI RM RN RO SA SI SP SR
SS SU SV TA TE TN TO TP TR TS TV UD VB VC VE VI VR VT VV""".split()
)


def _province(v: Any) -> Any:
    if not isinstance(v, str) or v.upper() not in ITALIAN_PROVINCES:
        raise PydanticCustomError("province_unknown", "Unknown province {value}", {"value": v})
    return v.upper()


Province = Annotated[str, BeforeValidator(_province), Field(description="Italian province code", examples=["MI"])]


VerdictOutcome = Literal["pass", "fail", "needs_review", "deferred", "warning"]


class VerdictItem(OutModel):
    """One rule's verdict, the same shape wherever the desk checks something (intake's pre-check, evaluation's
    admissibility, monitoring's claim checks)."""

    code: str = Field(description="The rule, a stable English code.")
    outcome: VerdictOutcome = Field(
        description="pass; fail; needs_review (an officer decides); deferred (decided later in the procedure); "
        "warning (worth knowing, not a refusal)."
    )
    blocking: bool = Field(description="Whether it stops the step it was checked for (submit, admission, payment).")
    path: str | None = Field(None, description="JSON Pointer to what it is about; null for the whole object.")
    article: str | None = Field(None, description="The call article the rule applies, where there is one.")
    message: str = Field(description="In the language negotiated with Accept-Language (Italian by default).")
    message_it: str
    message_en: str
    details: dict[str, Any] = Field(default_factory=dict, description="The figures behind the verdict, if any.")
