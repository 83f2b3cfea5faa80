"""What a deployment needs before it starts, and the parts it provisions.

Both are ordered lists of steps sharing one signature. A dependency check
``check(keel, conn) -> None`` raises ``DependencyMissing`` and creates nothing.
A provisioning step ``step(keel, uow) -> dict`` creates what is missing, reports
``created``/``existing`` for what it touched, and registers the undo of anything
made outside the store on the unit of work, so an IAM failure leaves nothing behind
and a later rollback removes what this deployment made and nothing older.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from keel.evidence.ledger import SIGNING_PURPOSE
from keel.evidence.signing import generate_signing_key, key_id, private_key_to_pem, public_key_pem
from keel.identity.actor import SYSTEM
from keel.kernel.errors import Blocked
from keel.onboarding.templates import seed_builtin
from keel.platform.errors import DependencyMissing
from keel.secrets import envelope
from keel.store.engine import alembic_config
from keel.store.tables import deployments, platform_keys


# Dependencies -------------------------------------------------------------------------------
def check_store_schema(keel, conn) -> None:
    """The control-plane store is reachable and at the newest migration (of every branch)."""
    current = set(MigrationContext.configure(conn).get_current_heads())
    heads = set(ScriptDirectory.from_config(alembic_config(keel.engine)).get_heads())
    if current != heads:
        raise DependencyMissing(
            "control_plane.store",
            f"the store is at migration {', '.join(sorted(current)) or 'none'}, "
            f"the platform needs {', '.join(sorted(heads))}",
        )


def check_data_plane_root(keel, conn) -> None:
    """The tenant storage root is a writable directory, or can be created as one."""
    root: Path = keel.dataplanes.root
    target = root
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        raise DependencyMissing("data_plane.root", f"{target} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".keel-probe-"):
            pass
    except OSError as exc:
        raise DependencyMissing("data_plane.root", f"{target} is not writable ({exc.strerror})") from None


def check_duckdb(keel, conn) -> None:
    """The data-plane engine can be imported and answers a query."""
    try:
        duckdb = importlib.import_module("duckdb")
        with duckdb.connect(":memory:") as con:
            con.execute("SELECT 1").fetchone()
    except Exception as exc:  # ImportError or any engine failure: the dependency is unusable
        raise DependencyMissing("data_plane.engine", f"DuckDB is unusable ({type(exc).__name__})") from None


DEPENDENCIES = (check_store_schema, check_data_plane_root, check_duckdb)


def check_dependencies(keel, conn) -> None:
    for check in DEPENDENCIES:
        check(keel, conn)


# Provisioning -------------------------------------------------------------------------------
def provision_control_plane(keel, uow) -> dict:
    started = time.perf_counter()
    uow.conn.execute(sa.select(sa.func.count()).select_from(deployments)).scalar()
    head = ",".join(sorted(MigrationContext.configure(uow.conn).get_current_heads()))
    return {
        "status": "provisioned",
        "dialect": uow.conn.dialect.name,
        "schema_revision": head,
        "probe_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def provision_data_plane(keel, uow) -> dict:
    root: Path = keel.dataplanes.root
    made = "existing"
    if not root.exists():
        root.mkdir(parents=True, mode=0o700)
        uow.on_rollback(lambda: shutil.rmtree(root, ignore_errors=True))
        made = "created"
    import duckdb

    with duckdb.connect(":memory:") as con:
        version = con.execute("SELECT version()").fetchone()[0]
    return {"status": "provisioned", "engine": "duckdb", "engine_version": version, "root": made}


def provision_shared_services(keel, uow) -> dict:
    probe = envelope.new_key()
    if envelope.decrypt(probe, envelope.encrypt(probe, b"p", "p"), "p") != b"p":
        raise Blocked("the secrets service failed its round trip")
    made = "existing"
    if not has_signing_key(uow.conn):
        # Inserted in the unit of work: a rollback removes the key with everything it signed.
        key = generate_signing_key()
        keel.keyring.store_platform_key(
            uow.conn, key_id(key.public_key()), SIGNING_PURPOSE, private_key_to_pem(key), public_key_pem(key)
        )
        made = "created"
    # The connector catalog of 00b: one template per built-in connector, kept across redeploys.
    templates = seed_builtin(uow.conn, keel.connector_registry, SYSTEM.user_id)
    return {
        "status": "provisioned",
        "connector_templates": f"{len(templates)} added",
        "secrets": "envelope-aes-256-gcm",
        "evidence_signing_key": made,
        "monitoring": "prometheus",
    }


PROVISIONING = (
    ("control_plane", provision_control_plane),
    ("data_plane", provision_data_plane),
    ("shared_services", provision_shared_services),
)
PARTS = tuple(name for name, _ in PROVISIONING)


def has_signing_key(conn) -> bool:
    query = sa.select(platform_keys.c.key_id).where(
        platform_keys.c.purpose == SIGNING_PURPOSE, platform_keys.c.active
    )
    return conn.execute(query).first() is not None


# Tear-down after a committed deployment -----------------------------------------------------
def removable(keel, parts: dict) -> dict[str, Path]:
    """What a rollback of this committed deployment removes: what it made outside the
    store and nothing has used since.

    The evidence signing key is kept: tree heads it signed are in the append-only
    ledger, and without the key they could never be verified again.
    """
    root: Path = keel.dataplanes.root
    made_root = (parts.get("data_plane") or {}).get("root") == "created"
    if made_root and root.is_dir() and not any(root.iterdir()):
        return {"data_plane.root": root}
    return {}


def remove(paths: dict[str, Path]) -> None:
    for path in paths.values():
        with contextlib.suppress(OSError):  # used in the meantime: keep it
            path.rmdir()
