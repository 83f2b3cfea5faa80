"""The fifteen personas and the permission matrix of STORIES.md ("Personas and permissions").

``MATRIX`` is transcribed cell by cell from the story digest; the action catalog
(``keel.authz.actions``) turns it into concrete grants. The one column the digest
does not give is the Integration Operator's: it is Read in every area here, and its
execute rights (replays, backfills, reruns) are granted action by action in the
catalog, so no matrix level hands it anything more.
"""

from __future__ import annotations

from enum import StrEnum


class Persona(StrEnum):
    """A persona; its value is the abbreviation the matrix uses."""

    # Provider personas
    PO = "PO"
    PA = "PA"
    SA = "SA"
    SS = "SS"
    KA = "KA"
    WA = "WA"
    SRE = "SRE"
    CO = "CO"
    AU = "AU"
    # Tenant personas
    TA = "TA"
    TP = "TP"
    BO = "BO"
    DE = "DE"
    AN = "AN"
    IO = "IO"

    @property
    def title(self) -> str:  # type: ignore[override]  # deliberately shadows str.title
        """The persona's name as the stories spell it, e.g. "Platform Admin"."""
        return _TITLES[self]

    @property
    def is_provider(self) -> bool:
        """True for the platform provider's staff; False for a tenant's people."""
        return self in _PROVIDER


_TITLES: dict[Persona, str] = {
    Persona.PO: "Platform Owner",
    Persona.PA: "Platform Admin",
    Persona.SA: "Security Admin",
    Persona.SS: "Schema Steward",
    Persona.KA: "KPI Author",
    Persona.WA: "Workflow Author",
    Persona.SRE: "Observability/SRE",
    Persona.CO: "Compliance Officer",
    Persona.AU: "Auditor",
    Persona.TA: "Tenant Admin",
    Persona.TP: "Tenant Approver",
    Persona.BO: "Business Owner",
    Persona.DE: "Tenant Data Engineer",
    Persona.AN: "Analyst/Viewer",
    Persona.IO: "Integration Operator",
}

_PROVIDER = frozenset(Persona(code) for code in ("PO", "PA", "SA", "SS", "KA", "WA", "SRE", "CO", "AU"))


class ServiceArea(StrEnum):
    """A row of the matrix."""

    PLATFORM = "platform"
    IAM = "iam"
    SCHEMA = "schema"
    KPI = "kpi"
    WORKFLOW = "workflow"
    CONNECTOR = "connector"
    OBSERVABILITY = "observability"
    EVIDENCE = "evidence"

    @property
    def label(self) -> str:
        """The row's name in the story digest."""
        return _AREA_LABELS[self]


_AREA_LABELS: dict[ServiceArea, str] = {
    ServiceArea.PLATFORM: "PHS control APIs",
    ServiceArea.IAM: "IAM/RBAC & KMS",
    ServiceArea.SCHEMA: "Schema services (contracts)",
    ServiceArea.KPI: "KPI services",
    ServiceArea.WORKFLOW: "Activation/workflows",
    ServiceArea.CONNECTOR: "Connectors & ingestion",
    ServiceArea.OBSERVABILITY: "Observability/cost",
    ServiceArea.EVIDENCE: "Evidence/lineage",
}


class Level(StrEnum):
    """A matrix cell: Manage, Approve, Configure or Read."""

    M = "M"
    A = "A"
    C = "C"
    R = "R"

    @property
    def title(self) -> str:  # type: ignore[override]
        return {"M": "Manage", "A": "Approve", "C": "Configure", "R": "Read"}[self.value]


# The matrix exactly as STORIES.md prints it, plus the IO column (Read everywhere).
_MATRIX_TABLE = """
area           PO PA SA SS KA WA SRE CO AU TA TP BO DE AN IO
platform       A  M  C  C  C  C  C   R  R  R  C  R  R  R  R
iam            A  C  M  R  R  R  R   R  R  R  C  R  R  R  R
schema         C  C  C  M  C  R  R   R  R  R  C  R  C  R  R
kpi            R  C  C  C  M  R  R   R  R  R  C  C  C  R  R
workflow       C  C  C  R  C  M  R   R  R  C  A  A  C  R  R
connector      C  A  C  C  R  R  R   R  R  M  C  R  M  R  R
observability  R  M  R  R  R  R  M   R  R  R  C  R  R  R  R
evidence       R  R  R  R  R  R  R   M  R  R  R  R  R  R  R
"""


def _parse_matrix(table: str) -> dict[ServiceArea, dict[Persona, Level]]:
    header, *rows = (line.split() for line in table.strip().splitlines())
    personas = [Persona(code) for code in header[1:]]
    return {
        ServiceArea(area): dict(zip(personas, (Level(cell) for cell in cells), strict=True))
        for area, *cells in rows
    }


MATRIX: dict[ServiceArea, dict[Persona, Level]] = _parse_matrix(_MATRIX_TABLE)

# What holding a level lets a persona do. Manage does not imply Approve: approving
# is kept for the personas the matrix names, so whoever manages a thing never signs
# it off by virtue of managing it.
_IMPLIES: dict[Level, frozenset[Level]] = {
    Level.M: frozenset({Level.M, Level.C, Level.R}),
    Level.A: frozenset({Level.A, Level.R}),
    Level.C: frozenset({Level.C, Level.R}),
    Level.R: frozenset({Level.R}),
}


def grants(persona: Persona, area: ServiceArea, level: Level) -> bool:
    """Whether ``persona``'s matrix cell for ``area`` covers an action needing ``level``."""
    return level in _IMPLIES[MATRIX[area][persona]]
