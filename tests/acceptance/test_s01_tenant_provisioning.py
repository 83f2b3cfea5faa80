"""Story 01: tenant provisioning, through the REST API.

PA provisions (identity, its own DuckDB data plane, its own data key), SA validates
isolation (tenant ACTIVE, receipt, Tenant Admin invitation), the Tenant Admin
accepts the invitation and works. IAM/allocation failures leave nothing half-made.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import duckdb
import sqlalchemy as sa
from tests.support import World

from keel.store.tables import incidents, invitations, tenant_keys, tenants, users

PERSONAS = ["PO", "SA", "SS", "KA", "WA", "SRE", "CO", "AU", "acme:TA", "acme:TP", "acme:DE", "globex:TA"]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
CSRF = {"X-Keel-CSRF": "1"}


def _provision(world: World, slug: str = "initech", who: str = "PA", **extra):
    body = {"slug": slug, "name": slug.title(), "admin_email": f"admin@{slug}.test", **extra}
    return world.post(who, "/api/v1/tenants", json=body)


def _data_file(world: World, tenant_id: str) -> Path:
    return world.keel.settings.home / "tenants" / tenant_id / "data.duckdb"


def _tenant_dirs(world: World) -> set[str]:
    root = world.keel.settings.home / "tenants"
    return {p.name for p in root.iterdir()} if root.exists() else set()


# Given active infra, when provisioned, then identity, resources, TA access -------------------
def test_provisioning_creates_tenant_identity_its_own_duckdb_and_data_key(world):
    answer = _provision(world, region="eu-west")

    assert answer.status_code == 201, answer.text
    tenant = answer.json()
    tenant_id = tenant["tenant_id"]
    assert re.match(r"^TEN-\d{8}-[0-9A-Z]{8}$", tenant_id)
    assert ISO.match(tenant.pop("created_at"))
    assert tenant == {
        "tenant_id": tenant_id,
        "slug": "initech",
        "name": "Initech",
        "status": "PROVISIONED",
        "region": "eu-west",
        "storage_quota_mb": world.keel.settings.tenant_storage_quota_mb,
        "created_by": world.actors["PA"].user_id,
        "validated_by": None,
        "decommissioned_at": None,
        "data_key": "active",
        "receipts": [],
    }
    # Its own DuckDB database, under KEEL_HOME/tenants/<id>/, with the three layers.
    path = _data_file(world, tenant_id)
    assert path.is_file()
    with duckdb.connect(str(path), read_only=True) as con:
        schemas = {
            r[0] for r in con.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
        }
        owner = con.execute("SELECT value FROM main.keel_meta WHERE key = 'tenant_id'").fetchone()
    assert {"raw", "gdp", "kpi"} <= schemas
    assert owner == (tenant_id,)
    # Its own data key, wrapped by the master key, distinct from every other tenant's.
    keys = {r.tenant_id: r for r in world.rows(sa.select(tenant_keys))}
    assert keys[tenant_id].wrapped_key is not None and keys[tenant_id].destroyed_at is None
    with world.keel.engine.connect() as conn:
        own = world.keel.keyring.tenant_key(conn, tenant_id)
        others = {world.keel.keyring.tenant_key(conn, t) for t in world.tenants.values()}
    assert len(own) == 32 and own not in others
    # The admin is invited, not active: no password, no access yet.
    admin = world.rows(sa.select(users).where(users.c.tenant_id == tenant_id))
    assert [(u.email, u.status, u.password_hash) for u in admin] == [("admin@initech.test", "INVITED", None)]
    created = [e for e in world.events("tenant.created") if e["tenant_id"] == tenant_id]
    assert [e["payload"] for e in created] == [
        {"slug": "initech", "region": "eu-west", "admin_user_id": admin[0].id}
    ]
    assert created[0]["actor_id"] == world.actors["PA"].user_id
    infra = [e for e in world.events("infra.tenant.provisioned") if e["tenant_id"] == tenant_id]
    assert len(infra) == 1


def test_security_admin_validation_activates_tenant_with_receipt_and_one_time_invitation(world):
    tenant_id = _provision(world).json()["tenant_id"]

    answer = world.post("SA", f"/api/v1/tenants/{tenant_id}/validate")

    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert view["status"] == "ACTIVE"
    assert view["validated_by"] == world.actors["SA"].user_id
    receipt = view["receipt"]
    assert ISO.match(receipt.pop("timestamp"))
    assert receipt == {
        "tenant_id": tenant_id,
        "status": "ACTIVE",
        "created_by": world.actors["PA"].user_id,
        "validated_by": world.actors["SA"].user_id,
        "compute": "provisioned",
        "storage": "provisioned",
        "network": "provisioned",
        "monitoring": "enabled",
        "checks": {
            "storage_dedicated": True,
            "storage_layers": ["raw", "gdp", "kpi"],
            "data_key": True,
            "cross_tenant_read_denied": True,
            "provider_data_read_denied": True,
            "passed": True,
        },
    }
    admin_id = world.rows(sa.select(users.c.id).where(users.c.tenant_id == tenant_id))[0].id
    invitation = view["invitation"]
    assert invitation["user_id"] == admin_id
    assert invitation["token"].startswith("keel_inv_")
    # Only the hash is stored; the invitation is shown in this one answer and never again.
    stored = world.rows(sa.select(invitations.c.token_hash).where(invitations.c.user_id == admin_id))
    assert [r.token_hash for r in stored] == [hashlib.sha256(invitation["token"].encode()).hexdigest()]
    again = world.get("CO", f"/api/v1/tenants/{tenant_id}")  # the Compliance Officer reviews receipts
    assert again.status_code == 200
    assert "invitation" not in again.json()
    assert invitation["token"] not in again.text
    assert sorted(r["status"] for r in again.json()["receipts"]) == ["ACTIVE", "SUCCESS"]
    # Events, each linked to the acting identity and the tenant.
    validated = [e for e in world.events("tenant.validated") if e["tenant_id"] == tenant_id]
    assert [(e["actor_id"], e["payload"]["checks"]["passed"]) for e in validated] == [
        (world.actors["SA"].user_id, True)
    ]
    # provisioning_time is measured and exposed.
    metrics = world.client.get("/metrics").text
    assert re.search(r"^keel_provisioning_time \d", metrics, re.M)
    assert re.search(r"^keel_provisioning_success_rate 1\.0$", metrics, re.M)


def test_validating_twice_is_refused_and_issues_no_second_invitation(world):
    tenant_id = _provision(world).json()["tenant_id"]
    assert world.post("SA", f"/api/v1/tenants/{tenant_id}/validate").status_code == 200

    again = world.post("SA", f"/api/v1/tenants/{tenant_id}/validate")

    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    admin = world.rows(sa.select(users.c.id).where(users.c.tenant_id == tenant_id))[0].id
    assert len(world.rows(sa.select(invitations).where(invitations.c.user_id == admin))) == 1


def test_tenant_admin_accepts_invitation_signs_in_and_manages_members_and_tokens(world):
    tenant_id = _provision(world).json()["tenant_id"]
    token = world.post("SA", f"/api/v1/tenants/{tenant_id}/validate").json()["invitation"]["token"]
    password = "correct horse battery staple"

    accepted = world.client.post(
        "/api/v1/auth/invitations/accept", json={"token": token, "password": password}
    )

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "ACTIVE" and accepted.json()["roles"] == ["TA"]
    reused = world.client.post("/api/v1/auth/invitations/accept", json={"token": token, "password": password})
    assert reused.status_code == 401
    with world.sign_in("admin@initech.test", password) as browser:
        me = browser.get("/api/v1/me").json()
        assert (me["tenant_id"], me["effective_roles"], me["auth"]) == (tenant_id, ["TA"], "session")
        member = {"email": "de@initech.test", "display_name": "Data Engineer", "roles": ["DE"]}
        # A state-changing call on a session needs the CSRF header.
        no_csrf = browser.post(f"/api/v1/tenants/{tenant_id}/users", json=member)
        assert no_csrf.status_code == 401 and "X-Keel-CSRF" in no_csrf.json()["detail"]
        created = browser.post(f"/api/v1/tenants/{tenant_id}/users", json=member, headers=CSRF)
        assert created.status_code == 201, created.text
        assert {k: created.json()[k] for k in ("email", "tenant_id", "roles", "status")} == {
            "email": "de@initech.test",
            "tenant_id": tenant_id,
            "roles": ["DE"],
            "status": "INVITED",
        }
        issued = browser.post("/api/v1/me/tokens", json={"name": "ci"}, headers=CSRF)
        assert issued.status_code == 201, issued.text
        # The Tenant Admin administers its own tenant, never another one.
        elsewhere = browser.post(
            f"/api/v1/tenants/{world.tenants['globex']}/users",
            json={**member, "email": "x@initech.test"},
            headers=CSRF,
        )
        assert elsewhere.status_code == 403
    bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
    members = world.client.get(f"/api/v1/tenants/{tenant_id}/users", headers=bearer)
    assert members.status_code == 200
    assert sorted(u["email"] for u in members.json()["items"]) == ["admin@initech.test", "de@initech.test"]


def test_member_created_without_password_gets_a_one_time_invitation(world):
    created = world.post(
        "acme:TA",
        f"/api/v1/tenants/{world.tenants['acme']}/users",
        json={"email": "new.analyst@acme.test", "display_name": "New Analyst", "roles": ["AN"]},
    )

    assert created.status_code == 201, created.text
    token = created.json()["invitation"]["token"]
    accepted = world.client.post(
        "/api/v1/auth/invitations/accept", json={"token": token, "password": "a long enough secret"}
    )
    assert accepted.status_code == 200 and accepted.json()["status"] == "ACTIVE"
    listed = world.get("acme:TA", f"/api/v1/tenants/{world.tenants['acme']}/users")
    assert token not in listed.text


def test_tenant_admin_cannot_sign_in_before_validation(world):
    tenant_id = _provision(world).json()["tenant_id"]

    answer = world.client.post(
        "/api/v1/auth/sign-in", json={"email": "admin@initech.test", "password": "any password at all"}
    )

    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthenticated"
    admin = world.rows(sa.select(users.c.id).where(users.c.tenant_id == tenant_id))[0].id
    assert world.rows(sa.select(invitations).where(invitations.c.user_id == admin)) == []
    member = world.post(
        "PA",
        f"/api/v1/tenants/{tenant_id}/users",
        json={"email": "early@initech.test", "display_name": "Early", "roles": ["AN"]},
    )
    assert member.status_code in (403, 404)


# Given provisioning, when IAM fails, then no access, roll back -------------------------------
def _assert_torn_down(world: World, tenant_id: str, answer) -> None:
    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert problem["code"] == "blocked"
    assert problem["checks"]["passed"] is False
    tenant = world.get("PA", f"/api/v1/tenants/{tenant_id}").json()
    assert (tenant["status"], tenant["data_key"], tenant["validated_by"]) == (
        "ROLLED_BACK",
        "destroyed",
        None,
    )
    assert not (world.keel.settings.home / "tenants" / tenant_id).exists()
    key = world.rows(sa.select(tenant_keys).where(tenant_keys.c.tenant_id == tenant_id))[0]
    assert key.wrapped_key is None and key.destroyed_at is not None
    members = world.rows(sa.select(users).where(users.c.tenant_id == tenant_id))
    assert [u.status for u in members] == ["DISABLED"]
    assert world.rows(sa.select(invitations).where(invitations.c.user_id == members[0].id)) == []
    signin = world.client.post(
        "/api/v1/auth/sign-in", json={"email": "admin@initech.test", "password": "any password at all"}
    )
    assert signin.status_code == 401
    torn = [e for e in world.events("infra.tenant.torn_down") if e["tenant_id"] == tenant_id]
    assert len(torn) == 1 and torn[0]["actor_id"] == world.actors["SA"].user_id
    assert [e for e in world.events("tenant.validated") if e["tenant_id"] == tenant_id] == []
    assert re.search(r"^keel_validation_failure_count 1\.0$", world.client.get("/metrics").text, re.M)


def test_validation_failing_because_storage_is_missing_tears_the_tenant_down(world):
    tenant_id = _provision(world).json()["tenant_id"]
    _data_file(world, tenant_id).unlink()

    answer = world.post("SA", f"/api/v1/tenants/{tenant_id}/validate")

    assert answer.json()["checks"]["storage_dedicated"] is False
    _assert_torn_down(world, tenant_id, answer)


def test_validation_failing_because_storage_is_corrupt_tears_the_tenant_down(world):
    tenant_id = _provision(world).json()["tenant_id"]
    _data_file(world, tenant_id).write_bytes(b"this is not a DuckDB database" * 100)

    answer = world.post("SA", f"/api/v1/tenants/{tenant_id}/validate")

    _assert_torn_down(world, tenant_id, answer)


def test_validation_failing_because_storage_belongs_to_another_tenant_tears_it_down(world):
    tenant_id = _provision(world).json()["tenant_id"]
    # Someone swapped in another tenant's database: the owner check must catch it.
    _data_file(world, tenant_id).write_bytes(_data_file(world, world.tenants["acme"]).read_bytes())

    answer = world.post("SA", f"/api/v1/tenants/{tenant_id}/validate")

    assert answer.json()["checks"]["storage_dedicated"] is False
    _assert_torn_down(world, tenant_id, answer)
    assert _data_file(world, world.tenants["acme"]).exists()


# Allocation fails part-way -> alert, nothing half-made -----------------------------------------
def _nothing_made(world: World, slug: str, keys_before: int, dirs_before: set[str]) -> None:
    assert world.rows(sa.select(tenants).where(tenants.c.slug == slug)) == []
    assert len(world.rows(sa.select(tenant_keys))) == keys_before
    assert _tenant_dirs(world) == dirs_before
    created = [e for e in world.events() if e["payload"].get("slug") == slug and e["tenant_id"]]
    assert created == []


def test_duplicate_admin_email_after_the_tenant_row_was_written_leaves_nothing_behind(world):
    keys_before, dirs_before = len(world.rows(sa.select(tenant_keys))), _tenant_dirs(world)

    answer = world.post(
        "PA",
        "/api/v1/tenants",
        json={"slug": "initech", "name": "Initech", "admin_email": "invited-admin@acme.test"},
    )

    assert answer.status_code == 409, answer.text
    assert (answer.json()["code"], answer.json()["field"]) == ("conflict", "admin_email")
    _nothing_made(world, "initech", keys_before, dirs_before)


def test_data_plane_that_cannot_be_allocated_raises_an_alert_and_leaves_nothing_behind(world):
    keys_before = len(world.rows(sa.select(tenant_keys)))
    root = world.keel.settings.home / "tenants"
    # A regular file where the data-plane root directory should be: no tenant directory
    # can be created under it (this works even when the tests run as root).
    parked = root.rename(root.with_name("tenants.parked"))
    root.write_bytes(b"")
    try:
        answer = _provision(world)
    finally:
        root.unlink()
        parked.rename(root)

    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "allocation_failed"
    assert str(world.keel.settings.home) not in answer.text  # no server paths in the answer
    _nothing_made(world, "initech", keys_before, set(world.tenants.values()))
    alerts = world.rows(sa.select(incidents).where(incidents.c.kind == "tenant.allocation.failed"))
    assert len(alerts) == 1 and alerts[0].tenant_id is None
    opened = [e for e in world.events("incident.opened") if e["payload"]["incident_id"] == alerts[0].id]
    assert [(e["actor_id"], e["payload"]["kind"]) for e in opened] == [
        (world.actors["PA"].user_id, "tenant.allocation.failed")
    ]
    assert alerts[0].details["slug"] == "initech"  # details stay in the incident row, not the ledger
    assert re.search(r"^keel_provisioning_success_rate 0\.\d+$", world.client.get("/metrics").text, re.M)
    # Once storage is back, the same provisioning succeeds.
    assert _provision(world).status_code == 201


def test_provisioning_before_the_platform_is_deployed_is_blocked(keel, client):
    world = World.build(keel, client, deploy=False, baseline=False)

    answer = _provision(world)

    assert answer.status_code == 409
    assert answer.json()["code"] == "blocked"
    assert "not deployed" in answer.json()["detail"]
    assert world.rows(sa.select(tenants)) == []
    assert _tenant_dirs(world) == set()


# Only the Platform Admin provisions; only the Security Admin validates ------------------------
def test_only_the_platform_admin_may_provision_a_tenant(world):
    denials_before = len(world.events("authz.denied"))

    answers = {who: _provision(world, f"t-{i:02d}-x", who).status_code for i, who in enumerate(PERSONAS)}

    assert answers == dict.fromkeys(PERSONAS, 403)
    assert len(world.events("authz.denied")) == denials_before + len(PERSONAS)
    assert len(world.rows(sa.select(tenants))) == 2


def test_only_the_security_admin_may_validate_a_tenant(world):
    tenant_id = _provision(world).json()["tenant_id"]
    others = ["PA", "PO", "SS", "CO", "AU", "acme:TA", "globex:TA"]

    answers = {who: world.post(who, f"/api/v1/tenants/{tenant_id}/validate").status_code for who in others}

    assert answers == dict.fromkeys(others, 403)
    assert world.get("PA", f"/api/v1/tenants/{tenant_id}").json()["status"] == "PROVISIONED"


def test_a_tenant_user_gets_the_same_refusal_for_another_tenant_and_for_no_tenant(world):
    other = world.get("acme:TA", f"/api/v1/tenants/{world.tenants['globex']}")
    missing = world.get("acme:TA", "/api/v1/tenants/TEN-20260101-NOTHERE0")
    validate_other = world.post("acme:TA", f"/api/v1/tenants/{world.tenants['globex']}/validate")
    validate_missing = world.post("acme:TA", "/api/v1/tenants/TEN-20260101-NOTHERE0/validate")

    assert (other.status_code, missing.status_code) == (403, 403)
    assert other.json()["detail"] == missing.json()["detail"]
    assert (validate_other.status_code, validate_missing.status_code) == (403, 403)
    assert validate_other.json()["detail"] == validate_missing.json()["detail"]
    listed = world.get("acme:TA", "/api/v1/tenants").json()["items"]
    assert [t["tenant_id"] for t in listed] == [world.tenants["acme"]]


# Bad input ---------------------------------------------------------------------------------------
def test_bad_provisioning_input_is_refused_naming_the_field(world):
    cases = {
        "slug": {"slug": "Bad Slug!", "name": "X", "admin_email": "a@x.test"},
        "admin_email": {"slug": "okslug", "name": "X", "admin_email": "not-an-email"},
        "region": {"slug": "okslug", "name": "X", "admin_email": "a@x.test", "region": "EU WEST"},
        "storage_quota_mb": {"slug": "okslug", "name": "X", "admin_email": "a@x.test", "storage_quota_mb": 0},
        "colour": {"slug": "okslug", "name": "X", "admin_email": "a@x.test", "colour": "red"},
    }

    fields = {}
    for field, body in cases.items():
        answer = world.post("PA", "/api/v1/tenants", json=body)
        assert answer.status_code == 422, (field, answer.text)
        fields[field] = answer.json()["field"]

    assert fields == {
        "slug": "slug",
        "admin_email": "admin_email",
        "region": "region",
        "storage_quota_mb": "storage_quota_mb",
        "colour": "colour",
    }
    assert world.rows(sa.select(tenants).where(tenants.c.slug == "okslug")) == []
    assert len(_tenant_dirs(world)) == 2


def test_a_taken_slug_is_refused(world):
    answer = _provision(world, slug="acme")

    assert answer.status_code == 409
    assert (answer.json()["code"], answer.json()["field"]) == ("conflict", "slug")


def test_provisioning_replayed_with_the_same_idempotency_key_creates_one_tenant(world):
    headers = {"Idempotency-Key": "provision-initech-1"}
    body = {"slug": "initech", "name": "Initech", "admin_email": "admin@initech.test"}

    first = world.post("PA", "/api/v1/tenants", json=body, headers=headers)
    replay = world.post("PA", "/api/v1/tenants", json=body, headers=headers)
    different = world.post("PA", "/api/v1/tenants", json={**body, "name": "Other"}, headers=headers)

    assert (first.status_code, replay.status_code, different.status_code) == (201, 201, 409)
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(world.rows(sa.select(tenants).where(tenants.c.slug == "initech"))) == 1
