"""Secrets (issue section 5): stored encrypted, never returned, never logged, never in clear.

Credentials go in through the real API; then every answer, every captured log
record, stdout/stderr, every row of every control-plane table (SQLite or
PostgreSQL) and the raw SQLite files are searched for the distinctive values.
"""

from __future__ import annotations

import base64
import logging
import os
import stat

import pytest
import sqlalchemy as sa
from tests.support import World

from keel.bootstrap import build
from keel.kernel.errors import InvalidInput
from keel.kernel.settings import Settings
from keel.secrets import envelope
from keel.store.tables import ledger_entries, metadata, tenant_keys

CREDENTIAL = "Zq9-warehouse-credential-7731-distinctive"
PASSWORD = "Pw-member-password-5519-distinctive"
WRONG_PASSWORD = "Pw-wrong-guess-8842-distinctive"
LEAKABLE = (CREDENTIAL, PASSWORD, WRONG_PASSWORD)


def _exercise(world: World) -> list:
    """Store credentials and a password, then walk the reading routes and error paths."""
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    path = f"/api/v1/tenants/{acme}/secrets/warehouse"
    body = {"value": CREDENTIAL}
    answers = [
        world.put("acme:DE", path, json=body),
        world.put("acme:TA", path, json={"value": CREDENTIAL + "-v2"}),
        world.get("acme:DE", f"/api/v1/tenants/{acme}/secrets"),
        world.get("acme:AN", f"/api/v1/tenants/{acme}/secrets"),
        world.get("acme:DE", path),  # there is no route that reads a value back
        world.get("acme:TA", f"/api/v1/tenants/{acme}"),
        world.get("acme:AN", "/api/v1/evidence/entries", params={"event_type": "secret.stored"}),
        world.get("CO", "/api/v1/evidence/export"),
        # Error paths, each carrying the value somewhere in the request.
        world.put("globex:DE", path, json=body),
        world.put("PA", path, json=body),
        world.put("acme:AN", path, json=body),
        world.put("acme:DE", f"/api/v1/tenants/{globex}/secrets/warehouse", json=body),
        world.put("acme:DE", "/api/v1/tenants/TEN-20260101-NOTHERE0/secrets/warehouse", json=body),
        world.put("acme:DE", path, json={**body, "note": CREDENTIAL}),
        world.put("acme:DE", path, json={"value": [CREDENTIAL]}),
        world.put("acme:DE", path, json={"value": CREDENTIAL * 3000}),
        world.put("acme:DE", f"/api/v1/tenants/{acme}/secrets/{'n' * 250}", json=body),
        world.client.put(
            path,
            content=b'{"value": "' + CREDENTIAL.encode() + b'"',  # malformed JSON
            headers={**world.headers("acme:DE"), "content-type": "application/json"},
        ),
        world.client.put(path, json=body),  # no credentials at all
        world.client.put(path, json=body, headers={"Authorization": f"Bearer {CREDENTIAL}"}),
    ]
    member = {"email": "m@acme.test", "display_name": "Member", "roles": ["AN"], "password": PASSWORD}
    replay = {"Idempotency-Key": "member-1"}
    answers += [
        world.post("acme:TA", f"/api/v1/tenants/{acme}/users", json=member, headers=replay),
        world.post("acme:TA", f"/api/v1/tenants/{acme}/users", json=member, headers=replay),
        world.post("acme:TA", f"/api/v1/tenants/{acme}/users", json={**member, "password": "short"}),
        world.client.post("/api/v1/auth/sign-in", json={"email": "m@acme.test", "password": WRONG_PASSWORD}),
        world.client.post("/api/v1/auth/sign-in", json={"email": "m@acme.test", "password": PASSWORD}),
        world.get("acme:TA", f"/api/v1/tenants/{acme}/users"),
    ]
    world.client.cookies.clear()
    return answers


def _store_dump(world: World) -> tuple[str, bytes]:
    """Every row of every table: text for string values, bytes for binary ones."""
    texts, blobs = [], []
    with world.keel.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        blobs.append(bytes(value))
                    else:
                        texts.append(repr(value))
    return "\n".join(texts), b"\n".join(blobs)


