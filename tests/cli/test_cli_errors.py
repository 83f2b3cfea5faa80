"""Errors reach the user as ``error: <detail>`` (plus field/rule/reason) and an exit code per kind."""

from __future__ import annotations

import json
import socket

import pytest
from cli_harness import Cli, no_traceback


@pytest.fixture
def cli(settings):
    return Cli(settings)


def provision(cli: Cli, token: str, slug: str, *extra: str):
    args = ["tenant", "provision", "--slug", slug, "--name", "Initech", "--admin-email", "ta@initech.test"]
    return cli(*extra, *args, token=token)


def test_bad_input_exits_2_naming_the_field(cli, world):
    result = provision(cli, world.tokens["PA"], "x")

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: slug: String should have at least 3 characters",
        "  field: slug",
    ]
    assert result.stdout == ""


def test_json_mode_puts_the_problem_document_on_stdout(cli, world):
    result = provision(cli, world.tokens["PA"], "x", "--json")

    assert result.exit_code == 2
    problem = json.loads(result.stdout)
    assert {k: problem[k] for k in ("status", "code", "field")} == {
        "status": 422,
        "code": "invalid_input",
        "field": "slug",
    }


def test_a_denied_command_exits_3_with_the_rule_and_is_evidenced(cli, world):
    result = provision(cli, world.tokens["acme:TA"], "initech")

    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "error: 'tenant:Provision' is forbidden by rule 'deny-tenant-platform-change'",
        "  rule: deny-tenant-platform-change",
        "  reason: forbidden_by_policy",
    ]
    denied = world.events("authz.denied")[-1]
    assert (denied["actor_id"], denied["payload"]["action"]) == (
        world.actors["acme:TA"].user_id,
        "tenant:Provision",
    )


def test_approving_ones_own_deployment_names_the_separation_of_duties_rule(cli, world):
    dep = cli.json("platform", "deploy", token=world.tokens["PA"])["deployment_id"]

    result = cli("platform", "approve", dep, token=world.tokens["PA"])

    assert result.exit_code == 3
    assert "  rule: sod-approve-own-draft" in result.stderr.splitlines()


def test_an_unknown_id_exits_4(cli, world):
    result = cli("tenant", "show", "TEN-20260101-NOSUCHID", token=world.tokens["PA"])

    assert (result.exit_code, result.stderr.splitlines()[0]) == (
        4,
        "error: tenant 'TEN-20260101-NOSUCHID' not found",
    )


def test_a_step_out_of_order_exits_5(cli, world):
    result = cli("tenant", "validate", world.tenants["acme"], token=world.tokens["SA"])

    assert (result.exit_code, result.stderr.splitlines()[0]) == (
        5,
        "error: tenant is ACTIVE, expected PROVISIONED",
    )


def test_without_any_token_the_cli_says_how_to_sign_in(cli, keel):
    result = cli("tenant", "list")

    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "error: a bearer token or a session is required",
        "  hint: sign in with `keel login --email <e-mail>`, or pass --token / set KEEL_TOKEN",
    ]


def test_an_unreadable_template_file_is_bad_input_naming_the_option(cli, world, tmp_path):
    requested = len(world.events("infra.deployment.requested"))
    broken = tmp_path / "template.json"
    broken.write_text("{not json")

    missing = cli("platform", "deploy", "--template", str(tmp_path / "absent.json"), token=world.tokens["PA"])
    garbled = cli("platform", "deploy", "--template", str(broken), token=world.tokens["PA"])

    assert (missing.exit_code, garbled.exit_code) == (2, 2)
    assert missing.stderr.startswith("error: template: cannot read")
    assert garbled.stderr.startswith(f"error: template: {broken} is not valid JSON")
    assert len(world.events("infra.deployment.requested")) == requested == 1  # nothing was sent


def test_an_invalid_template_is_refused_naming_its_field(cli, world, tmp_path):
    template = tmp_path / "template.json"
    template.write_text(json.dumps({"name": "keel", "version": "1", "data_plane": {"engine": "sqlite"}}))

    result = cli("platform", "deploy", "--template", str(template), token=world.tokens["PA"])

    assert result.exit_code == 2
    assert "  field: template.data_plane.engine" in result.stderr.splitlines()


def test_an_unreachable_remote_keel_exits_1_without_a_traceback(cli):
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        result = cli("tenant", "list", token="keel_tok_x", env={"KEEL_URL": f"http://127.0.0.1:{port}"})

    assert result.exit_code == 1 and no_traceback(result)
    assert result.stderr.startswith(f"error: cannot reach Keel at http://127.0.0.1:{port}")


def test_a_bad_setting_exits_2_naming_the_variable(cli):
    result = cli("config", env={"KEEL_PORT": "0"})

    assert result.exit_code == 2 and no_traceback(result)
    assert result.stderr.splitlines()[0].startswith(
        "error: KEEL_PORT: Input should be greater than or equal to 1"
    )
