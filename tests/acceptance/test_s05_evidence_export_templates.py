"""Story 05 (step 4): reproducible evidence export templates, through the API.

The Compliance Officer defines EV-STD-01 (sections, retention); a pack generated from it
for a tenant holds each section, the tenant's ledger export (which verifies offline with
the published key alone), and its sha256 is in an ``export.generated`` ledger event and a
receipt. A template that does not match is fixed by defining its next version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import sqlalchemy as sa

from keel.evidence.offline import verify_export
from keel.store.tables import receipts

API = "/api/v1"
EV_STD_01 = {
    "template_id": "EV-STD-01",
    "sections": ["action_receipts", "kpi_snapshots", "lineage_diagrams", "identity_map"],
    "retention_years": 7,
}


def _define(world, body=EV_STD_01, who="CO"):
    return world.post(who, f"{API}/evidence/export-templates", json=body)


def test_the_compliance_officer_defines_a_template_and_its_use_is_evidenced(world):
    answer = _define(world)

    assert answer.status_code == 201, answer.text
    template = answer.json()
    assert (template["template_id"], template["version"]) == ("EV-STD-01", 1)
    assert template["sections"] == EV_STD_01["sections"] and template["retention_years"] == 7
    (enabled,) = world.events("evidence.enabled")
    assert enabled["payload"]["template_id"] == "EV-STD-01"
    assert enabled["actor_id"] == world.actors["CO"].user_id
    listed = world.get("AU", f"{API}/evidence/export-templates").json()["items"]
    assert [t["template_id"] for t in listed] == ["EV-STD-01"]


def test_a_template_names_only_known_sections_and_only_the_compliance_officer_defines_one(world):
    bad = _define(world, EV_STD_01 | {"sections": ["action_receipts", "screenshots"]})
    assert bad.status_code == 422
    assert "screenshots" in bad.text and "identity_map" in bad.text  # names the wrong one and the known ones

    for who in ("SS", "PA", "AU", "acme:TA"):
        assert _define(world, who=who).status_code == 403, who
    assert world.events("evidence.enabled") == []


def test_a_pack_from_the_template_holds_its_sections_and_verifies_offline(world):
    acme = world.tenants["acme"]
    assert _define(world).status_code == 201

    answer = world.post("CO", f"{API}/tenants/{acme}/evidence-packs", json={"template_id": "EV-STD-01"})

    assert answer.status_code == 201, answer.text
    pack = answer.json()
    data = Path(pack["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == pack["sha256"]
    doc = json.loads(data)
    assert doc["tenant_id"] == acme and doc["template"] == {"template_id": "EV-STD-01", "version": 1}
    assert set(doc["sections"]) == set(EV_STD_01["sections"])
    people = {p["user_id"]: p for p in doc["sections"]["identity_map"]}
    assert "AN" in people[world.actors["acme:AN"].user_id]["roles"]
    assert world.actors["globex:AN"].user_id not in people
    assert not any("password" in key for p in people.values() for key in p)
    assert all(r["tenant_id"] == acme for r in doc["sections"]["action_receipts"])
    assert doc["empty_sections"] == [s for s in EV_STD_01["sections"] if not doc["sections"][s]]
    public_key = world.get("AU", f"{API}/evidence/public-key").json()["public_key_pem"]
    assert verify_export(doc["ledger"], public_key).ok
    (generated,) = world.events("export.generated")
    assert generated["tenant_id"] == acme and generated["payload"]["sha256"] == pack["sha256"]
    stored = world.rows(sa.select(receipts).where(receipts.c.id == pack["receipt_id"]))
    assert stored[0].body["sha256"] == pack["sha256"] and stored[0].kind == "evidence.pack"


def test_a_mismatching_template_is_fixed_by_republishing_it_as_its_next_version(world):
    acme = world.tenants["acme"]
    assert _define(world, EV_STD_01 | {"sections": ["action_receipts"]}).status_code == 201
    fixed = _define(world)
    assert fixed.status_code == 201 and fixed.json()["version"] == 2
    assert _define(world).status_code == 409  # the same words again are no new version

    pack = world.post("CO", f"{API}/tenants/{acme}/evidence-packs", json={"template_id": "EV-STD-01"}).json()
    old = world.post(
        "CO", f"{API}/tenants/{acme}/evidence-packs", json={"template_id": "EV-STD-01", "version": 1}
    ).json()

    assert pack["template_version"] == 2 and set(pack["sections"]) == set(EV_STD_01["sections"])
    assert old["template_version"] == 1 and set(old["sections"]) == {"action_receipts"}


def test_packs_are_refused_for_an_unknown_template_and_for_personas_who_do_not_export(world):
    acme = world.tenants["acme"]
    missing = world.post("CO", f"{API}/tenants/{acme}/evidence-packs", json={"template_id": "EV-NONE-01"})
    assert missing.status_code == 404 and "EV-NONE-01" in missing.text
    assert _define(world).status_code == 201
    for who in ("AU", "PA", "acme:TA", "acme:AN"):
        refused = world.post(who, f"{API}/tenants/{acme}/evidence-packs", json={"template_id": "EV-STD-01"})
        assert refused.status_code in (403, 404), who
    assert world.events("export.generated") == []
