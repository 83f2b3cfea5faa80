"""Story 01c: tenant decommissioning, through the REST API.

PA requests offboarding, PO approves (never the requester), CO archives the
evidence (an offline-verifiable ledger export and its hash) *before* anything is
deleted, PA decommissions (logins revoked, storage deleted, key crypto-shredded),
SA confirms the wipe. A missing archive blocks everything and opens an incident.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.support import World

from keel.evidence.offline import verify_export
from keel.kernel.errors import Blocked
from keel.store.tables import incidents, tenant_keys, users

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
CSRF = {"X-Keel-CSRF": "1"}
SECRET = "s3cr3t-warehouse-password-01c"


def _request(world: World, slug: str = "acme", who: str = "PA"):
    return world.post(
        who, f"/api/v1/tenants/{world.tenants[slug]}/offboarding-requests", json={"reason": "contract ended"}
    )


def _decide(world: World, request_id: str, approve: bool = True, who: str = "PO"):
    return world.post(
        who, f"/api/v1/tenants/offboarding-requests/{request_id}/decision", json={"approve": approve}
    )


def _archive(world: World, slug: str = "acme", who: str = "CO"):
    return world.post(who, f"/api/v1/tenants/{world.tenants[slug]}/evidence-archives")


def _decommission(world: World, request_id: str, slug: str = "acme", who: str = "PA"):
    return world.post(
        who, f"/api/v1/tenants/{world.tenants[slug]}/decommission", json={"request_id": request_id}
    )


def _approved(world: World, slug: str = "acme") -> str:
    request_id = _request(world, slug).json()["request_id"]
    assert _decide(world, request_id).status_code == 200
    return request_id


def _key(world: World, tenant_id: str):
    with world.keel.engine.connect() as conn:
        return conn.execute(sa.select(tenant_keys).where(tenant_keys.c.tenant_id == tenant_id)).one()


def _secret(world: World, tenant_id: str, name: str) -> str:
    with world.keel.engine.connect() as conn:
        return world.keel.keyring.get_secret(conn, tenant_id, name)


def _works(world: World, who: str) -> bool:
    return world.get(who, "/api/v1/me").status_code == 200


def _assert_nothing_deleted(world: World, slug: str = "acme") -> None:
    tenant_id = world.tenants[slug]
    assert (world.keel.settings.home / "tenants" / tenant_id / "data.duckdb").is_file()
    assert _key(world, tenant_id).wrapped_key is not None
    assert world.get("PA", f"/api/v1/tenants/{tenant_id}").json()["status"] == "ACTIVE"
    assert _works(world, f"{slug}:TA") and _works(world, f"{slug}:AN")
    assert [e for e in world.events("tenant.decommissioned") if e["tenant_id"] == tenant_id] == []
    assert [e for e in world.events("data.wiped") if e["tenant_id"] == tenant_id] == []


# Given approved offboarding, when run, then resources deleted, evidence archived ---------------
def test_approved_offboarding_archives_evidence_then_revokes_access_deletes_storage_and_shreds_key(world):
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    assert world.put(
        "acme:DE", f"/api/v1/tenants/{acme}/secrets/warehouse", json={"value": SECRET}
    ).is_success
    assert world.put(
        "globex:DE", f"/api/v1/tenants/{globex}/secrets/warehouse", json={"value": SECRET}
    ).is_success
    assert _secret(world, acme, "warehouse") == SECRET
    member = {
        "email": "web@acme.test",
        "display_name": "Web",
        "roles": ["AN"],
        "password": "a long password!",
    }
    assert world.post("acme:TA", f"/api/v1/tenants/{acme}/users", json=member).status_code == 201
    browser = world.sign_in(member["email"], member["password"])
    assert browser.get("/api/v1/me").status_code == 200

    requested = _request(world)
    assert requested.status_code == 201, requested.text
    request_id = requested.json()["request_id"]
    assert requested.json()["status"] == "PENDING"
    decided = _decide(world, request_id)
    assert (decided.status_code, decided.json()["status"]) == (200, "APPROVED")
    archived = _archive(world)
    assert archived.status_code == 201, archived.text
    archive = archived.json()
    decommissioned = _decommission(world, request_id)

    assert decommissioned.status_code == 200, decommissioned.text
    view = decommissioned.json()
    assert (view["status"], view["data_key"]) == ("DECOMMISSIONED", "destroyed")
    assert ISO.match(view["decommissioned_at"])
    receipt = view["receipts"][-1]
    assert ISO.match(receipt.pop("timestamp"))
    assert receipt == {
        "tenant_id": acme,
        "status": "DECOMMISSIONED",
        "deleted_by": world.actors["PA"].user_id,
        "validated_by": None,
        "archived_by": world.actors["CO"].user_id,
        "archive_id": archive["archive_id"],
        "archive_sha256": archive["sha256"],
        "request_id": request_id,
        "approved_by": world.actors["PO"].user_id,
        # 6 persona tokens; 1 browser session; the admin's unused invitation; 6 personas,
        # the invited admin and the new member.
        "access_revoked": {"sessions": 1, "tokens": 6, "invitations": 1, "users": 8},
        "data_plane": "deleted",
        # The key check and the one stored secret: neither decrypts any more.
        "crypto_shred": {
            "key_destroyed": True,
            "ciphertexts_checked": 2,
            "ciphertexts_undecryptable": 2,
            "proven": True,
        },
    }
    # Every session and token of the tenant's users is revoked.
    for persona in ("TA", "TP", "BO", "DE", "AN", "IO"):
        answer = world.get(f"acme:{persona}", "/api/v1/me")
        assert (answer.status_code, answer.json()["code"]) == (401, "unauthenticated")
    assert browser.get("/api/v1/me").status_code == 401
    relogin = browser.post(
        "/api/v1/auth/sign-in", json={"email": member["email"], "password": member["password"]}
    )
    assert relogin.status_code == 401
    # Storage deleted; key crypto-shredded: the stored secret no longer decrypts.
    assert not (world.keel.settings.home / "tenants" / acme).exists()
    key = _key(world, acme)
    assert key.wrapped_key is None and key.destroyed_at is not None
    with pytest.raises(Blocked):
        _secret(world, acme, "warehouse")
    # Events, each tied to its actor and the tenant.
    by_type = {
        kind: [(e["actor_id"], e["tenant_id"]) for e in world.events(kind) if e["tenant_id"] == acme]
        for kind in ("evidence.archived", "tenant.decommissioned", "data.wiped")
    }
    assert by_type == {
        "evidence.archived": [(world.actors["CO"].user_id, acme)],
        "tenant.decommissioned": [(world.actors["PA"].user_id, acme)],
        "data.wiped": [(world.actors["PA"].user_id, acme)],
    }
    # The other tenant is untouched.
    assert _works(world, "globex:TA") and _works(world, "globex:DE")
    assert (world.keel.settings.home / "tenants" / globex / "data.duckdb").is_file()
    assert _secret(world, globex, "warehouse") == SECRET
    assert world.get("PA", f"/api/v1/tenants/{globex}").json()["status"] == "ACTIVE"


def test_evidence_archive_is_a_file_with_its_hash_verifiable_offline_with_the_published_key(world):
    request_id = _approved(world)

    answer = _archive(world)

    assert answer.status_code == 201, answer.text
    archive = answer.json()
    assert set(archive) == {"archive_id", "tenant_id", "path", "sha256", "entries", "archived_by"}
    assert (archive["tenant_id"], archive["archived_by"]) == (
        world.tenants["acme"],
        world.actors["CO"].user_id,
    )
    data = Path(archive["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == archive["sha256"]
    doc = json.loads(data)
    assert doc["subject_tenant_id"] == world.tenants["acme"]
    about_acme = [e for e in doc["entries"] if e["event"]["tenant_id"] == world.tenants["acme"]]
    assert len(about_acme) == archive["entries"] > 0
    assert any(e["event"]["payload"].get("request_id") == request_id for e in about_acme)
    public_key = world.client.get("/api/v1/evidence/public-key").json()["public_key_pem"]
    report = verify_export(doc, public_key)
    assert report.ok, report.reason
    assert report.entries_checked == len(doc["entries"])
    # A tampered archive does not verify.
    doc["entries"][0]["event"]["actor_id"] = "someone-else"
    assert verify_export(doc, public_key).ok is False


def test_wipe_is_confirmed_by_the_security_admin_and_completes_the_receipt(world):
    request_id = _approved(world)
    _archive(world)
    _decommission(world, request_id)
    acme = world.tenants["acme"]

    answer = world.post("SA", f"/api/v1/tenants/{acme}/wipe-validation")

    assert answer.status_code == 200, answer.text
    receipt = answer.json()["receipts"][-1]
    assert (receipt["deleted_by"], receipt["validated_by"], receipt["archived_by"]) == (
        world.actors["PA"].user_id,
        world.actors["SA"].user_id,
        world.actors["CO"].user_id,
    )
    wiped = [e for e in world.events("tenant.wipe.validated") if e["tenant_id"] == acme]
    assert [
        (e["actor_id"], e["payload"]["storage_deleted"], e["payload"]["crypto_shred"]["proven"])
        for e in wiped
    ] == [(world.actors["SA"].user_id, True, True)]
    metrics = world.client.get("/metrics").text
    assert re.search(r"^keel_decommissioning_success_rate 1\.0$", metrics, re.M)
    # The Auditor checks adherence: the receipt and the events are there to read.
    audited = world.get("AU", f"/api/v1/tenants/{acme}")
    assert audited.status_code == 200 and audited.json()["receipts"][-1]["validated_by"] is not None
    entries = world.get("AU", "/api/v1/evidence/entries", params={"event_type": "tenant.decommissioned"})
    assert [e["event"]["tenant_id"] for e in entries.json()["items"]] == [acme]


# Without an approved request, nothing happens ----------------------------------------------------
@pytest.mark.parametrize("state", ["pending", "rejected", "other-tenant", "unknown"])
def test_decommissioning_without_an_approved_request_for_the_tenant_is_blocked(world, state):
    if state == "unknown":
        request_id = "OFF-20260101-NOTHERE0"
    elif state == "other-tenant":
        request_id = _approved(world, "globex")
    else:
        request_id = _request(world).json()["request_id"]
        if state == "rejected":
            assert _decide(world, request_id, approve=False).json()["status"] == "REJECTED"
    _archive(world)

    answer = _decommission(world, request_id)

    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "blocked"
    assert "approved offboarding request" in answer.json()["detail"]
    _assert_nothing_deleted(world)


def test_the_requester_never_approves_its_own_offboarding_request(world):
    # One person holding both the Platform Admin and the Platform Owner roles.
    both = {
        "email": "both@provider.test",
        "display_name": "Both",
        "roles": ["PA", "PO"],
        "password": "a long password!",
    }
    assert world.post("SA", "/api/v1/users", json=both).status_code == 201
    browser = world.sign_in(both["email"], both["password"])
    world.tokens["PAPO"] = browser.post("/api/v1/me/tokens", json={"name": "both"}, headers=CSRF).json()[
        "token"
    ]
    request_id = _request(world, who="PAPO").json()["request_id"]

    own = _decide(world, request_id, who="PAPO")

    assert own.status_code == 403
    assert (own.json()["code"], own.json()["rule"]) == ("permission_denied", "sod-approve-own-draft")
    assert world.get("PA", f"/api/v1/tenants/offboarding-requests/{request_id}").json()["status"] == "PENDING"
    assert _decide(world, request_id).json()["status"] == "APPROVED"


def test_each_step_is_reserved_to_its_persona(world):
    acme = world.tenants["acme"]
    request_id = _request(world).json()["request_id"]
    steps = {
        "request": (lambda who: _request(world, who=who), ["PO", "SA", "CO", "AU", "acme:TA", "globex:TA"]),
        "approve": (lambda who: _decide(world, request_id, who=who), ["PA", "SA", "CO", "AU", "acme:TP"]),
        "archive": (lambda who: _archive(world, who=who), ["PA", "PO", "SA", "AU", "acme:TA"]),
        "decommission": (
            lambda who: _decommission(world, request_id, who=who),
            ["PO", "SA", "CO", "acme:TA"],
        ),
        "wipe": (
            lambda who: world.post(who, f"/api/v1/tenants/{acme}/wipe-validation"),
            ["PA", "CO", "acme:TA"],
        ),
    }

    answers = {(step, who): call(who).status_code for step, (call, whos) in steps.items() for who in whos}

    assert answers == dict.fromkeys(answers, 403)
    _assert_nothing_deleted(world)


def test_tenant_users_see_only_their_own_tenants_requests_and_no_hint_of_others(world):
    acme_request = _request(world, "acme").json()["request_id"]
    globex_request = _request(world, "globex").json()["request_id"]

    own = world.get("acme:TA", f"/api/v1/tenants/offboarding-requests/{acme_request}")
    other = world.get("acme:TA", f"/api/v1/tenants/offboarding-requests/{globex_request}")
    missing = world.get("acme:TA", "/api/v1/tenants/offboarding-requests/OFF-20260101-NOTHERE0")
    decide_other = _decide(world, globex_request, who="acme:TP")
    decide_missing = _decide(world, "OFF-20260101-NOTHERE0", who="acme:TP")

    assert (own.status_code, own.json()["tenant_id"]) == (200, world.tenants["acme"])
    assert (other.status_code, missing.status_code) == (403, 403)
    assert other.json()["detail"] == missing.json()["detail"]
    assert world.tenants["globex"] not in other.text
    assert (decide_other.status_code, decide_missing.status_code) == (403, 403)
    assert decide_other.json()["detail"] == decide_missing.json()["detail"]
    assert (
        world.get("PA", f"/api/v1/tenants/offboarding-requests/{globex_request}").json()["status"]
        == "PENDING"
    )


# When evidence is missing, then blocked, incident logged -----------------------------------------
@pytest.mark.parametrize(
    "archive_state", ["never-made", "file-deleted", "file-modified", "made-before-approval"]
)
def test_decommissioning_with_evidence_missing_is_blocked_opens_an_incident_and_deletes_nothing(
    world, archive_state
):
    acme = world.tenants["acme"]
    if archive_state == "made-before-approval":
        _archive(world)
        request_id = _approved(world)
    else:
        request_id = _approved(world)
        if archive_state != "never-made":
            path = Path(_archive(world).json()["path"])
            if archive_state == "file-deleted":
                path.unlink()
            else:
                path.write_bytes(path.read_bytes().replace(b'"entries"', b'"entries" ', 1))

    answer = _decommission(world, request_id)

    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert problem["code"] == "blocked" and "nothing was deleted" in problem["detail"]
    with world.keel.engine.connect() as conn:
        rows = conn.execute(sa.select(incidents).where(incidents.c.tenant_id == acme)).all()
    assert [(r.id, r.kind, r.status) for r in rows] == [(problem["incident_id"], "evidence.missing", "OPEN")]
    opened = [e for e in world.events("incident.opened") if e["tenant_id"] == acme]
    assert [(e["actor_id"], e["payload"]["incident_id"], e["payload"]["kind"]) for e in opened] == [
        (world.actors["PA"].user_id, problem["incident_id"], "evidence.missing")
    ]
    assert re.search(r"^keel_incident_count 1\.0$", world.client.get("/metrics").text, re.M)
    _assert_nothing_deleted(world)
    with world.keel.engine.connect() as conn:
        statuses = set(conn.execute(sa.select(users.c.status).where(users.c.tenant_id == acme)).scalars())
    assert "DISABLED" not in statuses
    # Once the CO archives the evidence, the same approved request goes through.
    assert _archive(world).status_code == 201
    assert _decommission(world, request_id).status_code == 200


def test_a_decommissioned_tenant_cannot_be_decommissioned_again(world):
    request_id = _approved(world)
    _archive(world)
    assert _decommission(world, request_id).status_code == 200

    again = _decommission(world, request_id)
    fresh = _request(world)

    assert again.status_code == 409
    assert fresh.status_code == 409