def test_stored_credentials_and_passwords_never_appear_in_answers_logs_ledger_or_store(world, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    for name in ("keel", "uvicorn", "fastapi", "sqlalchemy", "httpx"):
        caplog.set_level(logging.DEBUG, logger=name)

    answers = _exercise(world)

    # The calls did what they should: the value is stored, and every error path answered cleanly.
    statuses = [a.status_code for a in answers]
    assert statuses[:8] == [200, 200, 200, 200, 405, 200, 200, 200]
    assert statuses[8:20] == [403, 403, 403, 403, 403, 422, 422, 422, 422, 422, 401, 401]
    assert statuses[20:] == [201, 201, 422, 401, 200, 200]
    with world.keel.engine.connect() as conn:
        assert world.keel.keyring.get_secret(conn, world.tenants["acme"], "warehouse") == CREDENTIAL + "-v2"
    listed = answers[2].json()["items"]
    assert [(s["name"], s["version"]) for s in listed] == [("warehouse", 2)]
    assert set(listed[0]) == {"name", "version", "created_by", "created_at"}
    # No answer carries any of the values, in its body or its headers.
    for answer in answers:
        text = answer.text + repr(answer.headers)
        assert not [v for v in LEAKABLE if v in text], (
            answer.request.method,
            answer.request.url,
            answer.text,
        )
    # No log record, and nothing written to stdout or stderr.
    captured = capfd.readouterr()
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    for where, text in {"logs": logged + caplog.text, "stdout": captured.out, "stderr": captured.err}.items():
        assert not [v for v in LEAKABLE if v in text], where
    # Not in the ledger, and not in clear in any table of the store.
    texts, blobs = _store_dump(world)
    with world.keel.engine.connect() as conn:
        ledger = "\n".join(conn.execute(sa.select(ledger_entries.c.event_json)).scalars())
    assert "secret.stored" in ledger
    for value in LEAKABLE:
        assert value not in ledger
        assert value not in texts
        assert value.encode() not in blobs
    if world.keel.settings.is_sqlite:  # the raw database files, WAL included
        for path in world.keel.settings.home.glob("keel.db*"):
            assert not [v for v in LEAKABLE if v.encode() in path.read_bytes()], path.name


def test_the_generated_master_key_file_has_mode_0600(keel):
    key_file = keel.settings.home / "master.key"

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32


def _env_settings(settings: Settings) -> Settings:
    """The test's store, but the master key left to the environment."""
    return Settings(
        home=settings.home.with_name("env-home"),
        database_url=settings.database_url,
        database_schema=settings.database_schema,
        seed_demo=False,
    )


def test_keel_master_key_from_the_environment_wraps_the_tenant_keys(settings, monkeypatch):
    master = os.urandom(32)
    monkeypatch.setenv("KEEL_MASTER_KEY", base64.b64encode(master).decode())
    env_settings = _env_settings(settings)
    keel = build(env_settings)
    try:
        with keel.uow() as uow:
            keel.keyring.create_tenant_key(uow.conn, "TEN-20260101-ENVKEY00")
            uow.commit()
        with keel.engine.connect() as conn:
            wrapped = conn.execute(
                sa.select(tenant_keys.c.wrapped_key).where(tenant_keys.c.tenant_id == "TEN-20260101-ENVKEY00")
            ).scalar_one()
            via_keel = keel.keyring.tenant_key(conn, "TEN-20260101-ENVKEY00")
    finally:
        keel.close()

    # The key from the environment, and no other, unwraps what Keel stored.
    assert envelope.decrypt(master, wrapped, "tenant-key:TEN-20260101-ENVKEY00") == via_keel
    assert not (env_settings.home / "master.key").exists()


@pytest.mark.parametrize(
    "bad", ["not base64!", base64.b64encode(b"too short").decode()], ids=["not-base64", "short"]
)
def test_a_bad_keel_master_key_stops_the_start_with_a_clear_error(settings, monkeypatch, bad):
    monkeypatch.setenv("KEEL_MASTER_KEY", bad)

    with pytest.raises(InvalidInput) as caught:
        build(_env_settings(settings))

    assert caught.value.fields["field"] == "KEEL_MASTER_KEY"
    assert str(caught.value).startswith("KEEL_MASTER_KEY: ")
    assert bad not in str(caught.value)
