"""The contract templates that ship with Keel (story 00c): Raw, GDP and KPI contracts for the samples.

Each template is a YAML document in this package: ``raw-*.yaml`` (ODCS, the sample
ERP's and CRM's Raw tables), ``gdp-*.yaml`` (ODCS, the finance entities mapped from
Raw, or from other entities) and ``kpi-*.yaml`` (Keel KPI contracts over one GDP
entity). A Platform Admin loads them into the registry (``registry.load_templates``)
in the order given here, so every contract's ``basedOn`` names a version loaded before it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from keel.contracts import kpidoc
from keel.contracts.documents import parse
from keel.contracts.odcs import custom_properties, refs
from keel.kernel.errors import InvalidInput

LAYER_ORDER = ("raw", "gdp", "kpi")  # a file's name starts with its layer: raw-erp.yaml


def load_templates(extra: Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every template as ``(filename, document)``: Raw, then GDP, then KPI; within a layer a template
    comes after the templates it is based on, otherwise by file name. ``extra`` is a directory of
    the platform's own templates (``KEEL_CONTRACT_TEMPLATES_DIR``), loaded with the built-in ones."""
    files = [f for f in resources.files(__package__).iterdir() if f.name.endswith((".yaml", ".yml"))]
    if extra is not None:
        if not extra.is_dir():
            raise InvalidInput("contract_templates_dir", f"{extra} is not a directory")
        own = [f for f in sorted(extra.iterdir()) if f.name.endswith((".yaml", ".yml"))]
        clash = {f.name for f in own} & {f.name for f in files}
        if clash:
            raise InvalidInput(
                "contract_templates_dir", f"{sorted(clash)[0]} has the name of a built-in template"
            )
        files += own
    found = {f.name: parse(f.read_text("utf-8"), field=f.name) for f in files}
    keys = {f"{doc.get('id')}@{doc.get('version')}": name for name, doc in found.items()}
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: tuple[str, ...] = ()) -> int:
        if name in seen:
            raise InvalidInput("templates", f"{' → '.join((*seen, name))} are based on each other")
        if name not in depth:
            below = [keys[str(r)] for r in _based_on(found[name], name) if str(r) in keys]
            depth[name] = 1 + max((depth_of(b, (*seen, name)) for b in below), default=-1)
        return depth[name]

    ordered = sorted(found, key=lambda name: (_layer_rank(name), depth_of(name), name))
    return [(name, found[name]) for name in ordered]


def _layer_rank(filename: str) -> int:
    prefix = filename.partition("-")[0]
    if prefix not in LAYER_ORDER:
        raise InvalidInput("templates", f"{filename} must start with its layer ({', '.join(LAYER_ORDER)})")
    return LAYER_ORDER.index(prefix)


def _based_on(document: dict[str, Any], filename: str):
    value = document.get("basedOn") if kpidoc.is_kpi(document) else custom_properties(document).get("basedOn")
    return refs(value, f"{filename}: basedOn")
