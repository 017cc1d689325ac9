"""Use cases of the statistics: the view of a call grouped by one dimension (for officers, auditors and
services), the public view (groups of fewer than `MIN_GROUP_SIZE` applications suppressed), and the figures the
charts draw.

Counts and sums come from one aggregate statement (see `repository`); this module folds its rows into the
groups asked for (hours into Europe/Rome hours and days, lists of markets into markets and continents), exactly,
in Decimal. The call's budget comes from intake (`IntakeClient.get_call`, cached per call version in
`services.monitoring.peers`): the figure of the version in force, the one evaluation's ledger applies. Statistics
keep no budget of their own; on `call.amended` the cached version is forgotten, so the next view reads the new one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pycountry
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitoring.charts import Bar, bar_chart, format_int, time_series
from services.monitoring.inbox.registry import InboxContext, register_handler
from services.monitoring.peers import call_detail, forget_call
from services.monitoring.stats import repository
from services.monitoring.stats.cache import StatsCache
from shared.clients.intake import IntakeClient
from shared.contracts.calls import CallDetail
from shared.domain.continents import CONTINENTS
from shared.domain.money import ZERO, eur_it
from shared.events.catalogue import Envelope

ROME = ZoneInfo("Europe/Rome")
MIN_GROUP_SIZE = 3
"""Public statistics show no group of fewer applications than this (nor an export growth of fewer
beneficiaries): a group of one or two would point at identifiable companies."""

PROVINCE_NAMES = {
    "BG": "Bergamo",
    "BS": "Brescia",
    "CO": "Como",
    "CR": "Cremona",
    "LC": "Lecco",
    "LO": "Lodi",
    "MN": "Mantova",
    "MI": "Milano",
    "MB": "Monza e Brianza",
    "PV": "Pavia",
    "SO": "Sondrio",
    "VA": "Varese",
}
LOMBARDY = tuple(PROVINCE_NAMES)

_CONTINENT_NAMES: dict[str, str] = {code: names[0] for code, names in CONTINENTS.items()}
#: dimensions whose groups partition the applications (each in exactly one group): the totals minus the shown
#: groups give the suppressed ones together, so suppression must leave at least MIN_GROUP_SIZE hidden.
PARTITIONS = frozenset({"province", "ateco_section", "size_class", "hour", "day"})


@dataclass
class Agg:
    applications: int = 0
    admitted: int = 0
    funded: int = 0
    committed: Decimal = ZERO
    paid: Decimal = ZERO
    revoked: int = 0
    growth_n: int = 0
    growth_sum: Decimal = ZERO

    def add(self, other: Any) -> None:
        self.applications += other.applications
        self.admitted += other.admitted
        self.funded += other.funded
        self.committed += Decimal(other.committed)
        self.paid += Decimal(other.paid)
        self.revoked += other.revoked
        self.growth_n += other.growth_n
        self.growth_sum += Decimal(other.growth_sum)

    def figures(self, *, min_growth: int = 1) -> dict[str, Any]:
        growth = None
        if self.growth_n >= max(min_growth, 1):
            growth = (self.growth_sum / self.growth_n).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        return {
            "applications": self.applications,
            "admitted": self.admitted,
            "funded": self.funded,
            "committed": self.committed,
            "paid": self.paid,
            "revoked": self.revoked,
            "export_growth_beneficiaries": self.growth_n,
            "export_growth_points": growth,
        }


@dataclass
class View:
    """A call's statistics before they are shaped for a reader: the totals and the groups (key -> figures)."""

    call: CallDetail
    group_by: str | None
    totals: Agg
    groups: dict[str | None, Agg] = field(default_factory=dict)
    computed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def ordered(self) -> list[tuple[str | None, Agg]]:
        items = list(self.groups.items())
        if self.group_by in ("market", "continent"):
            return sorted(items, key=lambda kv: (-kv[1].applications, kv[0] or "~"))
        return sorted(items, key=lambda kv: kv[0] or "~")


def _agg(row: Any) -> Agg:
    return Agg(
        int(row.applications),
        int(row.admitted),
        int(row.funded),
        Decimal(row.committed),
        Decimal(row.paid),
        int(row.revoked),
        int(row.growth_n),
        Decimal(row.growth_sum),
    )


