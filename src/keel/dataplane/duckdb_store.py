"""Each tenant owns one DuckDB database file under ``$KEEL_HOME/tenants/<tenant_id>/``.

Isolation is physical: a tenant's queries open only its own file, so no filter
can be forgotten. Later issues add the Raw/GDP/KPI layers inside that file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from keel.kernel.errors import Conflict, NotFound
from keel.tenants.errors import AllocationFailed

LAYERS = ("raw", "gdp", "kpi")


class TenantDataPlanes:
    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, tenant_id: str) -> Path:
        if not tenant_id or "/" in tenant_id or tenant_id.startswith("."):
            raise NotFound("tenant", tenant_id)
        return self.root / tenant_id

    def database_path(self, tenant_id: str) -> Path:
        return self.directory(tenant_id) / "data.duckdb"

    def provision(self, tenant_id: str) -> Path:
        """Create the tenant's database with its layer schemas; fails if it exists.

        A directory or database that cannot be created raises ``AllocationFailed``
        (the caller removes whatever part was made); the server path stays out of it.
        """
        directory = self.directory(tenant_id)
        if directory.exists():
            raise Conflict("the tenant's data-plane storage exists already", tenant_id=tenant_id)
        try:
            directory.mkdir(parents=True, mode=0o700)
            path = self.database_path(tenant_id)
            with duckdb.connect(str(path)) as con:
                for layer in LAYERS:
                    con.execute(f"CREATE SCHEMA {layer}")
                con.execute("CREATE TABLE main.keel_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
                con.execute("INSERT INTO main.keel_meta VALUES ('tenant_id', ?)", [tenant_id])
        except (OSError, duckdb.Error) as exc:
            raise AllocationFailed(
                "the tenant's data-plane storage could not be created",
                resource="storage",
                cause=type(exc).__name__,
            ) from exc
        return path

    def check(self, tenant_id: str) -> dict:
        """Open the tenant's database and confirm it belongs to that tenant and has its layers."""
        path = self.database_path(tenant_id)
        if not path.exists():
            return {"exists": False, "owner_ok": False, "layers": []}
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                schemas = {
                    r[0]
                    for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
                }
                owner = con.execute("SELECT value FROM main.keel_meta WHERE key = 'tenant_id'").fetchone()
        except duckdb.Error:
            # Not a DuckDB database, or not one Keel made: a failed check, never a crash.
            return {"exists": True, "owner_ok": False, "layers": []}
        return {
            "exists": True,
            "owner_ok": owner is not None and owner[0] == tenant_id,
            "layers": [layer for layer in LAYERS if layer in schemas],
        }

    def size_bytes(self, tenant_id: str) -> int:
        directory = self.directory(tenant_id)
        return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) if directory.exists() else 0

    def exists(self, tenant_id: str) -> bool:
        return self.directory(tenant_id).exists()

    def destroy(self, tenant_id: str) -> None:
        shutil.rmtree(self.directory(tenant_id), ignore_errors=True)
