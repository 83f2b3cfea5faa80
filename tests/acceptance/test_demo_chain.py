"""``keel demo``: the chain built so far (00a, 00d, 01, 01b, 01c, 05) in a fresh KEEL_HOME, via the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from keel.cli.main import app
from keel.contracts.templates import load_templates

# The shipped KPI templates, each read and snapshotted by the seed (one step each).
DEMO_KPIS = [f"KPI-{name[4:-5].upper()}" for name, _ in load_templates() if name.startswith("kpi-")]
SEED_STEPS = 8 + len(DEMO_KPIS)

CHAIN = [
    ("provision tenant initech", "PA", "PROVISIONED"),
    ("validate tenant isolation", "SA", "ACTIVE"),
    ("request offboarding", "PA", "PENDING"),
    ("approve offboarding", "PO", "APPROVED"),
    ("archive tenant evidence", "CO", None),  # the archive's hash
    ("decommission tenant", "PA", "DECOMMISSIONED"),
    ("confirm wipe", "SA", "wipe confirmed"),
    ("audit the decommissioning", "AU", "policy adherence PASS"),
]


def run_demo(settings, home, *flags: str):
    env = {
        "KEEL_HOME": str(settings.home),  # ignored by the demo, which uses --home
        "KEEL_DATABASE_URL": settings.database_url,  # a fresh per-test schema on PostgreSQL
        "KEEL_DATABASE_SCHEMA": settings.database_schema,
        "KEEL_URL": None,
        "KEEL_TOKEN": None,
        "COLUMNS": "200",
    }
    return CliRunner().invoke(app, [*flags, "demo", "--home", str(home)], env=env)


@pytest.mark.slow
def test_the_demo_runs_the_whole_chain_and_ends_with_a_verified_ledger(settings, tmp_path):
    home = tmp_path / "demo"

    result = run_demo(settings, home, "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    seeded, chain = summary["steps"][:SEED_STEPS], summary["steps"][SEED_STEPS:]
    templates = len(load_templates())
    assert [s["name"] for s in seeded[:5]] == [
        "provider users created (one per provider persona)",
        "platform deployed and validated",
        "RBAC baseline defined, applied and reviewed",
        f"{templates} contract templates loaded, validated, reviewed and published (00c)",
        "tenant 'acme' provisioned, validated, one user per tenant persona",
    ]
    # The sample ERP and CRM, onboarded by their personas and ingested into acme's Raw layer.
    erp = seeded[5]["name"]
    assert erp.startswith("source ERP onboarded to READY (00b, 02, 02b), ") and erp.endswith(
        " records ingested into Raw"
    )
    assert seeded[6]["name"].startswith("source CRM onboarded to READY")
    # Raw -> GDP with the dirty invoices quarantined, then each KPI read with its threshold status and
    # a signed snapshot (its receipt's id is the step's subject).
    assert (
        seeded[7]["name"].startswith("GDP built from Raw (")
        and "dirty invoices quarantined" in seeded[7]["name"]
    )
    kpis = seeded[8:]
    assert [s["name"].split()[1] for s in kpis] == sorted(DEMO_KPIS)
    assert all(" snapshot " in s["name"] and s["subject"].startswith("RCP-") for s in kpis)
    assert any(" breached" in s["name"] for s in kpis) and any(" ok" in s["name"] for s in kpis)
    assert [s["subject"][:4] for s in seeded[1:]] == ["DEP-", "RBAC", "-", "TEN-", "SRC-", "SRC-", "-"] + [
        "RCP-"
    ] * len(DEMO_KPIS)
    assert [(s["name"], s["persona"]) for s in chain] == [(name, persona) for name, persona, _ in CHAIN]
    assert [s["status"] for s in chain if not s["name"].startswith("archive")] == [
        status for name, _, status in CHAIN if status
    ]
    tenant_id = chain[0]["subject"]
    assert summary["tenant"] == {"tenant_id": tenant_id, "slug": "initech", "status": "DECOMMISSIONED"}
    assert summary["receipts"][-1] == {
        "status": "DECOMMISSIONED",
        "signed_off": ["approved_by", "archived_by", "deleted_by", "validated_by"],
    }
    report = summary["verify"]
    assert (report["ok"], report["first_bad_seq"], report["entries_checked"]) == (
        True,
        None,
        summary["ledger_size"],
    )
    assert (home / "demo-credentials.json").exists()
    acme_id = seeded[4]["subject"]
    assert [p.name for p in (home / "tenants").iterdir()] == [acme_id]  # initech's data plane is gone


@pytest.mark.slow
def test_the_demo_prints_a_summary_for_people(settings, tmp_path):
    home = tmp_path / "demo"

    result = run_demo(settings, home)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for number, (name, persona, _) in enumerate(CHAIN, start=SEED_STEPS + 1):
        assert any(f"│ {number:<2} │ {name} " in line and f"│ {persona} " in line for line in lines), name
    assert any(line.startswith("ledger: ") and ", verifies: " in line for line in lines)
    assert f"state kept in {home}" in result.stdout
    assert "chain complete" in result.stderr  # the progress bar ran to its end


def test_the_demo_refuses_a_home_that_is_not_empty(settings, tmp_path):
    home = tmp_path / "used"
    home.mkdir()
    (home / "keel.db").write_text("")

    result = run_demo(settings, home)

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: home: {home} is not an empty directory; the demo needs a fresh KEEL_HOME",
        "  field: home",
    ]
