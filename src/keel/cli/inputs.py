"""Reading what the user hands the CLI: documents from files, secrets from a prompt or stdin."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import typer

from keel.cli.client import EXIT_INPUT, CliError


def read_document(path: Path, field: str) -> dict:
    """A JSON (or ``.toml``) object from a file; a bad file is bad input naming ``field``."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{field}: cannot read {path}: {exc}", EXIT_INPUT, field=field) from None
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        data = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except ValueError as exc:
        raise CliError(f"{field}: {path} is not valid {kind}: {exc}", EXIT_INPUT, field=field) from None
    if not isinstance(data, dict):
        raise CliError(f"{field}: {path} must hold an object", EXIT_INPUT, field=field)
    return data


def read_password(from_stdin: bool, prompt: str = "Password") -> str:
    """A password from the first line of stdin, or from a prompt that does not echo."""
    password = sys.stdin.readline().rstrip("\r\n") if from_stdin else typer.prompt(prompt, hide_input=True)
    if not password:
        raise CliError("password: must not be empty", EXIT_INPUT, field="password")
    return password
