"""Contract documents as text: YAML (or JSON) parsed without surprises, errors with their place.

YAML's implicit timestamps are switched off: ``2022-10-03`` stays the string the
ODCS JSON Schema expects, and a document exported again says exactly what it said.
"""

from __future__ import annotations

from typing import Any

import yaml

from keel.kernel.errors import InvalidInput

MAX_DOCUMENT_BYTES = 1_000_000


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver (dates stay strings)."""


_PlainLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse(text: str | bytes, field: str = "document") -> dict[str, Any]:
    """The mapping a YAML or JSON document holds; ``InvalidInput`` naming line and column otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(field, f"is not UTF-8 text (byte {exc.start})") from exc
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise InvalidInput(field, f"is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        data = yaml.load(text, Loader=_PlainLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise InvalidInput(
            field,
            f"is not valid YAML at {where}: {exc.problem}",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(field, f"is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(field, f"must be a mapping at the top level, not {type(data).__name__}")
    return data


def dump(document: dict[str, Any]) -> str:
    """YAML text of ``document`` in its own key order."""
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def read_contract(document: dict[str, Any], layer: str | None = None):
    """The Keel view (``model.Contract``) of a KPI contract or an ODCS Raw/GDP contract."""
    from keel.contracts import kpidoc, odcs

    if kpidoc.is_kpi(document):
        return kpidoc.to_contract(document)
    if document.get("apiVersion") == kpidoc.API_VERSION:
        raise InvalidInput("kind", f"a keel/v1 document must be a {kpidoc.KIND}")
    return odcs.to_contract(document, layer)
