"""Schema drift: how the columns a source delivers differ from its Raw contract (story 03a, pure).

Columns are matched by name. A column the contract lacks was added, one the source
no longer sends was removed, and a removed and an added column that look alike and
whose types fit are one rename, because that is what a source change usually is and
a steward fixes it once. A type drifts only when the observed values no longer fit
the declared type: an integer where a decimal is declared loses nothing
(``model.widens``). Keel's own ``_keel_`` bookkeeping columns are never drift.

What happens next is the contract's ``drift_policy``: ``alert`` lets the run
continue (the caller raises the alert), ``quarantine`` sets the batch aside and
``stop`` fails the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from keel.contracts.model import TYPES, Dataset, widens
from keel.kernel.errors import InvalidInput

Decision = Literal["continue", "quarantine", "stop"]

POLICIES: dict[str, Decision] = {"alert": "continue", "quarantine": "quarantine", "stop": "stop"}

BOOKKEEPING_PREFIX = "_keel_"  # the columns ingestion adds to every Raw table (ingestion/raw.py)
_CONNECTOR_TYPES = {"date-time": "timestamp"}  # JSON Schema's format name, as connectors report it
_ALIKE = 0.75  # difflib ratio from which two column names look alike


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The drift of one dataset: ``renamed`` holds (contract name, observed name) pairs and
    ``type_changed`` (column, expected type, found type) triples."""

    dataset: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    type_changed: tuple[tuple[str, str, str], ...] = ()

    @property
    def drifted(self) -> bool:
        return bool(self.added or self.removed or self.renamed or self.type_changed)

    def summary(self) -> str:
        """One line for an alert or a run log."""
        if not self.drifted:
            return f"{self.dataset}: no drift"
        parts = [
            ("added", ", ".join(self.added)),
            ("removed", ", ".join(self.removed)),
            ("renamed", ", ".join(f"{old} → {new}" for old, new in self.renamed)),
            (
                "type changed",
                ", ".join(f"{c} ({expected} → {found})" for c, expected, found in self.type_changed),
            ),
        ]
        return f"{self.dataset} drifted: " + "; ".join(f"{what} {names}" for what, names in parts if names)


def detect(observed: Mapping[str, str], dataset: Dataset) -> DriftReport:
    """The drift of the ``observed`` columns (name → type) from the contract's ``dataset``."""
    found = _observed_types(observed)
    declared = {f.name: f.type for f in dataset.fields}
    missing = {name: kind for name, kind in declared.items() if name not in found}
    extra = {name: kind for name, kind in found.items() if name not in declared}
    renamed = _renames(missing, extra)
    renamed_old = {old for old, _ in renamed}
    renamed_new = {new for _, new in renamed}
    return DriftReport(
        dataset=dataset.name,
        added=tuple(name for name in extra if name not in renamed_new),
        removed=tuple(name for name in missing if name not in renamed_old),
        renamed=renamed,
        type_changed=tuple(
            (name, kind, found[name])
            for name, kind in declared.items()
            if name in found and not widens(found[name], kind)
        ),
    )


def decide(report: DriftReport, policy: str) -> Decision:
    """What the run does about ``report`` under the contract's ``drift_policy``."""
    decision = POLICIES.get(str(policy).strip().lower())
    if decision is None:
        raise InvalidInput(
            "drift_policy",
            f"'{policy}' is not a drift policy; use one of {', '.join(POLICIES)}",
            valid=list(POLICIES),
        )
    return decision if report.drifted else "continue"


def _observed_types(observed: Mapping[str, str]) -> dict[str, str]:
    """The observed columns without Keel's bookkeeping, their types in the contract vocabulary."""
    types = {}
    for name, kind in observed.items():
        if name.startswith(BOOKKEEPING_PREFIX):
            continue
        normal = _CONNECTOR_TYPES.get(kind.strip().lower(), kind.strip().lower())
        if normal not in TYPES:
            raise InvalidInput(
                "observed", f"column {name} has type '{kind}', not one of {', '.join(TYPES)}", column=name
            )
        types[name] = normal
    return types


def _renames(missing: Mapping[str, str], extra: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Pairs (missing, extra) of alike names whose types fit, the most alike first, each column once."""
    candidates = []
    for i, (old, declared) in enumerate(missing.items()):
        for j, (new, found) in enumerate(extra.items()):
            likeness = _likeness(old, new)
            if likeness is not None and widens(found, declared):
                candidates.append((-likeness, i, j, old, new))
    pairs: list[tuple[str, str]] = []
    used: set[str] = set()
    for *_, old, new in sorted(candidates):
        if old not in used and new not in used:
            pairs.append((old, new))
            used.update((old, new))
    return tuple(pairs)


def _likeness(old: str, new: str) -> float | None:
    """How alike two column names look (1.0 for one name spelt two ways), None when they do not."""
    if _spelling(old) == _spelling(new):
        return 1.0
    ratio = SequenceMatcher(None, old, new).ratio()
    return ratio if ratio >= _ALIKE or old in new or new in old else None


def _spelling(name: str) -> str:
    return name.replace("_", "").casefold()
