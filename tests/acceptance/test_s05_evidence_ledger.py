"""Story 05 (core): the evidence ledger, through the API.

Every audit event lands in an append-only RFC 6962 Merkle ledger linked to its actor
and tenant; signed tree heads, inclusion and consistency proofs and the export all
verify with the published public key alone; tenant users see only their tenant's
entries; leaves hold no personal data or secrets in clear.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import sqlalchemy as sa
from tests.support import World

from keel.evidence.canonical import canonical_json
from keel.evidence.merkle import leaf_hash, root_of
from keel.evidence.offline import verify_export
from keel.evidence.proofdoc import check_proof_document
from keel.evidence.signing import (
    TreeHead,
    generate_signing_key,
    key_id,
    load_public_key,
    public_key_pem,
    verify_tree_head,
)
from keel.store.tables import api_tokens, invitations, ledger_entries, ledger_tree_heads, sessions, users

API = "/api/v1/evidence"
EVENT_KEYS = {"seq", "id", "type", "occurred_at", "tenant_id", "actor_id", "payload"}


def all_entries(world: World, who: str) -> list[dict]:
    """Every entry ``who`` may list, page after page."""
    items, after = [], -1
    while True:
        page = world.get(who, f"{API}/entries", params={"after_seq": after, "limit": 50})
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        if body["next_after_seq"] is None:
            return items
        after = body["next_after_seq"]


def current_head(world: World) -> dict:
    response = world.get("AU", f"{API}/tree-head")
    assert response.status_code == 200, response.text
    return response.json()


def head_verifies(pem: str, head: dict) -> bool:
    tree_head = TreeHead(head["tree_size"], base64.b64decode(head["root_hash"]), head["timestamp_ms"])
    return verify_tree_head(load_public_key(pem), tree_head, base64.b64decode(head["signature"]))


def published_key(world: World) -> str:
    return world.client.get(f"{API}/public-key").json()["public_key_pem"]


def ledger_size(world: World) -> int:
    return world.scalar(sa.select(sa.func.count()).select_from(ledger_entries))


# Identity-linked audit events -------------------------------------------------------------
def test_every_audit_event_is_linked_to_its_actor_and_tenant(world):
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    denied = world.get("acme:AN", f"{API}/export")
    assert denied.status_code == 403

    events = [e["event"] for e in all_entries(world, "AU")]

    assert [e["seq"] for e in events] == list(range(len(events)))
    assert all(set(e) == EVENT_KEYS for e in events)
    users_by_id = {a.user_id: a for a in world.actors.values()}
    for event in events:  # every event names a known actor, and a tenant user's event its tenant
        assert event["actor_id"] in {*users_by_id, "system"}, event
        assert event["tenant_id"] in {None, acme, globex}, event
        actor = users_by_id.get(event["actor_id"])
        if actor is not None and actor.tenant_id is not None:
            assert event["tenant_id"] == actor.tenant_id, event

    def linked(event_type: str, **payload) -> list[tuple[str | None, str | None]]:
        return [
            (e["actor_id"], e["tenant_id"])
            for e in events
            if e["type"] == event_type and payload.items() <= e["payload"].items()
        ]

    ids = {who: actor.user_id for who, actor in world.actors.items()}
    assert linked("infra.deployed") == [(ids["PA"], None)]
    assert linked("infra.validated") == [(ids["SA"], None)]
    assert linked("rbac.defined") == [(ids["SA"], None)]
    assert linked("rbac.applied") == [(ids["PA"], None)]
    assert linked("rbac.reviewed") == [(ids["CO"], None)]
    assert linked("tenant.created", slug="acme") == [(ids["PA"], acme)]
    assert linked("tenant.validated") == [(ids["SA"], acme), (ids["SA"], globex)]
    assert linked("identity.token.created", token_id=_token_id(world, "acme:TA")) == [(ids["acme:TA"], acme)]
    assert linked("authz.denied", action="evidence:Export") == [(ids["acme:AN"], acme)]


def _token_id(world: World, who: str) -> str:
    return world.scalar(sa.select(api_tokens.c.id).where(api_tokens.c.user_id == world.actors[who].user_id))


# Public key and signed tree heads ---------------------------------------------------------
def test_the_public_key_is_published_without_authentication(world):
    response = world.client.get(f"{API}/public-key")

    assert response.status_code == 200
    pem = response.json()["public_key_pem"]
    assert response.json() == {
        "key_id": key_id(load_public_key(pem)),
        "algorithm": "Ed25519",
        "public_key_pem": world.keel.public_key_pem(),
    }
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")


def test_the_signed_tree_head_verifies_and_its_root_is_recomputed_from_the_export(world):
    pem = published_key(world)
    head = current_head(world)
    export = world.get("CO", f"{API}/export").json()

    assert head_verifies(pem, head)
    assert head["key_id"] == key_id(load_public_key(pem))
    assert head["tree_size"] == len(export["entries"])
    leaves = [leaf_hash(canonical_json(e["event"])) for e in export["entries"]]
    assert base64.b64encode(root_of(leaves)).decode() == head["root_hash"]
    # Every earlier head verifies too, and its root is the root of that many leading entries.
    for earlier in export["tree_heads"]:
        assert head_verifies(pem, earlier), earlier
        assert base64.b64decode(earlier["root_hash"]) == root_of(leaves[: earlier["tree_size"]])
    by_size = world.get("AU", f"{API}/tree-head", params={"tree_size": export["tree_heads"][0]["tree_size"]})
    assert by_size.json() == export["tree_heads"][0]
    # A forged root does not verify with the published key.
    assert not head_verifies(pem, {**head, "root_hash": export["tree_heads"][0]["root_hash"]})


def test_the_first_signed_head_covers_the_events_recorded_before_deployment(keel, client):
    world = World.build(keel, client, deploy=False, baseline=False)
    before = ledger_size(world)

    assert world.get("AU", f"{API}/verify").json()["code"] == "blocked"
    assert client.get(f"{API}/public-key").status_code == 409
    assert world.get("AU", f"{API}/tree-head").status_code == 409

    dep = world.post("PA", "/api/v1/platform/deployments").json()["deployment_id"]
    assert world.post("PO", f"/api/v1/platform/deployments/{dep}/approve").status_code == 200
    assert world.post("PA", f"/api/v1/platform/deployments/{dep}/execute").status_code == 200

    # Request and approval were recorded without a key; execution signs a head over them, then its own.
    heads = world.get("CO", f"{API}/export").json()["tree_heads"]
    assert [h["tree_size"] for h in heads] == [before + 2, before + 3]
    verified = world.get("AU", f"{API}/verify").json()
    assert verified["ok"] is True, verified
    assert verified["first_bad_seq"] is None


# Proofs -----------------------------------------------------------------------------------
def test_inclusion_proofs_verify_in_transparency_log_form(world):
    head = current_head(world)
    size = head["tree_size"]

    for seq, tree_size in [(0, size), (size // 2, size), (size - 1, size), (3, 4), (0, 1), (7, 20)]:
        response = world.get("AU", f"{API}/proofs/inclusion", params={"seq": seq, "tree_size": tree_size})
        assert response.status_code == 200, response.text
        proof = response.json()
        assert set(proof) == {"leafIdx", "treeSize", "root", "leafHash", "proof"}
        assert (proof["leafIdx"], proof["treeSize"]) == (seq, tree_size)
        assert proof["leafHash"] == world.get("AU", f"{API}/entries/{seq}").json()["leaf_hash"]
        check = check_proof_document(json.dumps(proof))
        assert check.ok, (seq, tree_size, check.reason)
        if tree_size == size:
            assert proof["root"] == head["root_hash"]
        if proof["proof"]:  # a proof with one bit flipped no longer verifies
            sibling = bytearray(base64.b64decode(proof["proof"][0]))
            sibling[0] ^= 1
            flipped = {**proof, "proof": [base64.b64encode(bytes(sibling)).decode(), *proof["proof"][1:]]}
            assert not check_proof_document(json.dumps(flipped)).ok

    default = world.get("AU", f"{API}/proofs/inclusion", params={"seq": 5}).json()
    assert (default["treeSize"], default["root"]) == (size, head["root_hash"])


def test_consistency_proofs_verify_between_signed_tree_heads(world):
    heads = world.get("CO", f"{API}/export").json()["tree_heads"]
    head = current_head(world)  # one more than the export: the export is evidenced too

    for earlier in (heads[0], heads[len(heads) // 2], heads[-2], heads[-1]):
        response = world.get(
            "AU",
            f"{API}/proofs/consistency",
            params={"size1": earlier["tree_size"], "size2": head["tree_size"]},
        )
        assert response.status_code == 200, response.text
        proof = response.json()
        assert set(proof) == {"size1", "size2", "root1", "root2", "proof"}
        assert (proof["root1"], proof["root2"]) == (earlier["root_hash"], head["root_hash"])
        check = check_proof_document(json.dumps(proof))
        assert check.ok, check.reason
        if proof["proof"]:
            assert not check_proof_document(json.dumps({**proof, "proof": proof["proof"][:-1]})).ok

    default = world.get("AU", f"{API}/proofs/consistency", params={"size1": 1}).json()
    assert (default["size2"], default["root2"]) == (head["tree_size"], head["root_hash"])


OUT_OF_RANGE = [  # (proof, query, field named); SIZE is the current tree size
    ("inclusion", {"seq": "SIZE"}, "seq"),
    ("inclusion", {"seq": 0, "tree_size": "SIZE+1"}, "tree_size"),
    ("inclusion", {"seq": 5, "tree_size": 5}, "seq"),
    ("inclusion", {"seq": -1}, "seq"),
    ("inclusion", {"seq": 0, "tree_size": 0}, "tree_size"),
    ("inclusion", {}, "seq"),
    ("consistency", {"size1": "SIZE+1"}, "size1"),
    ("consistency", {"size1": 1, "size2": "SIZE+1"}, "size2"),
    ("consistency", {"size1": 6, "size2": 5}, "size1"),
    ("consistency", {"size1": 0}, "size1"),
    ("consistency", {"size1": "many"}, "size1"),
]


def test_out_of_range_proof_requests_are_refused_naming_the_field(world):
    size = current_head(world)["tree_size"]

    refused = []
    for path, params, _ in OUT_OF_RANGE:
        values = {k: {"SIZE": size, "SIZE+1": size + 1}.get(v, v) for k, v in params.items()}
        response = world.get("AU", f"{API}/proofs/{path}", params=values)
        refused.append((path, params, response.status_code, response.json().get("field")))

    assert refused == [(path, params, 422, field) for path, params, field in OUT_OF_RANGE]


# Tenant scoping ---------------------------------------------------------------------------
def test_tenant_users_list_only_their_own_tenants_entries(world):
    for slug in ("acme", "globex"):
        tenant = world.tenants[slug]
        expected = [e["seq"] for e in world.events() if e["tenant_id"] == tenant]

        listed = all_entries(world, f"{slug}:AN")

        assert [e["seq"] for e in listed] == expected
        assert {e["event"]["tenant_id"] for e in listed} == {tenant}
    assert len(all_entries(world, "AU")) == ledger_size(world)  # provider roles read the whole ledger


def test_tenant_users_cannot_fetch_other_entries_or_proofs_nor_learn_whether_they_exist(world):
    acme, globex = world.tenants["acme"], world.tenants["globex"]
    own = next(e["seq"] for e in world.events() if e["tenant_id"] == acme)
    foreign = next(e["seq"] for e in world.events() if e["tenant_id"] == globex)
    platform = next(e["seq"] for e in world.events() if e["tenant_id"] is None)

    assert world.get("acme:AN", f"{API}/entries/{own}").json()["event"]["tenant_id"] == acme
    own_proof = world.get("acme:AN", f"{API}/proofs/inclusion", params={"seq": own})
    assert check_proof_document(own_proof.content).ok

    refused = {
        "code": "permission_denied",
        "status": 403,
        "reason": "forbidden_by_policy",
        "rule": "deny-cross-tenant",
    }
    for seq in (foreign, platform, 10**9):
        for path, params in ((f"{API}/entries/{seq}", None), (f"{API}/proofs/inclusion", {"seq": seq})):
            response = world.get("acme:AN", path, params=params)
            assert response.status_code == 403, (path, seq)
            assert {k: response.json().get(k) for k in refused} == refused

    # The same request answers the same body before and after the entry exists (as globex's).
    missing = ledger_size(world) + 3
    before = {
        "entry": world.get("acme:AN", f"{API}/entries/{missing}"),
        "proof": world.get("acme:AN", f"{API}/proofs/inclusion", params={"seq": missing}),
    }
    while ledger_size(world) <= missing:
        assert world.post("globex:TA", "/api/v1/me/tokens", json={"name": "filler"}).status_code == 201
    assert world.events()[missing]["tenant_id"] == globex
    after = {
        "entry": world.get("acme:AN", f"{API}/entries/{missing}"),
        "proof": world.get("acme:AN", f"{API}/proofs/inclusion", params={"seq": missing}),
    }
    for name in ("entry", "proof"):
        assert before[name].status_code == after[name].status_code == 403
        assert before[name].json() == after[name].json()
    assert world.get("globex:AN", f"{API}/entries/{missing}").status_code == 200


# Export and verification ------------------------------------------------------------------
def test_only_the_compliance_officer_may_export_the_ledger(world):
    for who in world.tokens:
        response = world.get(who, f"{API}/export")
        expected = 200 if who == "CO" else 403
        assert response.status_code == expected, (who, response.text)


def test_the_export_verifies_offline_with_the_published_key_alone(world):
    pem = published_key(world)
    response = world.get("CO", f"{API}/export")
    doc = json.loads(response.content)  # exactly the bytes a regulator would receive

    report = verify_export(doc, pem)

    assert report.ok, report.reason
    assert (report.entries_checked, report.first_bad_seq) == (len(doc["entries"]), None)
    assert report.tree_heads_checked == len(doc["tree_heads"])
    assert doc["public_key"] == pem
    other_key = public_key_pem(generate_signing_key())
    assert not verify_export(doc, other_key).ok
    exported = world.events("evidence.exported")
    assert [(e["actor_id"], e["payload"]) for e in exported] == [
        (world.actors["CO"].user_id, {"entries": len(doc["entries"]), "tree_size": len(doc["entries"])})
    ]


def test_verification_reports_an_intact_ledger(world):
    heads = world.scalar(sa.select(sa.func.count()).select_from(ledger_tree_heads))
    entries = ledger_size(world)

    for who in ("AU", "CO", "acme:AN"):
        response = world.get(who, f"{API}/verify")
        assert response.status_code == 200
        assert response.json() == {
            "ok": True,
            "entries_checked": entries,
            "tree_heads_checked": heads,
            "first_bad_seq": None,
            "reason": f"{entries} entries and {heads} signed tree heads verify",
        }


# No personal data or secrets in clear -----------------------------------------------------
def test_leaves_hold_no_personal_data_or_secrets_in_clear(world):
    password = "correct horse battery staple 42"
    secret_value = "crm-api-key-7f3a9c0e5b1d"
    created = world.post(
        "SA",
        "/api/v1/users",
        json={
            "email": "ada.lovelace@provider.test",
            "display_name": "Ada",
            "roles": ["AU"],
            "password": password,
        },
    )
    assert created.status_code == 201, created.text
    signed_in = world.client.post(
        "/api/v1/auth/sign-in", json={"email": "ada.lovelace@provider.test", "password": password}
    )
    assert signed_in.status_code == 200, signed_in.text
    failed = world.client.post(
        "/api/v1/auth/sign-in", json={"email": "ada.lovelace@provider.test", "password": "wrong password!"}
    )
    assert failed.status_code == 401
    stored = world.put(
        "acme:DE", f"/api/v1/tenants/{world.tenants['acme']}/secrets/crm", json={"value": secret_value}
    )
    assert stored.status_code == 200, stored.text
    token = world.post("acme:TA", "/api/v1/me/tokens", json={"name": "scan"}).json()["token"]

    with world.keel.engine.connect() as conn:
        leaves = conn.execute(sa.select(ledger_entries.c.event_json)).scalars().all()
        emails = conn.execute(sa.select(users.c.email)).scalars().all()
        hashes = [
            *conn.execute(sa.select(api_tokens.c.token_hash)).scalars(),
            *conn.execute(sa.select(sessions.c.token_hash)).scalars(),
            *conn.execute(sa.select(invitations.c.token_hash)).scalars(),
            *conn.execute(
                sa.select(users.c.password_hash).where(users.c.password_hash.isnot(None))
            ).scalars(),
        ]
    master_key = Path(world.keel.settings.home, "master.key")
    needles = {
        *emails,
        "invited-admin@acme.test",
        password,
        secret_value,
        token,
        signed_in.cookies["keel_session"],
        *world.tokens.values(),
        *(h if isinstance(h, str) else bytes(h).hex() for h in hashes),
        *([master_key.read_text().strip()] if master_key.exists() else []),
    }
    assert len(emails) >= 20 and len(hashes) >= 20  # the scan looks at real values

    ledger_text = "\n".join(leaves)
    leaked = sorted(n for n in needles if n.lower() in ledger_text.lower())

    assert leaked == []
    assert created.json()["id"] in ledger_text  # the user is referenced, by id only


# Regression: deployment rollback must not orphan the signing key ------------------------
def test_a_rejected_then_repeated_deployment_keeps_the_ledger_verifiable(keel, client):
    # Tree heads signed before the rejection stay in the append-only ledger, so the key that
    # signed them must survive the rollback (an earlier tear-down deleted it).
    world = World.build(keel, client, deploy=False, baseline=False)
    keys = []
    for reject in (True, False):
        dep = world.post("PA", "/api/v1/platform/deployments").json()["deployment_id"]
        world.post("PO", f"/api/v1/platform/deployments/{dep}/approve")
        assert world.post("PA", f"/api/v1/platform/deployments/{dep}/execute").status_code == 200
        keys.append(published_key(world))
        if reject:
            rejected = world.post("SA", f"/api/v1/platform/deployments/{dep}/reject", json={"reason": "no"})
            assert rejected.status_code == 200

    assert keys[0] == keys[1]
    verified = world.get("AU", f"{API}/verify").json()
    assert (verified["ok"], verified["first_bad_seq"]) == (True, None), verified
