"""``keel contract`` (00c, 03a-03c), ``keel change`` (03d) and ``keel build``, through the CLI.

``keel contract lint`` runs offline — no store, no server — with the registry's rules, so a
data team's CI can run it on its own contract files.
"""

from __future__ import annotations

import json

import pytest
from cli_harness import Cli, no_traceback
from tests.support_contracts import gdp_contract, raw_contract, second_steward

from keel.contracts.documents import dump, parse
from keel.contracts.templates import load_templates


@pytest.fixture
def cli(settings):
    return Cli(settings)


def _write(tmp_path, name: str, document: dict):
    path = tmp_path / name
    path.write_text(dump(document))
    return path


def test_lint_passes_a_good_contract_offline_with_its_raw_contract_given(tmp_path):
    cli = Cli.__new__(Cli)  # no store at all: lint needs none
    from typer.testing import CliRunner

    cli.runner, cli.env = CliRunner(), {"KEEL_HOME": str(tmp_path / "never-created"), "COLUMNS": "200"}
    raw = _write(tmp_path, "raw.yaml", raw_contract())
    gdp = _write(tmp_path, "gdp.yaml", gdp_contract())

    result = cli("contract", "lint", str(gdp), "--with", str(raw))

    assert result.exit_code == 0, result.output
    assert "GDP-ORDER@1.0.0 passes every registry rule" in result.output
    assert not (tmp_path / "never-created").exists()


def test_lint_lists_each_problem_with_its_place_and_exits_1(tmp_path, settings):
    cli = Cli(settings)
    bad = raw_contract(tags=())
    del bad["schema"][0]["properties"][1]["classification"]
    path = _write(tmp_path, "raw.yaml", bad)

    result = cli("--json", "contract", "lint", str(path))

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [(p["rule"], p["where"]) for p in report["problems"]] == [
        ("classification", "schema[0].properties[1].classification"),
        ("domain_tags", "customProperties.regulatoryTags"),
        ("pii_handling", "customProperties.regulatoryTags"),
    ]


def test_lint_of_a_mapping_over_unknown_columns_names_line_and_column(tmp_path, settings):
    cli = Cli(settings)
    raw = _write(tmp_path, "raw.yaml", raw_contract())
    gdp = _write(
        tmp_path,
        "gdp.yaml",
        gdp_contract(mapping="SELECT order_id,\n  amountt AS amount, placed_at\nFROM raw.shop__orders"),
    )
    result = cli("contract", "lint", str(gdp), "--with", str(raw))
    assert result.exit_code == 1 and "line 2" in result.output and "amountt" in result.output


def test_lint_refuses_malformed_yaml_and_an_unreadable_file(tmp_path, settings):
    cli = Cli(settings)
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: X\nschema: [unclosed\n")
    result = cli("--json", "contract", "lint", str(broken))
    assert result.exit_code == 1 and json.loads(result.stdout)["problems"][0]["rule"] == "standard"
    missing = cli("contract", "lint", str(tmp_path / "nowhere.yaml"))
    assert missing.exit_code == 2 and no_traceback(missing)


@pytest.mark.parametrize(
    ("filename", "document"), load_templates(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_shipped_template_lints_clean_with_the_templates_it_is_based_on(
    tmp_path, settings, filename, document
):
    cli = Cli(settings)
    others = [
        _write(tmp_path, f"other-{i}-{name}", doc)
        for i, (name, doc) in enumerate(load_templates())
        if name != filename
    ]
    args = [arg for path in others for arg in ("--with", str(path))]
    result = cli("contract", "lint", str(_write(tmp_path, filename, document)), *args)
    assert result.exit_code == 0, result.output


def test_a_contract_is_drafted_registered_validated_reviewed_published_and_exported(cli, world, tmp_path):
    t = world.tokens
    path = _write(tmp_path, "raw.yaml", raw_contract())
    drafted = cli.json("contract", "draft", str(path), token=t["SS"])
    assert drafted["status"] == "draft"
    assert cli.json("contract", "register", "RAW-SHOP", "1.0.0", token=t["PA"])["status"] == "registered"
    steward = second_steward(world)
    assert (
        cli.json("contract", "validate", "RAW-SHOP", "1.0.0", token=world.tokens[steward])["status"]
        == "validated"
    )
    reviewed = cli.json("contract", "review", "RAW-SHOP", "1.0.0", "--approve", token=t["CO"])
    assert reviewed["compliance_check"] == "PASS"
    assert cli.json("contract", "publish", "RAW-SHOP", "1.0.0", token=t["PA"])["status"] == "published"

    listed = cli.json("contract", "list", "--status", "published", token=t["acme:AN"])
    assert [c["schema_id"] for c in listed] == ["RAW-SHOP"]
    out = tmp_path / "exported.yaml"
    result = cli("contract", "export", "RAW-SHOP", "1.0.0", "-o", str(out), token=t["acme:AN"])
    assert result.exit_code == 0, result.output
    assert parse(out.read_text()) == raw_contract()  # the same document (in the standard's key order)


def test_a_rejected_validation_exits_1_and_a_refused_step_names_the_rule(cli, world, tmp_path):
    t = world.tokens
    bad = raw_contract()
    del bad["schema"][0]["properties"][0]["classification"]
    cli.json("contract", "draft", str(_write(tmp_path, "bad.yaml", bad)), token=t["SS"])
    cli.json("contract", "register", "RAW-SHOP", "1.0.0", token=t["PA"])
    own = cli("contract", "validate", "RAW-SHOP", "1.0.0", token=t["SS"])
    assert own.exit_code == 3 and "sod-approve-own-draft" in own.output
    rejected = cli("contract", "validate", "RAW-SHOP", "1.0.0", token=world.tokens[second_steward(world)])
    assert rejected.exit_code == 1 and "rejected" in rejected.output


def test_templates_are_loaded_by_the_platform_admin(cli, world):
    loaded = cli.json("contract", "load-templates", token=world.tokens["PA"])
    assert len(loaded["loaded"]) == len(load_templates())
    refused = cli("contract", "load-templates", token=world.tokens["SS"])
    assert refused.exit_code == 3 and no_traceback(refused)
