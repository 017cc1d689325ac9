"""The versioned rules document of a call ("bando"), as validated Pydantic models.

One document per call version: it is stored as JSONB by the intake service and shipped as a YAML
file for the seeded call (``calls/verso-nuovi-mercati-2025.yaml``). Once a call opens, its rules
are frozen; an amendment is a new version. Every model is frozen and refuses unknown keys.

Conventions:

* every field named ``percent``, ``*_share``, ``*_rate``, ``max_intensity`` or ``*_threshold`` is a
  **fraction** in [0, 1] (``"0.20"`` means 20 %);
* money is ``Decimal`` euros with at most two decimals, serialised as a string in JSON mode;
* instants are timezone-aware.
"""

from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pycountry
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from shared.domain.money import CENT, cents_ok

SizeClass = Literal["micro", "small", "medium", "large"]

#: article keys that check messages look up in ``CallRules.articles``.
REQUIRED_ARTICLE_KEYS: tuple[str, ...] = ("applicants", "expenses", "aid", "projects", "submission")

_ATECO_SECTIONS = frozenset("ABCDEFGHIJKLMNOPQRSTU")


def _money(d: Decimal) -> Decimal:
    if not cents_ok(d):
        raise ValueError(f"{d} is not an amount in euros with at most two decimals")
    return d.quantize(CENT)


