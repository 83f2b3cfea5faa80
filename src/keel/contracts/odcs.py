"""Raw and GDP contracts as Open Data Contract Standard v3 documents.

A document is checked against the standard twice — its JSON Schema (which names the
exact place of a mistake) and the ``open-data-contract-standard`` models — and is
kept as written: ``export`` gives back what was imported, so contracts written for
other tools load in Keel and Keel's load elsewhere.

What Keel needs beyond the standard lives in the standard's own extension points:

==========================================  ===========================================
Keel                                        ODCS
==========================================  ===========================================
layer (raw or gdp)                          contract ``customProperties``: ``keelLayer``
owner                                       ``customProperties``: ``owner`` (else a
                                            ``team`` member whose role is ``owner``)
retention                                   ``slaProperties``: ``retention`` (value, unit)
regulatory tags                             ``customProperties``: ``regulatoryTags``
drift policy, compatibility mode            ``customProperties``: ``driftPolicy``,
                                            ``compatibility``
contracts this one is based on              ``customProperties``: ``basedOn``
                                            (``[{contract, version}]``)
GDP mapping of a dataset                    schema object ``customProperties``: ``mapping``
PII flag of a field                         property ``customProperties``: ``pii``
field type                                  ``logicalType``; ``number`` with a
                                            decimal/numeric ``physicalType`` is ``decimal``
==========================================  ===========================================
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema
import pydantic
from open_data_contract_standard.model import OpenDataContractStandard

from keel.contracts.model import Contract, Dataset, Field, Layer, Ref
from keel.kernel.errors import InvalidInput

_DECIMAL_PHYSICAL = ("decimal", "numeric", "number(")


# A document is checked against the JSON Schema of the standard version it declares. Keel ships
# the published v3.1.0 schema for v3.1.0 and earlier; v3.2.0 documents use the schema that comes
# with the ``open-data-contract-standard`` package. (That v3.2.0 schema wrongly requires ``map`` on
# a property without a ``logicalType``: its ``if logicalType == map`` holds when the key is absent.)
_V310 = ("keel.contracts", "schemas/odcs-json-schema-v3.1.0.json")
_V320 = ("open_data_contract_standard", "schema.json")


@lru_cache(maxsize=2)
def _validator(source: tuple[str, str] = _V310) -> jsonschema.protocols.Validator:
    package, name = source
    schema = json.loads(resources.files(package).joinpath(name).read_text("utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def check_standard(document: dict[str, Any]) -> OpenDataContractStandard:
    """The document as the standard's model; ``InvalidInput`` naming the first place it breaks."""
    validator = _validator(_V320 if document.get("apiVersion") == "v3.2.0" else _V310)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        where = path_of(first.absolute_path) or "document"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(where, f"{_short(first.message)}{more}", standard="ODCS v3")
    try:
        return OpenDataContractStandard.model_validate(document)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(path_of(first["loc"]) or "document", first["msg"], standard="ODCS v3") from exc


def export(document: dict[str, Any]) -> dict[str, Any]:
    """The document through the standard's model and back, keeping every field that was set."""
    return check_standard(document).model_dump(exclude_unset=True, by_alias=True, mode="json")


def is_odcs(document: dict[str, Any]) -> bool:
    return document.get("kind") == "DataContract" or ("apiVersion" in document and "schema" in document)


def to_contract(document: dict[str, Any], layer: Layer | str | None = None) -> Contract:
    """The Keel view of an ODCS document (standard-checked first). ``layer`` overrides ``keelLayer``."""
    check_standard(document)
    custom = custom_properties(document)
    chosen = layer or custom.get("keelLayer")
    if chosen not in (Layer.RAW, Layer.GDP, "raw", "gdp"):
        raise InvalidInput("customProperties.keelLayer", "must say raw or gdp for an ODCS contract")
    return Contract(
        id=str(document.get("id") or ""),
        name=str(document.get("name") or document.get("dataProduct") or document.get("id") or ""),
        version=str(document.get("version") or ""),
        layer=Layer(chosen),
        owner=_owner(document, custom),
        domain=document.get("domain"),
        retention=_retention(document),
        regulatory_tags=tuple(_strings(custom.get("regulatoryTags"))),
        datasets=tuple(_dataset(obj, i) for i, obj in enumerate(document.get("schema") or [])),
        based_on=tuple(refs(custom.get("basedOn"), "customProperties.basedOn")),
        drift_policy=str(custom.get("driftPolicy", "alert")),
        compatibility=str(custom.get("compatibility", "BACKWARD")).upper(),
        custom=custom,
    )


def custom_properties(obj: dict[str, Any]) -> dict[str, Any]:
    """``customProperties`` as ``{property: value}``."""
    return {
        entry["property"]: entry.get("value")
        for entry in obj.get("customProperties") or []
        if isinstance(entry, dict) and entry.get("property")
    }


def refs(value: Any, where: str) -> list[Ref]:
    """``[{contract, version}]`` (or ``"ID@VERSION"`` strings) as references."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(where, "must be a list of {contract, version}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            contract_id, _, version = item.partition("@")
            out.append(Ref(contract_id, version or None))
        elif isinstance(item, dict) and item.get("contract"):
            version = item.get("version")
            out.append(Ref(str(item["contract"]), str(version) if version is not None else None))
        else:
            raise InvalidInput(f"{where}[{i}]", "must name a contract (and optionally its version)")
    return out


def path_of(parts) -> str:
    """``schema[0].properties[2].logicalType`` from a JSON path."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _dataset(obj: dict[str, Any], index: int) -> Dataset:
    where = f"schema[{index}]"
    custom = custom_properties(obj)
    fields = tuple(
        _field(prop, f"{where}.properties[{j}]") for j, prop in enumerate(obj.get("properties") or [])
    )
    return Dataset(
        name=str(obj.get("physicalName") or obj.get("name") or ""),
        fields=fields,
        mapping_sql=custom.get("mapping"),
        location=where,
    )


def _field(prop: dict[str, Any], where: str) -> Field:
    custom = custom_properties(prop)
    logical = prop.get("logicalType") or ""
    physical = str(prop.get("physicalType") or "").lower()
    kind = "decimal" if logical == "number" and physical.startswith(_DECIMAL_PHYSICAL) else logical
    pii = custom.get("pii")
    return Field(
        name=str(prop.get("name") or ""),
        type=kind,
        required=bool(prop.get("required")),
        unique=bool(prop.get("unique")),
        primary_key=bool(prop.get("primaryKey")),
        classification=prop.get("classification"),
        pii=pii if isinstance(pii, bool) else None,
        description=prop.get("description") or "",
        location=where,
    )


def _owner(document: dict[str, Any], custom: dict[str, Any]) -> str | None:
    if custom.get("owner"):
        return str(custom["owner"])
    team = document.get("team")
    members = team.get("members") if isinstance(team, dict) else team
    for member in members or []:
        if isinstance(member, dict) and str(member.get("role", "")).lower() == "owner":
            return member.get("username") or member.get("name")
    return None


def _retention(document: dict[str, Any]) -> str | None:
    for sla in document.get("slaProperties") or []:
        if sla.get("property") == "retention" and sla.get("value") is not None:
            return f"{sla['value']}{sla.get('unit') or ''}"
    return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value] if isinstance(value, list) else []


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
