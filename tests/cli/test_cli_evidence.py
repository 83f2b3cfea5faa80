"""``keel evidence``: tree heads, proofs, export, and verification online, offline and of single proofs."""

from __future__ import annotations

import base64
import json

import pytest
import sqlalchemy as sa
from cli_harness import Cli, no_traceback

from keel.store.tables import ledger_entries


@pytest.fixture
def cli(settings):
    return Cli(settings)


def first_seq(world, event_type: str) -> int:
    with world.keel.engine.connect() as conn:
        return world.keel.ledger.entries(conn, event_type=event_type, limit=1)[0]["seq"]


def tamper(world, seq: int) -> None:
    """Edit one stored event behind the ledger's back, as an attacker with database access would."""
    with world.keel.engine.begin() as conn:
        stored = conn.execute(
            sa.select(ledger_entries.c.event_json).where(ledger_entries.c.seq == seq)
        ).scalar()
        event = json.loads(stored)
        event["actor_id"] = "USR-20260101-INTRUDER"
        conn.execute(
            ledger_entries.update().where(ledger_entries.c.seq == seq).values(event_json=json.dumps(event))
        )


def test_verify_exits_0_on_an_intact_ledger_and_1_naming_the_first_edited_entry(cli, world):
    intact = cli("evidence", "verify", token=world.tokens["AU"])
    assert intact.exit_code == 0, intact.output
    assert intact.stdout.startswith("ledger verifies: ")

    seq = first_seq(world, "tenant.validated")
    tamper(world, seq)
    broken = cli("evidence", "verify", token=world.tokens["AU"])
    report = cli("--json", "evidence", "verify", token=world.tokens["AU"])

    assert broken.exit_code == 1
    assert broken.stdout.splitlines() == [
        "ledger does NOT verify",
        f"first bad entry: seq {seq}: entry {seq}: leaf hash does not match its event (event altered?)",
    ]
    assert report.exit_code == 1
    assert (json.loads(report.stdout)["ok"], json.loads(report.stdout)["first_bad_seq"]) == (False, seq)


def export_with_key(cli: Cli, world, tmp_path):
    ledger, pem = tmp_path / "ledger.json", tmp_path / "keel.pem"
    exported = cli.json("evidence", "export", "-o", str(ledger), token=world.tokens["CO"])
    key = cli("evidence", "public-key", "-o", str(pem))
    assert key.exit_code == 0, key.output
    return exported, ledger, pem


def test_an_exported_ledger_verifies_offline_and_a_modified_copy_does_not(cli, world, tmp_path):
    exported, ledger, pem = export_with_key(cli, world, tmp_path)
    doc = json.loads(ledger.read_text())
    assert (exported["file"], exported["entries"], exported["tree_heads"]) == (
        str(ledger),
        len(doc["entries"]),
        len(doc["tree_heads"]),
    )
    assert pem.read_text().startswith("-----BEGIN PUBLIC KEY-----")

    good = cli("evidence", "verify", "--offline", str(ledger), "--public-key", str(pem))
    seq = first_seq(world, "tenant.created")
    doc["entries"][seq]["event"]["payload"]["forged"] = True
    modified = tmp_path / "modified.json"
    modified.write_text(json.dumps(doc))
    bad = cli("evidence", "verify", "--offline", str(modified), "--public-key", str(pem))

    assert good.exit_code == 0, good.output
    assert good.stdout.startswith(f"ledger verifies: {len(doc['entries'])} entries")
    assert bad.exit_code == 1
    assert f"first bad entry: seq {seq}: entry {seq}: leaf hash does not match its event" in bad.stdout


