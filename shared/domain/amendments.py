"""What an amendment of a call's rules may change: the frozen-field diff between two rules documents.

Before a call's window opens its rules may change freely. Once it has opened they are frozen: a new
version may only move ``window.closes_at`` later or raise ``budget_total``, and each such change needs
the decree that orders it (its number and date). Every other difference is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.domain.call_rules import CallRules

#: the only changes allowed once the window has opened, each in one direction.
CLOSES_AT = "window.closes_at"
BUDGET_TOTAL = "budget_total"


@dataclass(frozen=True)
class Decree:
    """The act ordering an amendment."""

    number: str
    date: date


@dataclass(frozen=True)
class AmendmentCheck:
    """The differences between two versions of a call's rules and which of them are refused once it opened.

    ``changed`` and ``refused`` are dotted paths (``aid.grant.percent``, ``expense_categories[2].cap.of``),
    sorted; ``refused`` is a subset of ``changed``."""

    changed: tuple[str, ...]
    refused: tuple[str, ...]
    extends_window: bool
    raises_budget: bool

    @property
    def needs_decree(self) -> bool:
        return self.extends_window or self.raises_budget


def changed_fields(before: Any, after: Any, path: str = "") -> list[str]:
    """The dotted paths of the leaves that differ between two dumps (dicts, lists, values) of a document.
    Values compare by equality (so 0.2 and 0.20, or one instant in two offsets, are the same)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in before or key not in after:
                out.append(sub)
            else:
                out.extend(changed_fields(before[key], after[key], sub))
        return out
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return [path]
        out = []
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            out.extend(changed_fields(b, a, f"{path}[{i}]"))
        return out
    return [] if before == after else [path]


def check_amendment(before: CallRules, after: CallRules, *, opened: bool) -> AmendmentCheck:
    """Which fields `after` changes with respect to `before`, and which of those a call that has `opened`
    refuses: everything but a later ``window.closes_at`` and a higher ``budget_total``."""
    changed = tuple(sorted(changed_fields(before.model_dump(), after.model_dump())))
    extends = after.window.closes_at > before.window.closes_at
    raises = after.budget_total > before.budget_total
    allowed = {CLOSES_AT: extends, BUDGET_TOTAL: raises}
    refused = tuple(f for f in changed if opened and not allowed.get(f, False))
    return AmendmentCheck(changed=changed, refused=refused, extends_window=extends, raises_budget=raises)
