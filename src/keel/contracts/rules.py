"""The registry's rules for a contract, as ordered lists of functions with one signature.

Each rule takes the contract and the contracts it references (``Context``) and
yields ``Problem`` values naming the rule, the place in the document and what is
wrong. ``STRUCTURE`` is what the Schema Steward's validation runs (structure,
metadata, types, mappings, formulas); ``COMPLIANCE`` is what the Compliance
Officer's review runs (retention, regulatory tags a domain requires, PII handling).
``keel contract lint`` runs both, offline, so a data team's CI applies exactly the
registry's rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from keel.contracts.model import CONTRACT_ID, SEMVER, TYPES, Contract, Dataset, Layer
from keel.kernel.errors import InvalidInput

CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
DRIFT_POLICIES = ("alert", "quarantine", "stop")
# Domains whose contracts must carry regulatory tags, and which tags count.
DOMAIN_TAGS: dict[str, frozenset[str]] = {
    "finance": frozenset({"SOX", "IFRS", "IFRS15", "GAAP", "BASEL", "MIFID", "SOX404"}),
    "hr": frozenset({"GDPR", "CCPA"}),
}
PRIVACY_TAGS = frozenset({"GDPR", "CCPA", "LGPD", "PIPEDA"})


@dataclass(frozen=True, slots=True)
class Problem:
    rule: str
    where: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "where": self.where, "detail": self.detail}


@dataclass(frozen=True)
class Context:
    """What a contract's rules may look at besides the contract: the contracts it is based on,
    by ``Ref`` text (``ID@VERSION``) and by id alone."""

    referenced: Mapping[str, Contract] = field(default_factory=dict)

    def resolve(self, ref) -> Contract | None:
        return self.referenced.get(str(ref)) or (
            None if ref.version else self.referenced.get(ref.contract_id)
        )


Rule = Callable[[Contract, Context], Iterator[Problem]]


def identity(contract: Contract, _: Context) -> Iterator[Problem]:
    if not CONTRACT_ID.match(contract.id or ""):
        yield Problem(
            "identity", "id", "must be 1-128 letters, digits or _.:- and start with a letter or digit"
        )
    if not contract.name.strip():
        yield Problem("identity", "name", "is required")
    if not SEMVER.match(contract.version or ""):
        yield Problem(
            "identity", "version", f"'{contract.version}' is not a semantic version MAJOR.MINOR.PATCH"
        )


def owner(contract: Contract, _: Context) -> Iterator[Problem]:
    if not (contract.owner or "").strip():
        where = "owner" if contract.layer is Layer.KPI else "customProperties.owner"
        yield Problem("owner", where, "every contract names its owner")


def datasets(contract: Contract, _: Context) -> Iterator[Problem]:
    if contract.layer is Layer.KPI:
        return
    if not contract.datasets:
        yield Problem("datasets", "schema", "a Raw or GDP contract describes at least one dataset")
    for name, count in Counter(d.name for d in contract.datasets).items():
        if count > 1:
            yield Problem("datasets", "schema", f"dataset '{name}' is described {count} times")
    for dataset in contract.datasets:
        if not dataset.name:
            yield Problem("datasets", dataset.location, "every dataset has a name")
        if not dataset.fields:
            yield Problem("datasets", dataset.location, f"dataset '{dataset.name}' has no properties")
        for name, count in Counter(f.name for f in dataset.fields).items():
            if count > 1:
                yield Problem("datasets", dataset.location, f"field '{name}' is described {count} times")


def field_types(contract: Contract, _: Context) -> Iterator[Problem]:
    for dataset, item in _fields(contract):
        if not item.name:
            yield Problem("field_types", item.location, "every property has a name")
        if item.type not in TYPES:
            found = f"'{item.type}'" if item.type else "no logicalType"
            yield Problem(
                "field_types",
                f"{item.location}.logicalType",
                f"{dataset.name}.{item.name} has {found}; Keel knows {', '.join(TYPES)}",
            )


def classification(contract: Contract, _: Context) -> Iterator[Problem]:
    for dataset, item in _fields(contract):
        if item.classification not in CLASSIFICATIONS:
            found = f"'{item.classification}'" if item.classification else "none"
            yield Problem(
                "classification",
                f"{item.location}.classification",
                f"{dataset.name}.{item.name} has classification {found}; one of {', '.join(CLASSIFICATIONS)}",
            )


def pii_flags(contract: Contract, _: Context) -> Iterator[Problem]:
    for dataset, item in _fields(contract):
        if item.pii is None:
            yield Problem(
                "pii_flags",
                f"{item.location}.customProperties.pii",
                f"{dataset.name}.{item.name} must say pii: true or false",
            )


def raw_policies(contract: Contract, _: Context) -> Iterator[Problem]:
    if contract.layer is Layer.RAW and contract.drift_policy not in DRIFT_POLICIES:
        yield Problem(
            "raw_policies",
            "customProperties.driftPolicy",
            f"'{contract.drift_policy}' is not one of {', '.join(DRIFT_POLICIES)}",
        )


def compatibility_mode(contract: Contract, _: Context) -> Iterator[Problem]:
    from keel.contracts.compatibility import Mode

    if contract.compatibility not in {m.value for m in Mode}:
        yield Problem(
            "compatibility",
            "customProperties.compatibility" if contract.layer is not Layer.KPI else "compatibility",
            f"'{contract.compatibility}' is not one of {', '.join(m.value for m in Mode)}",
        )


def references(contract: Contract, context: Context) -> Iterator[Problem]:
    where = "basedOn" if contract.layer is Layer.KPI else "customProperties.basedOn"
    needed = {Layer.GDP: Layer.RAW, Layer.KPI: Layer.GDP}.get(contract.layer)
    if needed and not contract.based_on:
        yield Problem(
            "references", where, f"a {contract.layer.upper()} contract is based on {needed.upper()} contracts"
        )
    for ref in contract.based_on:
        found = context.resolve(ref)
        if found is None:
            yield Problem("references", where, f"'{ref}' is not a known contract version")
        elif needed and found.layer is not needed and found.layer is not contract.layer:
            yield Problem("references", where, f"'{ref}' is a {found.layer} contract, not {needed}")


def gdp_mappings(contract: Contract, context: Context) -> Iterator[Problem]:
    if contract.layer is not Layer.GDP:
        return
    from keel.contracts.mapping import validate_mapping

    sources = source_tables(contract, context)
    for dataset in contract.datasets:
        if not (dataset.mapping_sql or "").strip():
            yield Problem(
                "gdp_mappings",
                f"{dataset.location}.customProperties.mapping",
                "a GDP dataset needs a mapping",
            )
            continue
        if not _references_resolved(contract, context):
            continue  # reported by ``references``; the mapping cannot be checked without its sources
        try:
            validate_mapping(dataset.mapping_sql, dataset, sources)
        except InvalidInput as exc:
            yield Problem("gdp_mappings", f"{dataset.location}.customProperties.mapping", exc.detail)


def kpi_formula(contract: Contract, context: Context) -> Iterator[Problem]:
    if contract.layer is not Layer.KPI or contract.kpi is None or not _references_resolved(contract, context):
        return
    from keel.contracts.kpi_sql import validate_kpi

    try:
        validate_kpi(contract.kpi, gdp_tables(contract, context))
    except InvalidInput as exc:
        yield Problem("kpi_formula", "kpi", exc.detail)


def retention(contract: Contract, _: Context) -> Iterator[Problem]:
    if not (contract.retention or "").strip():
        where = "retention" if contract.layer is Layer.KPI else "slaProperties.retention"
        yield Problem("retention", where, "every contract states how long its data is kept")


def domain_tags(contract: Contract, _: Context) -> Iterator[Problem]:
    wanted = DOMAIN_TAGS.get((contract.domain or "").lower())
    if wanted and not wanted & {t.upper() for t in contract.regulatory_tags}:
        where = "regulatoryTags" if contract.layer is Layer.KPI else "customProperties.regulatoryTags"
        yield Problem(
            "domain_tags",
            where,
            f"a {contract.domain} contract needs a regulatory tag (one of {', '.join(sorted(wanted))})",
        )


def pii_handling(contract: Contract, _: Context) -> Iterator[Problem]:
    pii = [(d, f) for d, f in _fields(contract) if f.pii]
    for dataset, item in pii:
        if item.classification in ("public", "internal"):
            yield Problem(
                "pii_handling",
                f"{item.location}.classification",
                f"{dataset.name}.{item.name} is PII and cannot be classified {item.classification}",
            )
    if pii and not PRIVACY_TAGS & {t.upper() for t in contract.regulatory_tags}:
        yield Problem(
            "pii_handling",
            "customProperties.regulatoryTags",
            f"the contract holds PII ({pii[0][0].name}.{pii[0][1].name}) and needs a privacy tag "
            f"(one of {', '.join(sorted(PRIVACY_TAGS))})",
        )


STRUCTURE: tuple[Rule, ...] = (
    identity,
    owner,
    datasets,
    field_types,
    classification,
    pii_flags,
    raw_policies,
    compatibility_mode,
    references,
    gdp_mappings,
    kpi_formula,
)
COMPLIANCE: tuple[Rule, ...] = (retention, domain_tags, pii_handling)


def run(rules: tuple[Rule, ...], contract: Contract, context: Context | None = None) -> list[Problem]:
    context = context or Context()
    return [problem for rule in rules for problem in rule(contract, context)]


def source_tables(contract: Contract, context: Context) -> dict[str, Dataset]:
    """The tables a GDP mapping may read: ``raw.<table>`` of its Raw contracts, ``gdp.<table>`` of
    GDP contracts it is based on (and its own datasets, so one entity can join another)."""
    tables: dict[str, Dataset] = {}
    for ref in contract.based_on:
        found = context.resolve(ref)
        if found is not None:
            for dataset in found.datasets:
                tables[f"{found.layer.value}.{dataset.name}"] = dataset
    return tables


def gdp_tables(contract: Contract, context: Context) -> dict[str, Dataset]:
    return {name: ds for name, ds in source_tables(contract, context).items() if name.startswith("gdp.")}


def _references_resolved(contract: Contract, context: Context) -> bool:
    return all(context.resolve(ref) is not None for ref in contract.based_on)


def _fields(contract: Contract):
    for dataset in contract.datasets:
        for item in dataset.fields:
            yield dataset, item
