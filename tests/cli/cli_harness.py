"""Shared harness of the CLI tests (imported by the ``test_cli_*`` modules).

``Cli(settings)`` runs ``keel`` in-process with ``typer.testing.CliRunner`` in
local embedded mode on the test's own store: the ``settings`` fixture's home,
database URL and schema become KEEL_HOME, KEEL_DATABASE_URL and
KEEL_DATABASE_SCHEMA, so the CLI and the test's ``keel``/``world`` share one Keel.
"""

from __future__ import annotations

import json
from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from keel.cli.main import app
from keel.kernel.settings import Settings


class Cli:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runner = CliRunner()
        self.env: dict[str, str | None] = {
            "KEEL_HOME": str(settings.home),
            "KEEL_DATABASE_URL": settings.database_url,
            "KEEL_DATABASE_SCHEMA": settings.database_schema,
            # Nothing from the developer's shell may steer the CLI under test.
            "KEEL_URL": None,
            "KEEL_TOKEN": None,
            "KEEL_CONFIG": str(settings.home / "no-such-keel.toml"),
            "COLUMNS": "200",
        }

    def __call__(self, *args: str, token: str | None = None, input: str | None = None, env=None) -> Result:
        argv = [*(["--token", token] if token else []), *args]
        return self.runner.invoke(app, argv, input=input, env={**self.env, **(env or {})})

    def json(self, *args: str, token: str | None = None, input: str | None = None, env=None) -> Any:
        """Run with ``--json``; the command must succeed; its stdout parsed."""
        result = self("--json", *args, token=token, input=input, env=env)
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}"
        return json.loads(result.stdout)


def no_traceback(result: Result) -> bool:
    """The command ended by exiting, not by an exception escaping."""
    return (result.exception is None or isinstance(result.exception, SystemExit)) and (
        "Traceback" not in result.output
    )
