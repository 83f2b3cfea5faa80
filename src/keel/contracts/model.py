"""The contract model Keel reasons about (pure): layers, datasets, fields, KPI specs, references.

Raw and GDP contracts are stored as Open Data Contract Standard v3 documents
(``odcs.py`` reads them into this model and never rewrites the document); KPI
contracts are Keel documents (``kpi.py``). Everything downstream — governance
rules, compatibility, mappings, drift, impact — works on these frozen values.

Field types use one vocabulary across layers (``TYPES``): the ODCS logical types,
with ``decimal`` for exact numbers (ODCS ``number`` with a decimal/numeric
physical type) so money is never silently a float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

TYPES = ("string", "integer", "number", "decimal", "boolean", "date", "timestamp", "time", "object", "array")

# A type that may take the values of another without loss (used by mappings and
# compatibility): an integer is a number and a decimal, a date is a timestamp.
WIDENS_TO: dict[str, frozenset[str]] = {
    "integer": frozenset({"number", "decimal"}),
    "decimal": frozenset({"number"}),
    "date": frozenset({"timestamp"}),
}

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
CONTRACT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
NAMESPACE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


class Layer(StrEnum):
    RAW = "raw"
    GDP = "gdp"
    KPI = "kpi"


class Status(StrEnum):
    """A contract version's lifecycle (``lifecycle.py`` says who moves it where)."""

    DRAFT = "draft"
    REGISTERED = "registered"
    VALIDATED = "validated"
    APPROVED = "approved"
    PUBLISHED = "published"
    DEPRECATED = "deprecated"
    RETIRED = "retired"
    REJECTED = "rejected"


def widens(source: str, target: str) -> bool:
    """True when a value of type ``source`` fits a field of type ``target`` without loss."""
    return source == target or target in WIDENS_TO.get(source, frozenset())


@dataclass(frozen=True, slots=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = SEMVER.match(str(text).removeprefix("v"))
        if not match:
            raise ValueError(f"'{text}' is not a semantic version MAJOR.MINOR.PATCH")
        return cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def __lt__(self, other: Version) -> bool:
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)


@dataclass(frozen=True, slots=True)
class Field:
    """One column of a dataset. ``location`` points into the source document (for errors)."""

    name: str
    type: str
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    classification: str | None = None
    pii: bool | None = None
    description: str = ""
    location: str = ""


@dataclass(frozen=True, slots=True)
class Dataset:
    """A table of a contract: Raw tables are ``<source>__<stream>``; GDP tables are entities."""

    name: str
    fields: tuple[Field, ...]
    mapping_sql: str | None = None  # GDP: a SELECT over Raw tables producing these fields
    location: str = ""

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to another contract's version (``version`` None means the newest published)."""

    contract_id: str
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.contract_id}@{self.version}" if self.version else self.contract_id


@dataclass(frozen=True, slots=True)
class Threshold:
    """A KPI threshold: breached when ``value <op> limit``; ``severity`` is warning or critical."""

    name: str
    op: str
    limit: float
    severity: str = "warning"


@dataclass(frozen=True, slots=True)
class KpiSpec:
    """What a KPI contract computes: ``formula`` (SQL aggregate expression over the GDP fields
    of ``based_on``) per ``grain`` (a time bucket of ``time_field``) and ``dimensions``."""

    formula: str
    grain: str
    time_field: str
    unit: str
    dimensions: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    thresholds: tuple[Threshold, ...] = ()
    targets: tuple[tuple[str, float], ...] = ()  # (period label or "default", value)
    visible_to: tuple[str, ...] = ()  # persona codes that may read the results


@dataclass(frozen=True, slots=True)
class Contract:
    """One version of a contract, as the registry and its rules see it."""

    id: str
    name: str
    version: str
    layer: Layer
    owner: str | None = None
    domain: str | None = None
    retention: str | None = None
    regulatory_tags: tuple[str, ...] = ()
    datasets: tuple[Dataset, ...] = ()
    based_on: tuple[Ref, ...] = ()
    kpi: KpiSpec | None = None
    drift_policy: str = "alert"  # raw: continue (alert), quarantine or stop when drift is seen
    compatibility: str = "BACKWARD"
    extension_namespace: str | None = None  # set on a tenant extension's fields' prefix
    custom: dict = field(default_factory=dict, hash=False, compare=False)

    def dataset(self, name: str) -> Dataset | None:
        return next((d for d in self.datasets if d.name == name), None)

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"