def _key(group_by: str | None, key: Any) -> str | None:
    """A group's key as the views show it (an hour in Europe/Rome, a day as its ISO date), from the maintained
    groups (text) or from the from-scratch aggregate (an instant, a date)."""
    if key is None:
        return None
    if group_by == "hour":
        instant = datetime.fromisoformat(key) if isinstance(key, str) else key
        return str(instant.astimezone(ROME).isoformat())
    if group_by == "day":
        return key if isinstance(key, str) else str(key.isoformat())
    return str(key)


def fold(rows: Sequence[Any], group_by: str | None) -> tuple[Agg, dict[str | None, Agg]]:
    """The totals and the groups of the aggregate's rows (the database did the folding)."""
    totals = Agg()
    groups: dict[str | None, Agg] = {}
    for row in rows:
        if row.is_total:
            totals = _agg(row)
        else:
            groups[_key(group_by, row.key)] = _agg(row)
    return totals, groups


def stats_cache(app_state: Any) -> StatsCache:
    cache: StatsCache | None = getattr(app_state, "stats_cache", None)
    if cache is None:
        s = app_state.settings
        cache = StatsCache(
            max_age=getattr(s, "stats_cache_seconds", 0.0), min_fresh=getattr(s, "stats_cache_min_fresh_seconds", 0.0)
        )
        app_state.stats_cache = cache
    return cache


async def call_view(
    *,
    session: AsyncSession,
    intake: IntakeClient,
    call_id: uuid.UUID,
    group_by: str | None,
    cache: StatsCache | None = None,
) -> View:
    """The call's statistics by `group_by`, from the cache while fresh (see `cache`)."""
    call = await call_detail(intake, call_id)

    async def compute() -> View:
        totals, groups = fold(await repository.aggregate(session, call_id, group_by), group_by)
        return View(call, group_by, totals, groups, datetime.now(UTC))

    if cache is None or not cache.enabled:
        return await compute()
    view = await cache.get((call_id, group_by), await repository.facts_changes(session), compute)
    view.call = call
    return view


async def on_call_amended(ctx: InboxContext, event: Envelope) -> None:
    """The call's budget (or window) changed at intake: the next view reads the version in force."""
    forget_call(uuid.UUID(str(event.data["call_id"])))


register_handler("call.amended", on_call_amended)


def label_of(group_by: str | None, key: str | None) -> str | None:
    if key is None:
        return None
    if group_by == "province":
        return PROVINCE_NAMES.get(key, key)
    if group_by == "market":
        country = pycountry.countries.get(alpha_2=key)
        return str(country.name) if country is not None else key
    if group_by == "continent":
        return _CONTINENT_NAMES.get(key, key)
    return key


def _call_budget(call: CallDetail, committed: Decimal) -> dict[str, Any]:
    budget = call.budget_total
    percent = (committed * 100 / budget).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN) if budget else ZERO
    return {
        "id": call.id,
        "code": call.code,
        "title": call.title,
        "budget": budget,
        "committed": committed,
        "available": budget - committed,
        "committed_percent": percent,
    }


def stats_out(view: View) -> dict[str, Any]:
    return {
        "call": _call_budget(view.call, view.totals.committed),
        "group_by": view.group_by,
        "totals": view.totals.figures(),
        "groups": [{"key": k, "label": label_of(view.group_by, k), **a.figures()} for k, a in view.ordered()],
        "generated_at": view.computed_at,
    }


def suppressed_keys(
    groups: Iterable[tuple[str | None, Agg]], *, partition: bool, minimum: int = MIN_GROUP_SIZE
) -> set[str | None]:
    """The groups the public must not see: those under `minimum` applications; and, when the groups partition
    the totals (so that totals - shown = hidden), the smallest others too until what is hidden holds at least
    `minimum` applications (or everything is hidden)."""
    items = sorted(groups, key=lambda kv: (kv[1].applications, kv[0] or ""))
    hidden = {k for k, a in items if a.applications < minimum}
    if partition and hidden:
        hidden_total = sum(a.applications for k, a in items if k in hidden)
        for k, a in items:
            if hidden_total >= minimum:
                break
            if k not in hidden:
                hidden.add(k)
                hidden_total += a.applications
    return hidden


