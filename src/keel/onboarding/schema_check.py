"""Compare a discovered stream schema with the columns the Raw contract expects (02b).

The expected schema is ``{column: type}`` with the JSON-schema vocabulary Keel's
connectors discover: ``string``, ``integer``, ``number``, ``boolean``, ``object``,
``array``, and the string formats ``date``, ``date-time``, ``time``, ``decimal``.
A source linked to a Raw contract is checked against the columns of the contract's
dataset for each stream (``ContractColumns``, in the contract vocabulary, where
``date-time`` is ``timestamp``); a source without one carries its expected
schemas itself (``expected_schemas``).

A missing column or a type that differs fails the check; a column the contract
does not name is reported but passes (sources grow; the drift watch decides later).
An integer where a number is expected passes: every integer is a number. Against
a Raw contract a type passes wherever the contract lets it widen (``model.widens``:
an integer where a decimal is declared, a date where a timestamp is), exactly as
the drift watch of each ingestion run judges it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keel.contracts.model import widens
from keel.kernel.errors import InvalidInput

TYPES = ("string", "integer", "number", "boolean", "object", "array", "date", "date-time", "time", "decimal")
_CONTRACT_NAMES = {"date-time": "timestamp"}  # the rest of TYPES is spelt alike in the contract vocabulary


class ContractColumns(dict[str, str]):
    """The columns (name → contract type) a Raw contract's dataset declares for a stream: compared
    by the contract's widening rule, not the exact types of ``expected_schemas``."""


def contract_type(name: str) -> str:
    """A type of ``TYPES`` in the contract vocabulary (``keel.contracts.model.TYPES``)."""
    return _CONTRACT_NAMES.get(name, name)


def column_type(schema: Mapping[str, Any]) -> str:
    """The one type name of a column's JSON schema, nullability aside."""
    declared = schema.get("type", "string")
    names = [declared] if isinstance(declared, str) else [t for t in declared if t != "null"]
    name = names[0] if names else "string"
    if name == "string" and schema.get("format") in ("date", "date-time", "time", "decimal"):
        return schema["format"]
    return name


def observed_type(schema: Mapping[str, Any]) -> str:
    """A column's type in the contract vocabulary. A column of several kinds of value (files whose
    column holds numbers in one and text in another) is a number when all are numbers, else a
    string: only text holds them all, and no narrower type a contract declares fits them."""
    declared = schema.get("type", "string")
    kinds = {declared} if isinstance(declared, str) else set(declared or ())
    kinds.discard("null")
    if len(kinds) > 1:
        return "number" if kinds <= {"integer", "number"} else "string"
    return contract_type(column_type(schema))


def compare(discovered: Mapping[str, Any], expected: Mapping[str, str]) -> dict:
    """``{"passed", "missing", "type_mismatches", "extra"}`` of one stream."""
    properties = discovered.get("properties", {})
    columns = {name: column_type(sub) for name, sub in properties.items()}
    fits = _exactly
    if isinstance(expected, ContractColumns):
        columns = {name: observed_type(sub) for name, sub in properties.items()}
        fits = widens
    missing = sorted(name for name in expected if name not in columns)
    mismatches = [
        {"column": name, "expected": want, "found": columns[name]}
        for name, want in sorted(expected.items())
        if name in columns and not fits(columns[name], want)
    ]
    extra = sorted(name for name in columns if name not in expected)
    return {
        "passed": not missing and not mismatches,
        "missing": missing,
        "type_mismatches": mismatches,
        "extra": extra,
    }


def _exactly(found: str, want: str) -> bool:
    return found == want or (want == "number" and found == "integer")


def check_expected(field: str, expected: Any) -> dict[str, dict[str, str]]:
    """Validate ``{stream: {column: type}}`` given by a caller; raise naming the bad entry."""
    if not isinstance(expected, Mapping):
        raise InvalidInput(field, "must be an object of stream → {column: type}")
    for stream, columns in expected.items():
        if not isinstance(columns, Mapping) or not columns:
            raise InvalidInput(f"{field}.{stream}", "must be a non-empty object of column → type")
        for column, kind in columns.items():
            if kind not in TYPES:
                raise InvalidInput(f"{field}.{stream}.{column}", f"'{kind}' is not one of {', '.join(TYPES)}")
    return {s: dict(c) for s, c in expected.items()}
