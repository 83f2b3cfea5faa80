"""``keel version`` and ``keel config``: what runs, and with which settings (secrets masked)."""

from __future__ import annotations

import base64

import pytest
from cli_harness import Cli

from keel import __version__


@pytest.fixture
def cli(settings):
    return Cli(settings)


def test_version_names_the_release(cli):
    plain, machine = cli("version"), cli.json("version")

    assert (plain.exit_code, plain.stdout) == (0, f"keel {__version__}\n")
    assert machine == {"version": __version__}


def test_config_shows_the_effective_settings_with_every_secret_masked(cli, tmp_path):
    master_key = base64.b64encode(b"k" * 32).decode()
    env = {
        "KEEL_MASTER_KEY": master_key,
        "KEEL_TOKEN": "keel_tok_do-not-print-me",
        "KEEL_DATABASE_URL": "postgresql+psycopg://keel:s3cr3t-pw@db.internal:5432/keel",
        "KEEL_PORT": "9123",
    }

    shown = cli.json("config", env=env)
    table = cli("config", env=env)

    assert {k: shown[k] for k in ("port", "master_key", "token", "database_url")} == {
        "port": 9123,
        "master_key": "********",
        "token": "********",
        "database_url": "postgresql+psycopg://keel:***@db.internal:5432/keel",
    }
    assert shown["home"] == str(cli.settings.home)
    for secret in (master_key, "keel_tok_do-not-print-me", "s3cr3t-pw"):
        assert secret not in table.stdout and secret not in table.stderr
    assert table.exit_code == 0 and "9123" in table.stdout
