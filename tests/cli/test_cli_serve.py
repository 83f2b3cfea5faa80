"""``keel serve`` as a real process on loopback: first start seeds; a restart keeps state, seeds nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from keel.cli.main import app
from keel.store.engine import create_store_engine
from keel.store.tables import ledger_entries, tenants, users

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One ``keel serve`` subprocess; only this process is ever signalled."""

    def __init__(self, settings, port: int, cwd) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
        env |= {
            "KEEL_HOME": str(settings.home),
            "KEEL_HOST": "127.0.0.1",
            "KEEL_PORT": str(port),
            "KEEL_SEED_DEMO": "true",
            "PYTHONUNBUFFERED": "1",
        }
        if settings.database_url:
            env |= {
                "KEEL_DATABASE_URL": settings.database_url,
                "KEEL_DATABASE_SCHEMA": settings.database_schema,
            }
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keel.cli.main", "serve"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_healthy(self, timeout: float = 90.0) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"keel serve exited with {self.process.returncode}:\n{self.process.stdout.read()}"
                )
            try:
                response = httpx.get(f"{self.url}/healthz", timeout=2)
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"keel serve did not answer /healthz within {timeout}s")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.stdout.read()


def remote_cli(url: str, home):
    """The CLI in remote mode (KEEL_URL), with its own home for saved credentials."""
    runner = CliRunner()
    env = {"KEEL_URL": url, "KEEL_HOME": str(home), "KEEL_TOKEN": None, "KEEL_DATABASE_URL": None}

    def run(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input, env=env)

    return run


def store_counts(settings) -> dict[str, int]:
    engine = create_store_engine(settings.effective_database_url, settings.database_schema)
    try:
        with engine.connect() as conn:
            return {
                "users": conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one(),
                "acme": conn.execute(
                    sa.select(sa.func.count()).select_from(tenants).where(tenants.c.slug == "acme")
                ).scalar_one(),
                "ledger": conn.execute(sa.select(sa.func.count()).select_from(ledger_entries)).scalar_one(),
            }
    finally:
        engine.dispose()


def test_serve_seeds_once_answers_health_and_openapi_and_keeps_state_across_a_restart(settings, tmp_path):
    port = free_port()
    first = Server(settings, port, tmp_path)
    try:
        health = first.wait_healthy().json()
        openapi = httpx.get(f"{first.url}/openapi.json", timeout=5).json()
        credentials = settings.home / "demo-credentials.json"
        password = json.loads(credentials.read_text())["pa@keel.local"]
        remote = remote_cli(first.url, tmp_path / "client-home")
        login = remote("login", "--email", "pa@keel.local", "--password-stdin", input=password + "\n")
        listed = remote("--json", "tenant", "list")
    finally:
        first_output = first.stop()
    after_first = store_counts(settings)

    second = Server(settings, port, tmp_path)
    try:
        second.wait_healthy()
    finally:
        second_output = second.stop()
    after_second = store_counts(settings)

    assert (health["status"], health["components"]["platform"]["status"]) == ("ok", "ok")
    assert {"/healthz", "/api/v1/tenants", "/api/v1/evidence/verify"} <= set(openapi["paths"])
    assert login.exit_code == 0, login.output
    assert list(json.loads((tmp_path / "client-home" / "credentials.json").read_text())) == [first.url]
    assert sorted(p.name for p in (tmp_path / "client-home").iterdir()) == ["credentials.json"]  # no store
    assert listed.exit_code == 0, listed.output
    assert [t["slug"] for t in json.loads(listed.stdout)] == ["acme"]
    assert f"on {first.url}" in first_output and "First start: seeded the demo platform:" in first_output
    assert f"pa@keel.local    {password}  Platform Admin" in first_output
    assert f"also in {credentials}" in first_output
    assert after_first["users"] == 15 and after_first["acme"] == 1
    assert after_second == after_first  # nothing seeded twice, no state lost
    assert f"Existing state kept in {settings.home}; nothing was seeded again." in second_output
    assert f"Demo credentials: {credentials}" in second_output
    assert password not in second_output and "First start" not in second_output
