"""Whether a new contract version can replace earlier ones without breaking its readers (pure).

The modes are Confluent Schema Registry's, read for tables:

- backward: a consumer reading with the new contract can read data written under
  the old one, so the new version may not demand what old data lacks (an added
  required field, a tightened constraint, a narrower type);
- forward: a consumer still on the old contract can read data produced under the
  new one, so the new version may not drop what old readers rely on (a removed
  required field or dataset, a loosened constraint, a wider type);
- FULL is both; a ``*_TRANSITIVE`` mode holds the new version to every earlier
  version, not only the newest, because consumers may still be on any of them.

Each change carries the directions it breaks, so a mode only chooses which
directions and which earlier versions count. Some changes break every direction:
a different primary key changes what a row is, and a KPI whose formula, grain,
time field, unit or filters change, or that loses a dimension, publishes other
numbers under the same name. A GDP mapping's SQL is how a table is filled, not
its shape, so a new mapping alone breaks nobody.

Versions follow the changes: breaking either direction needs a major version (a
mode that tolerates the break still publishes it as one), any other schema change
a minor, descriptions and mapping SQL alone a patch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain
from typing import Any, Literal

from keel.contracts.model import Contract, Dataset, Field, KpiSpec, Threshold, Version, widens
from keel.kernel.errors import InvalidInput

Bump = Literal["major", "minor", "patch"]

_NEITHER: frozenset[str] = frozenset()
_BACKWARD = frozenset({"backward"})
_FORWARD = frozenset({"forward"})
_BOTH = _BACKWARD | _FORWARD

# Changes that leave a contract's shape and meaning alone: a patch release.
_COSMETIC = frozenset({"description_changed", "mapping_changed"})

# Field constraints, with how a field reads without and with them. Tightening one
# breaks backward (old data may violate it), loosening it breaks forward (old
# readers rely on it).
_CONSTRAINTS = {"required": ("optional", "required"), "unique": ("not unique", "unique")}
_FIELD_METADATA = ("classification", "pii", "description")

# KPI settings that change what the numbers mean, and those that only change how they are judged or shown.
_KPI_MEANING = ("formula", "grain", "time_field", "unit", "filters")
_KPI_SETTINGS = ("thresholds", "targets", "visible_to")


class Mode(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: Mode | str) -> Mode:
        """The mode named by ``value`` (any case); InvalidInput("compatibility") lists the valid ones."""
        try:
            return cls(str(value).strip().upper())
        except ValueError:
            valid = [mode.value for mode in cls]
            raise InvalidInput(
                "compatibility",
                f"'{value}' is not a compatibility mode; use one of {', '.join(valid)}",
                valid=valid,
            ) from None

    @property
    def directions(self) -> frozenset[str]:
        base = self.removesuffix("_TRANSITIVE")
        return {"NONE": _NEITHER, "BACKWARD": _BACKWARD, "FORWARD": _FORWARD, "FULL": _BOTH}[base]

    @property
    def transitive(self) -> bool:
        return self.endswith("_TRANSITIVE")


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two versions; ``breaks`` holds "backward" and/or "forward"."""

    kind: str
    dataset: str | None
    field: str | None
    detail: str
    breaks: frozenset[str] = _NEITHER


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of ``check``: ``changes`` since the newest earlier version, and the
    changes that break under ``mode``, each with the earlier version it breaks against."""

    mode: Mode
    changes: tuple[Change, ...]
    breaking: tuple[tuple[Change, str], ...]

    @property
    def compatible(self) -> bool:
        return not self.breaking


def diff(old: Contract, new: Contract) -> tuple[Change, ...]:
    """Every change from ``old`` to ``new``: datasets in the old order, then added ones, then the KPI."""
    return tuple(chain(_datasets(old, new), _kpi(old.kpi, new.kpi)))


def check(new: Contract, earlier: Sequence[Contract], mode: Mode | str) -> Report:
    """How ``new`` fares under ``mode`` against ``earlier`` versions (oldest to newest)."""
    mode = Mode.parse(mode)
    if not earlier:
        return Report(mode, (), ())
    against = earlier if mode.transitive else earlier[-1:]
    diffs = [(old.version, diff(old, new)) for old in against]
    breaking = tuple(
        (change, version)
        for version, changes in diffs
        for change in changes
        if change.breaks & mode.directions
    )
    return Report(mode, diffs[-1][1], breaking)


def check_version(new: Contract, earlier: Sequence[Contract], mode: Mode | str | None = None) -> Report:
    """``check`` under ``mode`` (the contract's own by default), refusing a version number that
    does not move forward or a breaking change without a major bump over the version it breaks."""
    mode = Mode.parse(new.compatibility if mode is None else mode)
    version = _version(new)
    newest = _version(earlier[-1]) if earlier else None
    if newest is not None and not newest < version:
        raise InvalidInput(
            "version",
            f"{version} is not greater than the newest earlier version {newest}",
            version=str(version),
            newest=str(newest),
        )
    report = check(new, earlier, mode)
    majors = {contract.version: _version(contract).major for contract in earlier}
    unbumped = [(c, against) for c, against in report.breaking if majors[against] >= version.major]
    if unbumped and newest is not None:
        change, against = unbumped[0]
        needed = str(Version(newest.major + 1, 0, 0))
        raise InvalidInput(
            "version",
            f"{version} breaks {mode} compatibility with {against} ({change.detail}); publish it as {needed}",
            version=str(version),
            change=change.kind,
            against=against,
            needed=needed,
        )
    return report


def required_bump(old: Contract, new: Contract) -> Bump:
    """The least version bump from ``old`` to ``new``, whatever the contract's mode."""
    changes = diff(old, new)
    if any(change.breaks for change in changes):
        return "major"
    if any(change.kind not in _COSMETIC for change in changes):
        return "minor"
    return "patch"


def _version(contract: Contract) -> Version:
    try:
        return Version.parse(contract.version)
    except ValueError as error:
        raise InvalidInput("version", str(error), version=contract.version) from None


# -- datasets ---------------------------------------------------------------------------------------


def _datasets(old: Contract, new: Contract) -> Iterator[Change]:
    for before in old.datasets:
        after = new.dataset(before.name)
        if after is None:
            yield Change(
                "dataset_removed",
                before.name,
                None,
                f"dataset {before.name} was removed; readers of the old contract still expect it",
                _FORWARD,
            )
        else:
            yield from _dataset(before, after)
    for after in new.datasets:
        if old.dataset(after.name) is None:
            yield Change("dataset_added", after.name, None, f"dataset {after.name} was added")


def _dataset(old: Dataset, new: Dataset) -> Iterator[Change]:
    for before in old.fields:
        after = new.field(before.name)
        if after is None:
            yield _field_removed(old.name, before)
        else:
            for rule in _FIELD_RULES:
                yield from rule(old.name, before, after)
    for after in new.fields:
        if old.field(after.name) is None:
            yield _field_added(new.name, after)
    yield from _primary_key(old, new)
    if old.mapping_sql != new.mapping_sql:
        yield Change(
            "mapping_changed",
            old.name,
            None,
            f"mapping of {old.name} changed from {_show(old.mapping_sql)} to {_show(new.mapping_sql)}",
        )


def _primary_key(old: Dataset, new: Dataset) -> Iterator[Change]:
    before, after = _key_of(old), _key_of(new)
    if set(before) != set(after):
        yield Change(
            "primary_key_changed",
            old.name,
            None,
            f"primary key of {old.name} changed from {_show(before)} to {_show(after)}",
            _BOTH,
        )


def _key_of(dataset: Dataset) -> tuple[str, ...]:
    return tuple(f.name for f in dataset.fields if f.primary_key)


# -- fields: each rule takes (dataset name, old field, new field) -------------------------------------


def _field_added(dataset: str, new: Field) -> Change:
    if new.required:
        return Change(
            "field_added",
            dataset,
            new.name,
            f"required field {dataset}.{new.name} ({new.type}) was added; older data has no value for it",
            _BACKWARD,
        )
    return Change(
        "field_added", dataset, new.name, f"optional field {dataset}.{new.name} ({new.type}) was added"
    )


def _field_removed(dataset: str, old: Field) -> Change:
    if old.required:
        return Change(
            "field_removed",
            dataset,
            old.name,
            f"required field {dataset}.{old.name} was removed; readers of the old contract still expect it",
            _FORWARD,
        )
    return Change("field_removed", dataset, old.name, f"optional field {dataset}.{old.name} was removed")


def _type(dataset: str, old: Field, new: Field) -> Iterator[Change]:
    if old.type == new.type:
        return
    if widens(old.type, new.type):
        how, breaks = "widened", _FORWARD
    elif widens(new.type, old.type):
        how, breaks = "narrowed", _BACKWARD
    else:
        how, breaks = "changed", _BOTH
    yield Change(
        "type_changed",
        dataset,
        old.name,
        f"type of {dataset}.{old.name} {how} from {old.type} to {new.type}",
        breaks,
    )


def _constraints(dataset: str, old: Field, new: Field) -> Iterator[Change]:
    for constraint, words in _CONSTRAINTS.items():
        before, after = getattr(old, constraint), getattr(new, constraint)
        if before != after:
            yield Change(
                f"{constraint}_changed",
                dataset,
                old.name,
                f"{dataset}.{old.name} changed from {words[before]} to {words[after]}",
                _BACKWARD if after else _FORWARD,
            )


def _metadata(dataset: str, old: Field, new: Field) -> Iterator[Change]:
    for attribute in _FIELD_METADATA:
        yield from _changed(attribute, old, new, dataset, old.name)


_FIELD_RULES = (_type, _constraints, _metadata)


# -- KPI ----------------------------------------------------------------------------------------------


def _kpi(old: KpiSpec | None, new: KpiSpec | None) -> Iterator[Change]:
    if old is None:
        if new is not None:
            yield Change("kpi_added", None, None, "a KPI definition was added")
        return
    if new is None:
        yield Change("kpi_removed", None, None, "the KPI definition was removed", _BOTH)
        return
    for attribute in _KPI_MEANING:
        yield from _changed(
            attribute, old, new, None, None, _BOTH, because="; the same KPI would report other numbers"
        )
    yield from _dimensions(old.dimensions, new.dimensions)
    for attribute in _KPI_SETTINGS:
        yield from _changed(attribute, old, new, None, None)


def _dimensions(old: tuple[str, ...], new: tuple[str, ...]) -> Iterator[Change]:
    for name in old:
        if name not in new:
            yield Change(
                "dimension_removed",
                None,
                name,
                f"KPI dimension {name} was removed; results broken down by it no longer exist",
                _BOTH,
            )
    for name in new:
        if name not in old:
            yield Change("dimension_added", None, name, f"KPI dimension {name} was added")


# -- shared -------------------------------------------------------------------------------------------


def _changed(
    attribute: str,
    old: Any,
    new: Any,
    dataset: str | None,
    field: str | None,
    breaks: frozenset[str] = _NEITHER,
    because: str = "",
) -> Iterator[Change]:
    """An ``<attribute>_changed`` when ``attribute`` of ``old`` (a field or KPI spec) differs in ``new``."""
    before, after = getattr(old, attribute), getattr(new, attribute)
    if _comparable(before) != _comparable(after):
        where = f"{dataset}.{field}" if dataset else "KPI"
        name = attribute.replace("_", " ")
        detail = f"{where} {name} changed from {_show(before)} to {_show(after)}{because}"
        yield Change(f"{attribute}_changed", dataset, field, detail, breaks)


def _comparable(value: Any) -> Any:
    # Filters, thresholds, targets and audiences are sets: their order in the document means nothing.
    return frozenset(value) if isinstance(value, tuple) else value


def _show(value: Any) -> str:
    if value is None or value == () or value == "":
        return "none"
    if isinstance(value, tuple):
        return "(" + ", ".join(_item(item) for item in value) + ")"
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def _item(value: Any) -> str:
    if isinstance(value, Threshold):
        return f"{value.name} {value.op} {value.limit:g} ({value.severity})"
    if isinstance(value, tuple):  # a KPI target: (period, value)
        period, target = value
        return f"{period}: {target:g}"
    return str(value)