Money = Annotated[Decimal, Field(ge=0), AfterValidator(_money)]
Rate = Annotated[Decimal, Field(ge=0, le=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LegalBasis(_Frozen):
    decree: str = Field(min_length=1)
    decree_date: date
    programme: str = Field(min_length=1)
    action: str = Field(min_length=1)
    managing_body: str = Field(min_length=1)


class Window(_Frozen):
    opens_at: AwareDatetime
    closes_at: AwareDatetime

    @model_validator(mode="after")
    def _opens_before_closes(self) -> "Window":
        if self.opens_at >= self.closes_at:
            raise ValueError("window.opens_at must be before window.closes_at")
        return self

    def is_open(self, at: datetime) -> bool:
        """True if the aware instant ``at`` is within [opens_at, closes_at]."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("at must be timezone-aware")
        return self.opens_at <= at <= self.closes_at


class Eligibility(_Frozen):
    sizes: list[SizeClass] = Field(min_length=1)
    min_approved_financial_statements: int = Field(ge=0, le=100)
    lombardy_site_required: bool
    lombardy_site_commitment_allowed: bool
    max_previous_year_export_share: Rate
    excluded_ateco_sections: list[str]
    excluded_ateco_prefixes: list[str]
    article: str

    @field_validator("excluded_ateco_sections")
    @classmethod
    def _sections(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in _ATECO_SECTIONS]
        if bad:
            raise ValueError(f"unknown ATECO sections: {bad}")
        return v

    @field_validator("excluded_ateco_prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        for p in v:
            digits = p.replace(".", "")
            if not digits.isdigit() or len(digits) < 2:
                raise ValueError(f"ATECO prefix {p!r} must be at least a two-digit division like '12' or '46.35'")
        return v


class CategoryCap(_Frozen):
    """The category may not exceed ``percent`` of the sum of the categories in ``of`` (``base: categories``),
    or of the eligible total of the project, the category itself and the flat rates included
    (``base: eligible_total``; ``of`` is then empty)."""

    percent: Rate
    base: Literal["categories", "eligible_total"] = "categories"
    of: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _base(self) -> "CategoryCap":
        if self.base == "categories" and not self.of:
            raise ValueError("a cap on categories lists them in `of`")
        if self.base == "eligible_total" and self.of:
            raise ValueError("a cap on the eligible total lists no categories in `of`")
        return self


class FlatRate(_Frozen):
    """The category is computed, not itemised: ``percent`` of the sum of the categories in ``base``."""

    percent: Rate
    base: list[str] = Field(min_length=1)


class ExpenseCategory(_Frozen):
    code: str = Field(min_length=1)
    name_it: str
    name_en: str
    kind: Literal["direct", "flat_rate"]
    cap: CategoryCap | None = None
    flat_rate: FlatRate | None = None
    optional: bool = False
    examples_it: list[str] = Field(default_factory=list)
    article: str

    @model_validator(mode="after")
    def _kind_matches(self) -> "ExpenseCategory":
        if self.kind == "flat_rate" and self.flat_rate is None:
            raise ValueError(f"category {self.code}: a flat_rate category needs its flat_rate")
        if self.kind == "direct" and self.flat_rate is not None:
            raise ValueError(f"category {self.code}: a direct category has no flat_rate")
        if self.kind == "flat_rate" and self.cap is not None:
            raise ValueError(f"category {self.code}: a flat_rate category has no cap")
        return self


class EligibleCost(_Frozen):
    min: Money
    max: Money

    @model_validator(mode="after")
    def _ordered(self) -> "EligibleCost":
        if self.min > self.max:
            raise ValueError("eligible_cost.min must not exceed eligible_cost.max")
        return self


class GrantTerms(_Frozen):
    percent: Rate
    cap: Money


class LoanTerms(_Frozen):
    percent: Rate
    cap: Money
    annual_rate: Rate
    min_years: int = Field(ge=1, le=100)
    max_years: int = Field(ge=1, le=100)
    grace_months: int = Field(ge=0, le=1200)

    @model_validator(mode="after")
    def _years(self) -> "LoanTerms":
        if self.min_years > self.max_years:
            raise ValueError("aid.loan.min_years must not exceed aid.loan.max_years")
        if self.grace_months >= self.min_years * 12:
            raise ValueError("aid.loan.grace_months must be shorter than the shortest loan")
        return self


class Aid(_Frozen):
    max_intensity: Rate
    grant: GrantTerms
    loan: LoanTerms

    @model_validator(mode="after")
    def _intensity(self) -> "Aid":
        if self.grant.percent + self.loan.percent > self.max_intensity:
            raise ValueError(
                f"aid.grant.percent + aid.loan.percent = {self.grant.percent + self.loan.percent} "
                f"exceeds aid.max_intensity = {self.max_intensity}"
            )
        return self


class CreditClass(_Frozen):
    """``loan_cap_share`` multiplies the loan cap for this class; 0 means no loan (class excluded)."""

    class_code: str = Field(min_length=1)
    loan_cap_share: Rate


class CreditScoring(_Frozen):
    classes: list[CreditClass] = Field(min_length=1)

    @field_validator("classes")
    @classmethod
    def _unique(cls, v: list[CreditClass]) -> list[CreditClass]:
        codes = [c.class_code for c in v]
        if len(set(codes)) != len(codes):
            raise ValueError("credit_scoring.classes: class codes must be unique")
        return v


def _country(code: str) -> str:
    if len(code) != 2 or not code.isupper() or pycountry.countries.get(alpha_2=code) is None:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


CountryCode = Annotated[str, AfterValidator(_country)]


class Markets(_Frozen):
    require_new_markets: bool
    lookback_years: int = Field(ge=1, le=100)
    min_share_new_or_emerging: Rate
    emerging_countries: list[CountryCode]

    @field_validator("emerging_countries")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("markets.emerging_countries: duplicated country")
        return v


class Project(_Frozen):
    duration_months: int = Field(ge=1, le=1200)
    extension_months: int = Field(ge=0, le=1200)


class ScoringCriterion(_Frozen):
    code: str = Field(min_length=1)
    name_it: str
    name_en: str
    max_points: int = Field(gt=0, le=1_000_000)


class Scoring(_Frozen):
    criteria: list[ScoringCriterion] = Field(min_length=1)
    pass_mark: int = Field(ge=0, le=1_000_000)

    @property
    def max_total(self) -> int:
        return sum(c.max_points for c in self.criteria)

    @model_validator(mode="after")
    def _grid(self) -> "Scoring":
        codes = [c.code for c in self.criteria]
        if len(set(codes)) != len(codes):
            raise ValueError("scoring.criteria: codes must be unique")
        if self.pass_mark > self.max_total:
            raise ValueError(f"scoring.pass_mark {self.pass_mark} exceeds the grid total {self.max_total}")
        return self


class Reporting(_Frozen):
    advance_percent: Rate
    revocation_threshold: Rate
    claim_tolerance_percent: Rate


class FollowUpKpi(_Frozen):
    """A result the beneficiary reports after completion, once for each year listed in ``years_after``."""

    name: str = Field(min_length=1, max_length=300)
    name_en: str = Field(min_length=1)
    unit: str
    years_after: list[Annotated[int, Field(ge=1, le=10)]] = Field(min_length=1)


class Results(_Frozen):
    """How long KPI and milestone reporting stays open after completion, and what is reported then."""

    follow_up_years: int = Field(0, ge=0, le=10)
    follow_up_kpis: list[FollowUpKpi] = Field(default_factory=list)

    @model_validator(mode="after")
    def _within(self) -> "Results":
        for k in self.follow_up_kpis:
            if any(not 1 <= y <= self.follow_up_years for y in k.years_after):
                raise ValueError(f"results.follow_up_kpis[{k.name}].years_after must lie in 1..follow_up_years")
        return self


RevocationReasonCode = Literal[
    "below_threshold", "deadline_missed", "site_never_opened", "false_declaration", "renunciation", "obligations_broken"
]


class RevocationReason(_Frozen):
    """A catalogued reason to revoke the aid, with the article (of the call or of the law) it rests on."""

    code: RevocationReasonCode
    article: str = Field(min_length=1)
    text_it: str = Field(min_length=1)
    text_en: str = Field(min_length=1)
    loan_early_repayment: bool = Field(
        True, description="Whether the loan's outstanding capital falls due at once (early repayment)."
    )


class DeMinimis(_Frozen):
    regulation: str
    ceiling: Money
    period_years: int = Field(ge=1, le=100)
    reference_base_rate: Rate


class NetworkRules(_Frozen):
    """Business networks (rete d'impresa): a lead company applies with member companies, each registered at the
    desk with its own expense lines, admissibility checks, de minimis headroom and aid. ``min_members`` and
    ``max_members`` count the members besides the lead; ``max_eligible_total`` caps the eligible expenses of the
    whole network (lead + members), beyond which the application is refused; ``max_total_aid`` (optional) caps
    the aid of the whole network the same way."""

    min_members: int = Field(ge=1, le=50)
    max_members: int = Field(ge=1, le=50)
    max_eligible_total: Money
    max_total_aid: Money | None = None

    @model_validator(mode="after")
    def _bounds(self) -> "NetworkRules":
        if self.min_members > self.max_members:
            raise ValueError("network.min_members must not exceed network.max_members")
        return self


class Formalities(_Frozen):
    """The application's formalities: the form the legal representative signs and the stamp duty it bears."""

    signature_days: int = Field(
        10,
        ge=0,
        le=365,
        description="Days after the submission instant within which the form signed by the legal representative "
        "(PAdES, qualified signature) is uploaded; 0: the signed form must arrive at once (no grace).",
    )
    stamp_duty: Money = Field(Decimal("16.00"), description="The stamp duty (marca da bollo) the application bears.")
    stamp_duty_required: bool = Field(
        False,
        description="Whether the stamp duty's identifier and issue date must be declared before submission "
        "(a submit without it is refused, on every submit path).",
    )
    signed_form_required: bool = Field(
        False,
        description="Whether admissibility waits for the form signed by the legal representative: until it is "
        "accepted the evaluation stays `awaiting_signature`; past `signature_days` without it the application "
        "is not admissible.",
    )


class Accompaniment(_Frozen):
    """Expert accompaniment the call offers its applicants (design, monitoring and reporting of the plan)."""

    max_hours_per_company: Decimal = Field(
        gt=0,
        max_digits=6,
        decimal_places=2,
        description="Hours of accompaniment sessions one company may receive under the call, over all its "
        "engagements and experts.",
    )


class Assumption(_Frozen):
    """A value the published sources do not give: to be confirmed."""

    path: str = Field(min_length=1)
    note: str = Field(min_length=1)


class CallRules(_Frozen):
    schema_version: Literal[1]
    code: str = Field(min_length=1)
    title: str = Field(min_length=1)
    legal_basis: LegalBasis
    timezone: str = "Europe/Rome"
    window: Window
    budget_total: Money
    procedure: Literal["first_come", "ranking"]
    partial_funding_of_last: bool
    eligibility: Eligibility
    expense_categories: list[ExpenseCategory] = Field(min_length=1)
    not_eligible: list[str]
    eligible_cost: EligibleCost
    aid: Aid
    credit_scoring: CreditScoring
    markets: Markets
    project: Project
    scoring: Scoring
    reporting: Reporting
    de_minimis: DeMinimis
    results: Results = Field(default_factory=Results)
    network: NetworkRules | None = Field(
        None, description="Business networks; null: the call takes no network application."
    )
    revocation_reasons: list[RevocationReason] = Field(default_factory=list)
    formalities: Formalities = Field(default_factory=Formalities)
    accompaniment: Accompaniment | None = Field(
        None, description="Expert accompaniment; null: the call offers none (requests are refused)."
    )
    articles: dict[str, str]
    assumptions: list[Assumption]

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {v!r}") from exc
        return v

    @field_validator("articles")
    @classmethod
    def _articles(cls, v: dict[str, str]) -> dict[str, str]:
        missing = [k for k in REQUIRED_ARTICLE_KEYS if k not in v]
        if missing:
            raise ValueError(f"articles: missing keys {missing}")
        return v

    @field_validator("revocation_reasons")
    @classmethod
    def _unique_reasons(cls, v: list[RevocationReason]) -> list[RevocationReason]:
        codes = [r.code for r in v]
        if len(set(codes)) != len(codes):
            raise ValueError("revocation_reasons: codes must be unique")
        return v

    def revocation_reason(self, code: str) -> RevocationReason | None:
        return next((r for r in self.revocation_reasons if r.code == code), None)

    @field_validator("assumptions")
    @classmethod
    def _assumption_paths(cls, v: list[Assumption]) -> list[Assumption]:
        for a in v:
            head = a.path.split(".")[0].split("[")[0]
            if head not in cls.model_fields:
                raise ValueError(f"assumptions: path {a.path!r} does not start with a field of the rules")
        return v

    @model_validator(mode="after")
    def _categories(self) -> "CallRules":
        codes = [c.code for c in self.expense_categories]
        if len(set(codes)) != len(codes):
            raise ValueError("expense_categories: codes must be unique")
        known = set(codes)
        direct = {c.code for c in self.expense_categories if c.kind == "direct"}
        for c in self.expense_categories:
            if c.cap is not None:
                unknown = [b for b in c.cap.of if b not in known]
                if unknown:
                    raise ValueError(f"expense_categories[{c.code}].cap.of: unknown categories {unknown}")
                if c.code in c.cap.of or not set(c.cap.of) <= direct:
                    raise ValueError(f"expense_categories[{c.code}].cap.of must list other direct categories")
            if c.flat_rate is not None:
                unknown = [b for b in c.flat_rate.base if b not in known]
                if unknown:
                    raise ValueError(f"expense_categories[{c.code}].flat_rate.base: unknown categories {unknown}")
                if c.code in c.flat_rate.base:
                    raise ValueError(f"expense_categories[{c.code}].flat_rate.base must not include itself")
        # Both orders raise on a cycle.
        self.cap_order()
        self.flat_rate_order()
        return self

    # ----- helpers -----------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    # Worked out once per rules object (the rules are frozen): a submit's pre-check looks up a category for
    # every expense line and orders the caps and flat rates each time it computes the eligible amount.
    @cached_property
    def _categories_by_code(self) -> dict[str, ExpenseCategory]:
        return {c.code: c for c in self.expense_categories}

    def category(self, code: str) -> ExpenseCategory:
        """The category with this code; ``KeyError`` if the call has none."""
        return self._categories_by_code[code]

    def has_category(self, code: str) -> bool:
        return code in self._categories_by_code

    @property
    def category_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.expense_categories)

    @property
    def direct_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.expense_categories if c.kind == "direct")

    @property
    def flat_rate_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.expense_categories if c.kind == "flat_rate")

    def article(self, kind: str) -> str:
        """The call article quoted in messages about ``kind`` ("applicants", "expenses", ...)."""
        return self.articles.get(kind, "")

    def loan_cap_share(self, class_code: str) -> Decimal:
        """The loan cap share of a credit-scoring class; ``KeyError`` if the class is unknown."""
        for c in self.credit_scoring.classes:
            if c.class_code == class_code:
                return c.loan_cap_share
        raise KeyError(class_code)

    def is_emerging(self, country: str) -> bool:
        return country in self.markets.emerging_countries

    def cap_order(self) -> tuple[str, ...]:
        """Categories capped on other categories, ordered so that each cap's base is final before it is
        applied (caps on the eligible total come after all of them: ``total_cap_codes``)."""
        return self._cap_order

    @cached_property
    def _cap_order(self) -> tuple[str, ...]:
        on_categories = {c.code for c in self.expense_categories if c.cap is not None and c.cap.base == "categories"}
        return _topological(
            {
                c.code: [b for b in c.cap.of if b in on_categories]
                for c in self.expense_categories
                if c.cap is not None and c.cap.base == "categories"
            },
            "cap",
        )

    @property
    def total_cap_codes(self) -> tuple[str, ...]:
        """Categories capped at a share of the eligible total."""
        return tuple(c.code for c in self.expense_categories if c.cap is not None and c.cap.base == "eligible_total")

    def flat_rate_order(self) -> tuple[str, ...]:
        """Flat-rate categories ordered so that each one's base is computed before it."""
        return self._flat_rate_order

    @cached_property
    def _flat_rate_order(self) -> tuple[str, ...]:
        return _topological(
            {
                c.code: [b for b in c.flat_rate.base if self.category(b).kind == "flat_rate"]
                for c in self.expense_categories
                if c.flat_rate is not None
            },
            "flat_rate",
        )


def _topological(deps: dict[str, list[str]], what: str) -> tuple[str, ...]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(code: str) -> None:
        if state.get(code) == 2:
            return
        if state.get(code) == 1:
            raise ValueError(f"expense_categories: cyclic {what} bases through {code!r}")
        state[code] = 1
        for d in deps.get(code, []):
            visit(d)
        state[code] = 2
        order.append(code)

    for code in deps:
        visit(code)
    return tuple(order)