def test_offline_verification_needs_no_database_and_no_keel_home(cli, world, tmp_path):
    _, ledger, pem = export_with_key(cli, world, tmp_path)
    nowhere = tmp_path / "no-keel-here"
    env = {"KEEL_HOME": str(nowhere), "KEEL_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}

    with_key = cli("evidence", "verify", "--offline", str(ledger), "--public-key", str(pem), env=env)
    embedded = cli("evidence", "verify", "--offline", str(ledger), env=env)
    missing = cli("evidence", "verify", "--offline", str(tmp_path / "absent.json"), env=env)

    misused = cli("evidence", "verify", "--public-key", str(pem), env=env)

    assert (with_key.exit_code, embedded.exit_code, missing.exit_code, misused.exit_code) == (0, 0, 1, 2)
    assert misused.stderr.startswith("error: --public-key: only used with --offline FILE")
    assert "(with the key embedded in the export: supply the key to verify independently)" in embedded.stdout
    assert missing.stdout.splitlines()[-1].startswith("reason: cannot read")
    assert no_traceback(missing) and not nowhere.exists()


def test_a_proof_from_the_cli_checks_valid_and_every_damaged_copy_is_invalid(cli, world, tmp_path):
    seq = first_seq(world, "rbac.applied")
    inclusion, consistency = tmp_path / "inclusion.json", tmp_path / "consistency.json"
    assert (
        cli(
            "evidence", "proof", "inclusion", str(seq), "-o", str(inclusion), token=world.tokens["AU"]
        ).exit_code
        == 0
    )
    assert (
        cli(
            "evidence", "proof", "consistency", "3", "-o", str(consistency), token=world.tokens["AU"]
        ).exit_code
        == 0
    )
    doc = json.loads(inclusion.read_text())
    root = bytearray(base64.b64decode(doc["root"]))
    root[0] ^= 0x01
    flipped, truncated, garbage = (
        tmp_path / "flipped.json",
        tmp_path / "truncated.json",
        tmp_path / "garbage.bin",
    )
    flipped.write_text(json.dumps({**doc, "root": base64.b64encode(bytes(root)).decode()}))
    truncated.write_bytes(inclusion.read_bytes()[: len(inclusion.read_bytes()) // 2])
    garbage.write_bytes(bytes(range(256)) * 3)

    results = {
        name: cli("evidence", "check-proof", str(path))
        for name, path in {
            "inclusion": inclusion,
            "consistency": consistency,
            "flipped": flipped,
            "truncated": truncated,
            "garbage": garbage,
            "missing": tmp_path / "absent.json",
            "directory": tmp_path,
        }.items()
    }

    assert {name: r.exit_code for name, r in results.items()} == {
        "inclusion": 0,
        "consistency": 0,
        "flipped": 1,
        "truncated": 1,
        "garbage": 1,
        "missing": 1,
        "directory": 1,
    }
    assert all(no_traceback(r) for r in results.values())
    assert doc["leafIdx"] == seq
    assert results["inclusion"].stdout.startswith(f"valid inclusion proof: leaf {seq} is included")
    assert results["consistency"].stdout.startswith("valid consistency proof: the tree of size 3 is a prefix")
    assert results["flipped"].stdout.startswith(
        f"invalid proof: inclusion proof does not verify for leaf {seq}"
    )
    assert results["truncated"].stdout.startswith("invalid proof: not valid JSON")
    assert results["missing"].stdout.startswith("invalid proof: cannot read")


def test_a_proof_is_printed_as_transparency_log_json(cli, world):
    size = cli.json("evidence", "tree-head", token=world.tokens["AU"])["tree_size"]

    result = cli("evidence", "proof", "consistency", "1", str(size), token=world.tokens["AU"])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert sorted(doc) == ["proof", "root1", "root2", "size1", "size2"]
    assert (doc["size1"], doc["size2"]) == (1, size)


def test_the_tree_head_and_the_entries_show_the_ledger(cli, world):
    head = cli.json("evidence", "tree-head", token=world.tokens["AU"])
    entries = cli.json("evidence", "entries", "--type", "tenant.validated", token=world.tokens["AU"])
    table = cli("evidence", "entries", "--type", "tenant.validated", token=world.tokens["AU"])

    assert head["tree_size"] == len(world.events())
    assert sorted(head) == ["key_id", "root_hash", "signature", "timestamp_ms", "tree_size"]
    assert [e["event"]["tenant_id"] for e in entries["items"]] == [
        world.tenants["acme"],
        world.tenants["globex"],
    ]
    assert table.exit_code == 0 and table.stdout.count("tenant.validated") == 2


def test_exporting_is_the_compliance_officers_job(cli, world, tmp_path):
    result = cli("evidence", "export", "-o", str(tmp_path / "ledger.json"), token=world.tokens["SRE"])

    assert result.exit_code == 3
    assert "error: 'evidence:Export'" in result.stderr
    assert not (tmp_path / "ledger.json").exists()
