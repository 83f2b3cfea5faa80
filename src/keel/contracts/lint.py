"""``keel contract lint``: a contract file checked offline with exactly the registry's rules.

The standard's check (YAML, ODCS JSON Schema and model, or the KPI document model)
comes first; then every structural and compliance rule, with the contracts the file
is based on given as further files. Nothing is stored and no server is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.contracts import rules
from keel.contracts.documents import parse, read_contract
from keel.contracts.model import Contract
from keel.kernel.errors import InvalidInput


@dataclass(frozen=True)
class LintResult:
    contract: Contract | None
    problems: tuple[rules.Problem, ...]

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "schema_id": self.contract.id if self.contract else None,
            "version": self.contract.version if self.contract else None,
            "layer": self.contract.layer.value if self.contract else None,
            "passed": self.passed,
            "problems": [p.as_dict() for p in self.problems],
        }


def lint(document: dict | str, *, based_on: list[dict | str] = (), layer: str | None = None) -> LintResult:
    """Every problem of ``document`` the registry would find, given the contracts it is based on."""
    try:
        contract = read_contract(parse(document) if isinstance(document, str) else document, layer)
    except InvalidInput as exc:
        return LintResult(None, (rules.Problem("standard", exc.fields.get("field", "document"), exc.detail),))
    referenced: dict[str, Contract] = {}
    for i, other in enumerate(based_on):
        try:
            found = read_contract(parse(other) if isinstance(other, str) else other)
        except InvalidInput as exc:
            problem = rules.Problem(
                "standard", f"based_on[{i}].{exc.fields.get('field', 'document')}", exc.detail
            )
            return LintResult(contract, (problem,))
        referenced[f"{found.id}@{found.version}"] = found
        newest = referenced.get(found.id)
        if newest is None or _newer(found, newest):
            referenced[found.id] = found
    problems = rules.run(rules.STRUCTURE + rules.COMPLIANCE, contract, rules.Context(referenced))
    return LintResult(contract, tuple(problems))


def _newer(a: Contract, b: Contract) -> bool:
    from keel.contracts.model import Version

    try:
        return Version.parse(b.version) < Version.parse(a.version)
    except ValueError:
        return False
