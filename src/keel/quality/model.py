"""A data-quality rule and its validation (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from keel.kernel.errors import InvalidInput

ROW_CHECKS = (
    "not_null", "unique", "accepted_values", "range", "regex", "custom_sql", "referential_integrity",
)  # fmt: skip
# Judged on the whole table, not per row: they fail or pass the table, so cannot quarantine rows.
TABLE_CHECKS = ("freshness", "row_count", "volume_change")
CHECKS = ROW_CHECKS + TABLE_CHECKS
ON_FAIL = ("block", "quarantine", "alert")
LAYERS = ("raw", "gdp", "kpi")
_RULE_ID = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,79}$")
_NAME = re.compile(r"^[a-z0-9_]{1,80}$")


@dataclass(frozen=True)
class Rule:
    """One version of a rule: on ``dataset``.``field``, ``check`` must hold, else ``on_fail``."""

    rule_id: str
    layer: str
    dataset: str
    field: str
    check: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    on_fail: str = "alert"
    version: int = 1
    enabled: bool = False
    tenant_id: str | None = None

    @property
    def key(self) -> str:
        return f"{self.rule_id}@{self.version}"

    @property
    def table_level(self) -> bool:
        """True for checks judged on the table as a whole (freshness, row_count, volume_change)."""
        return self.check in TABLE_CHECKS


def validate(
    *,
    rule_id: str,
    layer: str,
    dataset: str,
    field: str,
    check: str,
    params: Mapping[str, Any] | None = None,
    on_fail: str,
    version: int = 1,
    enabled: bool = False,
    tenant_id: str | None = None,
) -> Rule:
    """A checked rule, or ``InvalidInput`` naming what is wrong."""
    rule_id = (rule_id or "").strip().upper()
    if not _RULE_ID.match(rule_id):
        raise InvalidInput(
            "rule_id", "3-80 upper-case letters, digits and dashes, e.g. GDP-INVOICE-AMT-NOT-NULL"
        )
    layer = (layer or "").strip().lower()
    if layer not in LAYERS:
        raise InvalidInput("layer", f"must be one of {', '.join(LAYERS)}")
    for name, value in (("dataset", dataset), ("field", field)):
        if not _NAME.match(value or ""):
            raise InvalidInput(name, "lower-case letters, digits and underscores")
    if check not in CHECKS:
        raise InvalidInput("check", f"unknown check '{check}'; one of {', '.join(CHECKS)}")
    if on_fail not in ON_FAIL:
        raise InvalidInput("on_fail", f"must be one of {', '.join(ON_FAIL)}")
    if check in TABLE_CHECKS and on_fail == "quarantine":
        raise InvalidInput(
            "on_fail",
            f"{check} is judged on the whole table and cannot quarantine rows; use block or alert",
        )
    return Rule(
        rule_id=rule_id,
        layer=layer,
        dataset=dataset,
        field=field,
        check=check,
        params=_params(check, dict(params or {})),
        on_fail=on_fail,
        version=version,
        enabled=enabled,
        tenant_id=tenant_id,
    )


def _params(check: str, params: dict[str, Any]) -> dict[str, Any]:
    if check in ("not_null", "unique"):
        if params:
            raise InvalidInput("params", f"{check} takes no parameters")
        return {}
    if check == "accepted_values":
        values = params.get("values")
        if not isinstance(values, list) or not values or len(values) > 1000:
            raise InvalidInput("params.values", "accepted_values needs a list of 1-1000 values")
        if any(not isinstance(v, str | int | float) or isinstance(v, bool) for v in values):
            raise InvalidInput("params.values", "values are strings or numbers")
        return {"values": values}
    if check == "range":
        low, high = params.get("min"), params.get("max")
        if low is None and high is None:
            raise InvalidInput("params", "range needs min, max or both")
        for name, value in (("min", low), ("max", high)):
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise InvalidInput(f"params.{name}", "must be a number")
        if low is not None and high is not None and low > high:
            raise InvalidInput("params", f"range min {low} is above max {high}")
        return {"min": low, "max": high}
    if check == "regex":
        pattern = params.get("pattern")
        if not isinstance(pattern, str) or not pattern or len(pattern) > 500:
            raise InvalidInput("params.pattern", "regex needs a pattern (at most 500 characters)")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidInput("params.pattern", f"not a valid regular expression: {exc}") from None
        return {"pattern": pattern}
    if check == "referential_integrity":
        for name in ("dataset", "field"):
            value = params.get(name)
            if not isinstance(value, str) or not _NAME.match(value):
                raise InvalidInput(
                    f"params.{name}",
                    "referential_integrity names the referenced GDP dataset and field "
                    "(lower-case letters, digits and underscores)",
                )
        if set(params) - {"dataset", "field"}:
            raise InvalidInput("params", "referential_integrity takes only dataset and field")
        return {"dataset": params["dataset"], "field": params["field"]}
    if check == "freshness":
        hours = params.get("max_age_hours")
        if not _number(hours) or not 0 < hours <= 87_600:
            raise InvalidInput(
                "params.max_age_hours", "freshness needs max_age_hours, above 0, at most 87600"
            )
        return {"max_age_hours": hours}
    if check == "row_count":
        low, high = params.get("min"), params.get("max")
        if low is None and high is None:
            raise InvalidInput("params", "row_count needs min, max or both")
        for name, value in (("min", low), ("max", high)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise InvalidInput(f"params.{name}", "must be a whole number of rows, 0 or more")
        if low is not None and high is not None and low > high:
            raise InvalidInput("params", f"row_count min {low} is above max {high}")
        return {"min": low, "max": high}
    if check == "volume_change":
        percent = params.get("max_percent")
        if not _number(percent) or percent <= 0:
            raise InvalidInput("params.max_percent", "volume_change needs max_percent, a number above 0")
        return {"max_percent": percent}
    predicate = params.get("predicate")
    if not isinstance(predicate, str) or not predicate.strip() or len(predicate) > 2000:
        raise InvalidInput(
            "params.predicate", "custom_sql needs a boolean SQL predicate (at most 2000 characters)"
        )
    parse_predicate(predicate)
    return {"predicate": predicate.strip()}


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_FORBIDDEN = (exp.Query, exp.Subquery, exp.Create, exp.Drop, exp.Insert, exp.Update, exp.Delete, exp.Command)


def parse_predicate(predicate: str) -> exp.Expr:
    """The predicate as a SQLGlot tree: one expression over the row's columns, no queries."""
    try:
        tree = sqlglot.parse_one(predicate, dialect="duckdb")
    except ParseError as exc:
        raise InvalidInput(
            "params.predicate", f"SQL that does not parse: {str(exc).splitlines()[0]}"
        ) from None
    if tree is None or isinstance(tree, _FORBIDDEN) or any(tree.find_all(*_FORBIDDEN)):
        raise InvalidInput("params.predicate", "a predicate is one expression over the row, not a statement")
    return tree


def of_row(row) -> Rule:
    """A rule from its ``dq_rules`` row."""
    return Rule(
        rule_id=row.rule_id,
        layer=row.layer,
        dataset=row.dataset,
        field=row.field,
        check=row.check,
        params=dict(row.params or {}),
        on_fail=row.on_fail,
        version=row.version,
        enabled=bool(row.enabled),
        tenant_id=row.tenant_id,
    )
