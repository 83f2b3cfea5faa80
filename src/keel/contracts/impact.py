"""Impact analysis (pure): the dependency graph of the contracts, and the blast radius of a change.

The graph holds what the registry knows, handed over as plain values (``impact_store.load_graph``
reads them from the store): every contract version with the versions it is based on, the
tables it describes (``raw.erp__invoices``, ``gdp.invoice``, ``kpi.KPI-DSO``) and its column
lineage (``gdp.invoice.amount_open`` ← ``raw.erp__invoices.amount_net``); which tenants run
each contract; the consumers outside the registry (dashboards, KPI views, workflows,
reports, exports) with the contracts they depend on and the people they name; and whom to
tell per tenant (its Tenant Admins) and for the platform (the Platform Admins).

``blast_radius`` walks the graph downstream, Raw → GDP → KPI → consumers:

* **Downstream** are the *live* versions (published or deprecated: what tenants and
  consumers run) based on a version of an impacted contract, transitively. The changed
  contract itself is always in the radius, whatever the state of its versions.
* **Column level.** Given ``fields`` (a change to those fields of the changed contract),
  only what the lineage derives from them is impacted: the columns reached through the
  lineage edges and the contracts that own them. A live GDP/KPI version without lineage
  cannot be traced; when it is based on an impacted contract it is taken as impacted as a
  whole (and the gap is reported). A field no lineage mentions (a new field) impacts only
  the changed contract's own tables.
* **Consumers** are impacted when they depend on an impacted contract (a consumer says
  which contracts it reads, not which columns, so the check is per contract). A tenant's
  consumer only ever sees global contracts and its own tenant's.
* **Tenants** are those running an impacted contract, owning a tenant-scoped one, or owning
  an impacted consumer. **Recipients** are the impacted consumers' people, the Tenant Admins
  of the impacted tenants and the Platform Admins. ``assets`` pairs each impacted consumer
  and tenant with the people who answer for it (``coverage_of_notified_assets`` counts an
  asset covered when one of them was reached).
* **Dataset names** are the layer and the table, lower case, non-alphanumerics as ``_``:
  ``gdp.invoice`` → ``gdp_invoice``, ``kpi.KPI-DSO`` → ``kpi_dso`` (a table already
  starting with its layer is not prefixed twice), ``raw.erp__invoices`` → ``raw_erp__invoices``.
* **Gaps** make the graph incomplete (``complete`` False, ``gaps`` say where): a consumer
  depending on a contract the graph does not describe (or may not see), a live GDP/KPI
  version in the radius without column lineage, a lineage edge in the radius reading a table
  no contract describes, a version in the radius based on a version the graph lacks.
* **Risk** (a suggestion for the Schema Steward): ``size`` = downstream contracts +
  impacted consumers + impacted tenants; ``low`` up to ``LOW_MAX``, ``medium`` up to
  ``MEDIUM_MAX``, ``high`` above; an incomplete graph raises it one step, because what the
  graph cannot see cannot be assumed safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keel.kernel.errors import InvalidInput, NotFound

LIVE = frozenset({"published", "deprecated"})
TRACED_LAYERS = frozenset({"gdp", "kpi"})  # layers whose versions carry lineage
CONSUMER_KINDS = ("dashboard", "kpi_view", "workflow", "report", "export")
RISKS = ("low", "medium", "high")
LOW_MAX = 2
MEDIUM_MAX = 6
_NOT_NAME = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Node:
    """One contract version as the graph sees it. ``based_on`` holds ``ID@VERSION`` keys."""

    contract_id: str
    version: str
    layer: str
    status: str
    tenant_id: str | None = None
    based_on: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    lineage: tuple[tuple[str, str], ...] = ()  # (target column, source column)

    @property
    def key(self) -> str:
        return f"{self.contract_id}@{self.version}"

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def bases(self) -> set[str]:
        """The contract ids this version is based on."""
        return {key.partition("@")[0] for key in self.based_on}


@dataclass(frozen=True, slots=True)
class Consumer:
    """Something outside the registry that reads contracts: a dashboard, a workflow, an export..."""

    id: str
    kind: str
    name: str
    depends_on: tuple[str, ...]
    recipients: tuple[str, ...] = ()
    tenant_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "consumer_id": self.id,
            "kind": self.kind,
            "name": self.name,
            "tenant_id": self.tenant_id,
            "depends_on": list(self.depends_on),
            "recipients": list(self.recipients),
        }


@dataclass(frozen=True)
class Graph:
    """Everything the blast radius is computed from."""

    nodes: tuple[Node, ...] = ()
    consumers: tuple[Consumer, ...] = ()
    running: Mapping[str, frozenset[str]] = field(default_factory=dict)  # contract id -> tenant ids
    tenant_contacts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # tenant -> user ids
    platform_contacts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Impact:
    """The blast radius of a change to ``contract_id`` (to its ``fields`` when given)."""

    contract_id: str
    fields: tuple[str, ...] | None
    contracts: tuple[str, ...]
    datasets: tuple[str, ...]
    columns: tuple[str, ...]
    kpis: tuple[str, ...]
    consumers: tuple[Consumer, ...]
    tenants: tuple[str, ...]
    recipients: tuple[str, ...]
    assets: tuple[tuple[str, tuple[str, ...]], ...]  # ("consumer:<id>" | "tenant:<id>", people)
    complete: bool
    gaps: tuple[str, ...]
    risk: str

    def names(self, kind: str) -> tuple[str, ...]:
        """Names of the impacted consumers of one kind (``dashboard``, ``workflow``, ...)."""
        return tuple(sorted({c.name for c in self.consumers if c.kind == kind}))

    @property
    def size(self) -> int:
        return len(self.contracts) - 1 + len(self.consumers) + len(self.tenants)

    def scope(self) -> dict[str, list[str]]:
        """The ``impact_scope`` of the story artifact."""
        scope = {
            "contracts": list(self.contracts),
            "datasets": list(self.datasets),
            "columns": list(self.columns),
            "kpis": list(self.kpis),
        }
        scope |= {f"{kind}s": list(self.names(kind)) for kind in CONSUMER_KINDS}
        scope["tenants"] = list(self.tenants)
        return scope

    def as_dict(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "fields": list(self.fields) if self.fields is not None else None,
            "impact_scope": self.scope(),
            "consumers": [c.as_dict() for c in self.consumers],
            "recipients": list(self.recipients),
            "assets": {asset: list(people) for asset, people in self.assets},
            "complete": self.complete,
            "gaps": list(self.gaps),
            "risk": self.risk,
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Impact:
        """The impact ``as_dict`` gave (e.g. attached to a change request and read back)."""
        try:
            scope = data["impact_scope"]
            fields = data.get("fields")
            return cls(
                contract_id=str(data["contract_id"]),
                fields=tuple(fields) if fields is not None else None,
                contracts=tuple(scope["contracts"]),
                datasets=tuple(scope["datasets"]),
                columns=tuple(scope.get("columns", ())),
                kpis=tuple(scope.get("kpis", ())),
                consumers=tuple(
                    Consumer(
                        id=c["consumer_id"],
                        kind=c["kind"],
                        name=c["name"],
                        depends_on=tuple(c.get("depends_on", ())),
                        recipients=tuple(c.get("recipients", ())),
                        tenant_id=c.get("tenant_id"),
                    )
                    for c in data.get("consumers", ())
                ),
                tenants=tuple(scope.get("tenants", ())),
                recipients=tuple(data.get("recipients", ())),
                assets=tuple((a, tuple(p)) for a, p in sorted(data.get("assets", {}).items())),
                complete=bool(data["complete"]),
                gaps=tuple(data.get("gaps", ())),
                risk=str(data["risk"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput("impact", f"is not an impact analysis ({type(exc).__name__}: {exc})") from None


def dataset_name(table: str) -> str:
    """``gdp.invoice`` → ``gdp_invoice``; ``kpi.KPI-DSO`` → ``kpi_dso``."""
    layer, _, name = table.partition(".")
    slug = _NOT_NAME.sub("_", name.lower()).strip("_")
    return slug if slug.startswith(f"{layer}_") else f"{layer}_{slug}"


def suggest_risk(size: int, complete: bool) -> str:
    """``low``/``medium``/``high`` from the size of the radius, one step up when the graph has gaps."""
    level = 0 if size <= LOW_MAX else 1 if size <= MEDIUM_MAX else 2
    if not complete:
        level = min(level + 1, len(RISKS) - 1)
    return RISKS[level]


def blast_radius(graph: Graph, contract_id: str, *, fields: Iterable[str] | None = None) -> Impact:
    """What a change to ``contract_id`` (to its ``fields``, when given) reaches downstream."""
    own = [n for n in graph.nodes if n.contract_id == contract_id]
    if not own:
        raise NotFound("contract", contract_id)
    live = [n for n in graph.nodes if n.live]
    reached = _downstream(live, contract_id)
    own_tables = sorted({t for n in own for t in n.tables})
    if fields is None:
        contracts = reached
        tables = set(own_tables) | {t for n in live if n.contract_id in reached for t in n.tables}
        columns: set[str] = set()
    else:
        fields = tuple(dict.fromkeys(fields))
        contracts, tables, columns = _column_radius(live, contract_id, own_tables, fields)
    visible = _tenant_of(graph.nodes)
    consumers = tuple(
        sorted(
            (
                c
                for c in graph.consumers
                if any(_sees(c, d, visible) and d in contracts for d in c.depends_on)
            ),
            key=lambda c: c.id,
        )
    )
    tenants = set().union(*(graph.running.get(c, frozenset()) for c in contracts))
    tenants |= {visible[c] for c in contracts if visible.get(c)}
    tenants |= {c.tenant_id for c in consumers if c.tenant_id}
    assets = [(f"consumer:{c.id}", tuple(sorted(set(c.recipients)))) for c in consumers]
    assets += [(f"tenant:{t}", tuple(sorted(set(graph.tenant_contacts.get(t, ()))))) for t in sorted(tenants)]
    recipients = {p for _, people in assets for p in people} | set(graph.platform_contacts)
    gaps = _gaps(graph, live, reached, visible)
    kinds = {n.contract_id: n.layer for n in graph.nodes}
    size = len(contracts) - 1 + len(consumers) + len(tenants)
    return Impact(
        contract_id=contract_id,
        fields=fields,
        contracts=tuple(sorted(contracts, key=lambda c: (c != contract_id, c))),
        datasets=tuple(sorted({dataset_name(t) for t in tables})),
        columns=tuple(sorted(columns)),
        kpis=tuple(sorted(c for c in contracts if kinds.get(c) == "kpi")),
        consumers=consumers,
        tenants=tuple(sorted(tenants)),
        recipients=tuple(sorted(recipients)),
        assets=tuple(assets),
        complete=not gaps,
        gaps=tuple(gaps),
        risk=suggest_risk(size, not gaps),
    )


# -- the walks ------------------------------------------------------------------------------------


def _downstream(live: list[Node], contract_id: str) -> set[str]:
    """``contract_id`` and every contract with a live version based on one already reached."""
    reached = {contract_id}
    grew = True
    while grew:
        grew = False
        for node in live:
            if node.contract_id not in reached and node.bases & reached:
                reached.add(node.contract_id)
                grew = True
    return reached


def _column_radius(
    live: list[Node], contract_id: str, own_tables: list[str], fields: tuple[str, ...]
) -> tuple[set[str], set[str], set[str]]:
    """Contracts, tables and columns derived from ``fields`` of ``contract_id`` through the lineage."""
    columns: set[str] = set()
    tables: set[str] = set()
    for name in fields:
        for table, column in _targets(name, own_tables):
            tables.add(table)
            columns.add(f"{table}.{column}")
    contracts = {contract_id}
    whole: set[str] = set()  # tables taken as impacted entirely: their lineage is unknown
    grew = True
    while grew:
        grew = False
        for node in live:
            for target, source in node.lineage:
                if target not in columns and (source in columns or _table(source) in whole):
                    columns.add(target)
                    contracts.add(node.contract_id)
                    grew = True
            untraced = not node.lineage and node.layer in TRACED_LAYERS
            if untraced and node.contract_id not in contracts and node.bases & contracts:
                contracts.add(node.contract_id)
                whole.update(node.tables)
                grew = True
    tables |= {_table(c) for c in columns} | whole
    return contracts, tables, columns


def _targets(name: str, own_tables: list[str]) -> list[tuple[str, str]]:
    """Where a changed field lives: ``amount`` (every own table), ``invoice.amount`` or
    ``gdp.invoice.amount`` (that table)."""
    for table in own_tables:
        short = table.partition(".")[2]
        for prefix in (f"{table}.", f"{short}."):
            if name.startswith(prefix) and "." not in name[len(prefix) :]:
                return [(table, name[len(prefix) :])]
    if "." in name:
        return []  # names a table the contract does not have: nothing of it changes
    return [(table, name) for table in own_tables]


def _gaps(graph: Graph, live: list[Node], reached: set[str], visible: dict[str, str | None]) -> list[str]:
    known_keys = {n.key for n in graph.nodes}
    known_tables = {t for n in graph.nodes for t in n.tables}
    gaps = set()
    for consumer in graph.consumers:
        for dependency in consumer.depends_on:
            if not _sees(consumer, dependency, visible):
                gaps.add(
                    f"consumer {consumer.id} ({consumer.kind} '{consumer.name}') depends on "
                    f"'{dependency}', which no contract describes"
                )
    for node in live:
        if node.contract_id not in reached:
            continue
        if node.layer in TRACED_LAYERS and not node.lineage:
            gaps.add(f"{node.key} is {node.status} but has no column lineage")
        for table in sorted({_table(source) for _, source in node.lineage} - known_tables):
            gaps.add(f"{node.key}: lineage reads {table}, which no contract describes")
        for key in node.based_on:
            if key not in known_keys:
                gaps.add(f"{node.key} is based on {key}, which the graph does not hold")
    return sorted(gaps)


def _tenant_of(nodes: Iterable[Node]) -> dict[str, str | None]:
    """Each known contract id → its tenant (None: global)."""
    return {n.contract_id: n.tenant_id for n in nodes}


def _sees(consumer: Consumer, contract_id: str, tenant_of: dict[str, str | None]) -> bool:
    """Whether the graph describes ``contract_id`` for ``consumer`` (a tenant's consumer never
    reaches another tenant's contract)."""
    if contract_id not in tenant_of:
        return False
    owner = tenant_of[contract_id]
    return owner is None or consumer.tenant_id is None or owner == consumer.tenant_id


def _table(column: str) -> str:
    return column.rsplit(".", 1)[0]
