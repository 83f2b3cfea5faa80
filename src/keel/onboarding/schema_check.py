"""Compare a discovered stream schema with the columns the Raw contract expects (02b).

The expected schema is ``{column: type}`` with the JSON-schema vocabulary Keel's
connectors discover: ``string``, ``integer``, ``number``, ``boolean``, ``object``,
``array``, and the string formats ``date``, ``date-time``, ``time``, ``decimal``.
Until the contract registry (issue 4) holds Raw contracts, a source carries its
expected schemas itself; the comparison is the same either way.

A missing column or a type that differs fails the check; a column the contract
does not name is reported but passes (sources grow; drift handling decides later).
An integer where a number is expected passes: every integer is a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keel.kernel.errors import InvalidInput

TYPES = ("string", "integer", "number", "boolean", "object", "array", "date", "date-time", "time", "decimal")


def column_type(schema: Mapping[str, Any]) -> str:
    """The one type name of a column's JSON schema, nullability aside."""
    declared = schema.get("type", "string")
    names = [declared] if isinstance(declared, str) else [t for t in declared if t != "null"]
    name = names[0] if names else "string"
    if name == "string" and schema.get("format") in ("date", "date-time", "time", "decimal"):
        return schema["format"]
    return name


def compare(discovered: Mapping[str, Any], expected: Mapping[str, str]) -> dict:
    """``{"passed", "missing", "type_mismatches", "extra"}`` of one stream."""
    columns = {name: column_type(sub) for name, sub in discovered.get("properties", {}).items()}
    missing = sorted(name for name in expected if name not in columns)
    mismatches = [
        {"column": name, "expected": want, "found": columns[name]}
        for name, want in sorted(expected.items())
        if name in columns and columns[name] != want and not (want == "number" and columns[name] == "integer")
    ]
    extra = sorted(name for name in columns if name not in expected)
    return {
        "passed": not missing and not mismatches,
        "missing": missing,
        "type_mismatches": mismatches,
        "extra": extra,
    }


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