def public_stats_out(view: View) -> dict[str, Any]:
    hidden = suppressed_keys(view.groups.items(), partition=view.group_by in PARTITIONS)
    groups = [
        {"key": k, "label": label_of(view.group_by, k), **a.figures(min_growth=MIN_GROUP_SIZE)}
        for k, a in view.ordered()
        if k not in hidden
    ]
    return {
        "call": _call_budget(view.call, view.totals.committed),
        "group_by": view.group_by,
        "totals": view.totals.figures(min_growth=MIN_GROUP_SIZE),
        "groups": groups,
        "generated_at": view.computed_at,
        "suppressed_groups": len(hidden),
        "min_group_size": MIN_GROUP_SIZE,
    }


# ---------------------------------------------------------------- charts

MAX_SERIES_POINTS = 24 * 400


def _hour_floor(t: datetime) -> datetime:
    return t.astimezone(ROME).replace(minute=0, second=0, microsecond=0)


async def chart_svg(
    *, session: AsyncSession, intake: IntakeClient, call_id: uuid.UUID, name: str, cache: StatsCache | None = None
) -> str:
    """One of the public charts of a call, as an SVG document (the public view's suppression applies)."""
    if name == "funds-by-province":
        view = await call_view(session=session, intake=intake, call_id=call_id, group_by="province", cache=cache)
        hidden = suppressed_keys(view.groups.items(), partition=True)
        keys: list[str | None] = [*sorted(LOMBARDY, key=lambda c: PROVINCE_NAMES[c])]
        keys += sorted(k for k in view.groups if k is not None and k not in PROVINCE_NAMES)
        keys += [None] if None in view.groups else []
        bars = []
        for key in keys:
            label = f"{PROVINCE_NAMES[key]} ({key})" if key in PROVINCE_NAMES else key or "non indicata / unknown"
            if key in hidden:
                bars.append(Bar(label, None, f"n.d. (< {MIN_GROUP_SIZE} domande)"))
            else:
                committed = view.groups[key].committed if key in view.groups else ZERO
                bars.append(Bar(label, committed, eur_it(committed)))
        return bar_chart(
            title=f"Fondi impegnati per provincia — {view.call.title}",
            subtitle=f"Funds committed by province, {view.call.code}: aid (grant + loan), "
            f"budget {eur_it(view.call.budget_total)}.",
            bars=bars,
        )
    if name == "markets-targeted":
        view = await call_view(session=session, intake=intake, call_id=call_id, group_by="market", cache=cache)
        hidden = suppressed_keys(view.groups.items(), partition=False)
        shown = [(k, a) for k, a in view.ordered() if k is not None and k not in hidden][:20]
        bars = [Bar(f"{label_of('market', k)} ({k})", a.applications, format_int(a.applications)) for k, a in shown]
        return bar_chart(
            title=f"Mercati obiettivo — {view.call.title}",
            subtitle=f"Markets targeted by the applications, {view.call.code} (top 20; markets of "
            f"fewer than {MIN_GROUP_SIZE} applications not shown).",
            bars=bars,
        )
    view = await call_view(session=session, intake=intake, call_id=call_id, group_by="hour", cache=cache)
    window = view.call.effective_window
    start = _hour_floor(window.opens_at)
    end = _hour_floor(min(window.closes_at, datetime.now(UTC)))
    seen = [datetime.fromisoformat(k) for k in view.groups if k is not None]
    if seen:
        start, end = min(start, *seen), max(end, *seen)
    points: list[tuple[datetime, int]] = []
    t = start
    while t <= end and len(points) < MAX_SERIES_POINTS:
        agg = view.groups.get(t.astimezone(ROME).isoformat())
        points.append((t.astimezone(ROME), agg.applications if agg else 0))
        t = (t.astimezone(UTC) + timedelta(hours=1)).astimezone(ROME)
    return time_series(
        title=f"Domande per ora — {view.call.title}",
        subtitle=f"Applications per hour of the window, {view.call.code} (Europe/Rome).",
        points=points,
    )


def _json_default(v: Any) -> Any:
    if isinstance(v, (Decimal, uuid.UUID)):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def to_json(payload: dict[str, Any]) -> bytes:
    """The view as JSON, exactly as its response model documents it (amounts as strings, instants in UTC with
    "Z"), written with orjson: a view by hour has thousands of groups, and validating them into models again
    would cost more than computing them."""
    payload = {**payload, "generated_at": payload["generated_at"].astimezone(UTC).isoformat().replace("+00:00", "Z")}
    return orjson.dumps(payload, default=_json_default)
