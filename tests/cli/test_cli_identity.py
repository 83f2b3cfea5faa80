"""``keel login``/``logout``/``whoami``, token precedence, ``keel user`` and ``keel token``."""

from __future__ import annotations

import json
import stat

import pytest
from cli_harness import Cli

PASSWORD = "correct horse battery staple"


@pytest.fixture
def cli(settings):
    return Cli(settings)


def create_admin_with_password(cli: Cli, world, email: str = "ops@provider.test") -> None:
    result = cli(
        "user", "create", "--email", email, "--name", "Ops Admin", "--role", "PA", "--password-stdin",
        token=world.tokens["SA"], input=PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def saved_credentials(settings) -> dict:
    return json.loads((settings.home / "credentials.json").read_text())


def test_login_saves_a_private_token_that_later_commands_use(cli, world, settings):
    create_admin_with_password(cli, world)

    result = cli("login", "--email", "ops@provider.test", "--password-stdin", input=PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    path = settings.home / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = saved_credentials(settings)["local"]
    assert {k: saved[k] for k in ("email", "roles", "tenant_id")} == {
        "email": "ops@provider.test",
        "roles": ["PA"],
        "tenant_id": None,
    }
    assert saved["token"] not in result.output  # the secret goes to the file only
    me = cli.json("whoami")
    assert (me["email"], me["auth"], me["effective_roles"]) == ("ops@provider.test", "token", ["PA"])
    [listed] = cli.json("token", "list")
    assert (listed["id"], listed["name"].startswith("keel-cli@")) == (saved["token_id"], True)


def test_token_precedence_is_option_then_environment_then_saved_login(cli, world):
    create_admin_with_password(cli, world)
    assert (
        cli("login", "--email", "ops@provider.test", "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    )
    who = {actor.user_id: key for key, actor in world.actors.items() if key in ("CO", "AU")}

    saved = cli.json("whoami")["email"]
    from_env = cli.json("whoami", env={"KEEL_TOKEN": world.tokens["CO"]})["id"]
    from_option = cli.json("whoami", token=world.tokens["AU"], env={"KEEL_TOKEN": world.tokens["CO"]})["id"]

    assert (saved, who[from_env], who[from_option]) == ("ops@provider.test", "CO", "AU")


def test_logout_revokes_the_saved_token_and_forgets_it(cli, world, settings):
    create_admin_with_password(cli, world)
    assert (
        cli("login", "--email", "ops@provider.test", "--password-stdin", input=PASSWORD + "\n").exit_code == 0
    )
    token = saved_credentials(settings)["local"]["token"]

    result = cli("logout")

    assert result.exit_code == 0, result.output
    assert "local" not in saved_credentials(settings)
    refused = cli("whoami", token=token)
    assert refused.exit_code == 3
    assert "error: the token is unknown or revoked" in refused.stderr
    after = cli("whoami")
    assert (after.exit_code, "hint: sign in with `keel login" in after.stderr) == (3, True)


def test_login_prompts_for_the_password_without_echoing_it(cli, world):
    create_admin_with_password(cli, world)

    result = cli("login", "--email", "ops@provider.test", input=PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert "Password: " in result.output and PASSWORD not in result.output
    assert cli.json("whoami")["email"] == "ops@provider.test"


def test_a_wrong_password_exits_3_and_saves_nothing(cli, world, settings):
    create_admin_with_password(cli, world)

    result = cli("login", "--email", "ops@provider.test", "--password-stdin", input="not the password\n")

    assert result.exit_code == 3
    assert "error: e-mail or password is wrong" in result.stderr
    assert not (settings.home / "credentials.json").exists()


def test_a_token_secret_is_shown_once_at_creation_and_never_listed(cli, world):
    created = cli("token", "create", "--name", "ci-pipeline", "--ttl-days", "7", token=world.tokens["PA"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.split("token (shown once, store it now): ")[1].strip()
    assert secret.startswith("keel_tok_")

    listing = cli("token", "list", token=world.tokens["PA"])
    tokens = cli.json("token", "list", token=world.tokens["PA"])

    assert listing.exit_code == 0 and secret not in listing.stdout and secret not in json.dumps(tokens)
    ci = next(t for t in tokens if t["name"] == "ci-pipeline")
    assert (ci["roles"], ci["revoked"]) == (["PA"], False)
    assert cli.json("whoami", token=secret)["id"] == world.actors["PA"].user_id

    assert cli("token", "revoke", ci["id"], token=world.tokens["PA"]).exit_code == 0
    assert cli("whoami", token=secret).exit_code == 3


def test_users_are_created_and_listed_per_tenant(cli, world):
    tenant = world.tenants["acme"]
    created = cli.json(
        "user", "create", "--email", "new.analyst@acme.test", "--name", "New Analyst", "--role", "AN",
        "--tenant", tenant, token=world.tokens["acme:TA"],
    )  # fmt: skip

    members = cli.json("user", "list", "--tenant", tenant, token=world.tokens["acme:TA"])
    providers = cli.json("user", "list", token=world.tokens["SA"])

    assert {k: created[k] for k in ("email", "tenant_id", "roles")} == {
        "email": "new.analyst@acme.test",
        "tenant_id": tenant,
        "roles": ["AN"],
    }
    assert created["id"] in [m["id"] for m in members]
    assert created["id"] not in [p["id"] for p in providers]
    assert {p["tenant_id"] for p in providers} == {None}
