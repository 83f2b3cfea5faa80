"""Tampering with the stored ledger is detected, naming the first entry that can no longer be trusted.

Each test edits the control-plane store directly with SQL, as an attacker with database
access would, then asks both ``GET /api/v1/evidence/verify`` and ``Ledger.verify``. The
ledger's in-memory Merkle tree is warmed before every tamper, so a verifier that
trusted it instead of the store would miss the edit.

The ledger built here ends with a known shape (``base`` = entries made by the world):
single-event commits at ``base .. base+5``, one commit of three events at
``base+6 .. base+8``, single-event commits at ``base+9`` and ``base+10``. Every commit
signs a tree head, so a head exists at every size from ``base+1`` to ``base+11`` except
``base+7`` and ``base+8``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass

import pytest
import sqlalchemy as sa
from tests.support import World

from keel.bootstrap import build
from keel.evidence.canonical import canonical_json
from keel.evidence.merkle import MerkleTree, leaf_hash
from keel.evidence.signing import (
    TreeHead,
    generate_signing_key,
    load_public_key,
    sign_tree_head,
    verify_tree_head,
)
from keel.kernel.clock import utcnow
from keel.kernel.errors import IntegrityError
from keel.store.tables import ledger_entries, ledger_head, ledger_tree_heads

API = "/api/v1/evidence"


@dataclass
class Ledger:
    world: World
    base: int

    @property
    def keel(self):
        return self.world.keel

    @property
    def size(self) -> int:
        return self.base + 11

    def verdict(self) -> dict:
        """The API's and the ledger's own verdict, which must agree."""
        response = self.world.get("CO", f"{API}/verify")
        assert response.status_code == 200, response.text
        with self.keel.engine.connect() as conn:
            direct = asdict(self.keel.ledger.verify(conn, self.keel.public_key_pem(conn)))
        assert response.json() == direct
        return direct

    def row(self, seq: int):
        with self.keel.engine.connect() as conn:
            return conn.execute(sa.select(ledger_entries).where(ledger_entries.c.seq == seq)).one()

    def sql(self, *statements) -> None:
        with self.keel.engine.begin() as conn:
            for statement in statements:
                conn.execute(statement)


def record(keel, count: int, step: int) -> None:
    with keel.uow() as uow:
        for i in range(count):
            uow.record("test.step", actor_id="system", tenant_id=None, step=step, part=i, amount=100 + step)
        uow.commit()


@pytest.fixture
def ledger(keel, client) -> Ledger:
    world = World.build(keel, client, baseline=False, tenant_slugs=())
    base = world.scalar(sa.select(sa.func.count()).select_from(ledger_entries))
    for step, count in enumerate([1, 1, 1, 1, 1, 1, 3, 1, 1]):
        record(keel, count, step)
    built = Ledger(world, base)
    assert world.get("AU", f"{API}/proofs/inclusion", params={"seq": 0}).status_code == 200  # warm cache
    assert built.verdict()["ok"] is True
    return built


def failed(verdict: dict) -> tuple[bool, int | None]:
    return verdict["ok"], verdict["first_bad_seq"]


def edited_event(row, **payload) -> dict:
    event = json.loads(row.event_json)
    event["payload"] = {**event["payload"], **payload}
    return event


def forged_row(seq: int, event: dict) -> dict:
    data = canonical_json(event)
    return {
        "seq": seq,
        "event_id": event["id"],
        "event_type": event["type"],
        "tenant_id": event["tenant_id"],
        "actor_id": event["actor_id"],
        "event_json": data.decode(),
        "leaf_hash": leaf_hash(data),
        "recorded_at": utcnow(),
    }


def rewrite(ledger: Ledger, events: list[dict]) -> None:
    """Replace every entry by ``events``, renumbered and with recomputed leaf hashes."""
    rows = [forged_row(seq, {**event, "seq": seq}) for seq, event in enumerate(events)]
    ledger.sql(ledger_entries.delete(), ledger_entries.insert().values(rows))


def all_events(ledger: Ledger) -> list[dict]:
    with ledger.keel.engine.connect() as conn:
        texts = conn.execute(sa.select(ledger_entries.c.event_json).order_by(ledger_entries.c.seq)).scalars()
        return [json.loads(t) for t in texts]


def entry_update(at: int, /, **values):
    return ledger_entries.update().where(ledger_entries.c.seq == at).values(**values)


def edit_with_leaf_hash_recomputed(ledger: Ledger, seq: int) -> None:
    """Edit entry ``seq``'s event and store the leaf hash of the edited event with it."""
    forged = forged_row(seq, edited_event(ledger.row(seq), amount=0))
    ledger.sql(entry_update(seq, event_json=forged["event_json"], leaf_hash=forged["leaf_hash"]))


# Intact -----------------------------------------------------------------------------------
def test_an_intact_ledger_verifies(ledger):
    heads = ledger.world.scalar(sa.select(sa.func.count()).select_from(ledger_tree_heads))

    assert ledger.verdict() == {
        "ok": True,
        "entries_checked": ledger.size,
        "tree_heads_checked": heads,
        "first_bad_seq": None,
        "reason": f"{ledger.size} entries and {heads} signed tree heads verify",
    }


# Edited -----------------------------------------------------------------------------------
def test_an_edited_event_is_caught_at_its_entry(ledger):
    seq = ledger.base + 2
    event = edited_event(ledger.row(seq), amount=1_000_000)
    ledger.sql(entry_update(seq, event_json=json.dumps(event)))

    verdict = ledger.verdict()

    assert failed(verdict) == (False, seq)
    assert verdict["reason"] == f"entry {seq}: leaf hash does not match its event (event altered?)"


def test_an_edit_with_its_leaf_hash_recomputed_is_caught_by_the_signed_heads(ledger):
    seq = ledger.base + 3
    edit_with_leaf_hash_recomputed(ledger, seq)

    verdict = ledger.verdict()

    assert failed(verdict) == (False, seq)
    assert verdict["reason"] == f"root mismatch for tree size {seq + 1}"


def test_an_edit_inside_a_batch_is_pinned_to_the_batch_its_signed_head_covers(ledger):
    # Only heads vouch for a recomputed leaf hash; the batch base+6..base+8 has one head (base+9),
    # so the first entry that can no longer be trusted is the batch's first.
    seq = ledger.base + 7
    edit_with_leaf_hash_recomputed(ledger, seq)

    verdict = ledger.verdict()

    assert failed(verdict) == (False, ledger.base + 6)
    assert verdict["reason"] == f"root mismatch for tree size {ledger.base + 9}"


def test_an_edited_index_column_is_caught(ledger):
    # The tenant column decides what a tenant user may list; it must agree with the signed event.
    seq = ledger.base + 1
    ledger.sql(entry_update(seq, tenant_id="TEN-20260101-ACME0001"))

    verdict = ledger.verdict()

    assert failed(verdict) == (False, seq)
    assert (
        verdict["reason"]
        == f"entry {seq}: its index columns (id, type, tenant, actor) do not match its event"
    )


# Deleted ----------------------------------------------------------------------------------
def test_a_deleted_entry_is_caught(ledger):
    seq = ledger.base + 4
    ledger.sql(ledger_entries.delete().where(ledger_entries.c.seq == seq))

    verdict = ledger.verdict()

    assert failed(verdict) == (False, seq)
    assert verdict["reason"] == f"entry {seq} missing (next entry has seq {seq + 1})"


def test_a_deleted_entry_with_the_rest_renumbered_is_caught_by_the_signed_heads(ledger):
    seq = ledger.base + 4
    events = all_events(ledger)
    rewrite(ledger, events[:seq] + events[seq + 1 :])

    verdict = ledger.verdict()

    assert failed(verdict) == (False, seq)
    assert verdict["reason"] == f"root mismatch for tree size {seq + 1}"


def test_a_ledger_with_a_hole_is_never_extended_by_a_process_that_rebuilds_its_tree(ledger):
    ledger.sql(ledger_entries.delete().where(ledger_entries.c.seq == ledger.base + 4))
    other = build(ledger.keel.settings)  # a second process: its Merkle tree is rebuilt from the store
    try:
        with pytest.raises(IntegrityError, match=f"ledger entry {ledger.base + 4} is missing"):
            record(other, 1, step=99)
    finally:
        other.close()
    assert ledger.world.scalar(sa.select(ledger_head.c.size)) == ledger.size
    assert failed(ledger.verdict()) == (False, ledger.base + 4)


# Reordered --------------------------------------------------------------------------------
def test_swapped_entries_are_caught_at_the_first_of_them(ledger):
    first, second = ledger.base + 1, ledger.base + 5
    a, b = ledger.row(first), ledger.row(second)
    ledger.sql(
        entry_update(first, seq=-1),
        entry_update(second, seq=first),
        entry_update(-1, seq=second),
    )
    assert json.loads(ledger.row(first).event_json)["id"] == b.event_id != a.event_id

    verdict = ledger.verdict()

    assert failed(verdict) == (False, first)
    assert verdict["reason"] == f"entry {first}: event seq {second} does not match its position"


def test_swapped_entries_renumbered_and_rehashed_are_caught_by_the_signed_heads(ledger):
    first, second = ledger.base + 1, ledger.base + 5
    events = all_events(ledger)
    events[first], events[second] = events[second], events[first]
    rewrite(ledger, events)

    verdict = ledger.verdict()

    assert failed(verdict) == (False, first)
    assert verdict["reason"] == f"root mismatch for tree size {first + 1}"


# Inserted ---------------------------------------------------------------------------------
def forged_event(ledger: Ledger, seq: int) -> dict:
    template = json.loads(ledger.row(seq).event_json)
    return {**template, "seq": seq, "id": "EVT-20260101-FORGED01", "payload": {"step": -1, "amount": 1}}


def test_an_entry_inserted_with_the_rest_shifted_is_caught_at_the_inserted_entry(ledger):
    seq = ledger.base + 2
    shift = [entry_update(s, seq=s + 1) for s in range(ledger.size - 1, seq - 1, -1)]
    ledger.sql(*shift, ledger_entries.insert().values(forged_row(seq, forged_event(ledger, seq))))

    verdict = ledger.verdict()

    assert failed(verdict) == (False, seq)
    assert verdict["reason"] == f"root mismatch for tree size {seq + 1}"


def test_an_entry_inserted_with_the_rest_renumbered_and_rehashed_is_caught(ledger):
    seq = ledger.base + 2
    events = all_events(ledger)
    rewrite(ledger, [*events[:seq], forged_event(ledger, seq), *events[seq:]])

    verdict = ledger.verdict()

    assert failed(verdict) == (False, seq)
    assert verdict["reason"] == f"root mismatch for tree size {seq + 1}"


@pytest.mark.parametrize("bump_counter", [False, True])
def test_an_entry_appended_without_a_signed_head_is_caught(ledger, bump_counter):
    seq = ledger.size
    statements = [
        ledger_entries.insert().values(forged_row(seq, forged_event(ledger, seq - 1) | {"seq": seq}))
    ]
    if bump_counter:
        statements.append(ledger_head.update().values(size=seq + 1))
    ledger.sql(*statements)

    verdict = ledger.verdict()

    assert failed(verdict) == (False, seq)
    assert verdict["reason"] == f"entries {seq}..{seq} are not covered by a signed tree head"


# Truncated --------------------------------------------------------------------------------
def test_a_truncated_tail_is_caught_by_the_heads_that_covered_it(ledger):
    cut = ledger.size - 3
    ledger.sql(ledger_entries.delete().where(ledger_entries.c.seq >= cut))

    verdict = ledger.verdict()

    assert failed(verdict) == (False, cut)
    assert verdict["reason"] == (
        f"tree head covers entries that are missing: signed size {cut + 1}, {cut} entries present"
    )


def test_a_truncated_tail_with_its_heads_deleted_is_caught_by_the_head_counter(ledger):
    cut = ledger.size - 2  # a signed head remains at exactly this size
    ledger.sql(
        ledger_entries.delete().where(ledger_entries.c.seq >= cut),
        ledger_tree_heads.delete().where(ledger_tree_heads.c.tree_size > cut),
    )

    verdict = ledger.verdict()

    assert failed(verdict) == (False, cut)
    assert verdict["reason"] == f"the ledger head counts {ledger.size} entries but {cut} are stored"


def test_a_tail_truncated_without_trace_in_the_store_is_exposed_by_a_head_saved_earlier(ledger):
    # With entries, heads and counter all rewound the store is self-consistent again; this is
    # what published tree heads are for: anyone holding a newer signed head proves the loss.
    saved = ledger.world.get("AU", f"{API}/tree-head").json()
    cut = ledger.size - 2  # a signed head remains at exactly this size
    ledger.sql(
        ledger_entries.delete().where(ledger_entries.c.seq >= cut),
        ledger_tree_heads.delete().where(ledger_tree_heads.c.tree_size > cut),
        ledger_head.update().values(size=cut),
    )

    assert failed(ledger.verdict()) == (True, None)
    pem = ledger.world.client.get(f"{API}/public-key").json()["public_key_pem"]
    saved_head = TreeHead(saved["tree_size"], base64.b64decode(saved["root_hash"]), saved["timestamp_ms"])
    assert verify_tree_head(load_public_key(pem), saved_head, base64.b64decode(saved["signature"]))
    assert ledger.world.get("AU", f"{API}/tree-head").json()["tree_size"] == cut < saved["tree_size"]
    missing = ledger.world.get("AU", f"{API}/tree-head", params={"tree_size": saved["tree_size"]})
    assert missing.status_code == 404
    unprovable = ledger.world.get(
        "AU", f"{API}/proofs/consistency", params={"size1": cut, "size2": saved["tree_size"]}
    )
    assert (unprovable.status_code, unprovable.json()["field"]) == (422, "size2")


# Forged tree heads ------------------------------------------------------------------------
def head_row(ledger: Ledger, size: int):
    with ledger.keel.engine.connect() as conn:
        return conn.execute(sa.select(ledger_tree_heads).where(ledger_tree_heads.c.tree_size == size)).one()


def test_a_tree_head_with_a_forged_root_is_caught(ledger):
    size = ledger.base + 5
    other = head_row(ledger, size + 1).root_hash
    ledger.sql(
        ledger_tree_heads.update().where(ledger_tree_heads.c.tree_size == size).values(root_hash=other)
    )

    verdict = ledger.verdict()

    assert failed(verdict) == (False, size - 1)
    assert verdict["reason"] == f"root mismatch for tree size {size}"


def test_a_tree_head_signed_by_another_key_is_caught(ledger):
    size = ledger.base + 5
    row = head_row(ledger, size)
    attacker = generate_signing_key()
    signature = sign_tree_head(attacker, TreeHead(size, bytes(row.root_hash), row.timestamp_ms))
    ledger.sql(
        ledger_tree_heads.update().where(ledger_tree_heads.c.tree_size == size).values(signature=signature)
    )

    verdict = ledger.verdict()

    assert failed(verdict) == (False, size - 1)
    assert verdict["reason"] == f"invalid signature on tree head for size {size}"


def test_a_forged_head_inserted_between_signed_ones_is_caught(ledger):
    size = ledger.base + 7  # inside the three-event batch, where no head was signed
    tree = MerkleTree(bytes(ledger.row(s).leaf_hash) for s in range(size))
    timestamp = head_row(ledger, ledger.base + 6).timestamp_ms
    head = TreeHead(size, tree.root(), timestamp)
    forged = {
        "tree_size": size,
        "root_hash": head.root_hash,
        "timestamp_ms": timestamp,
        "signature": sign_tree_head(generate_signing_key(), head),
        "key_id": head_row(ledger, ledger.base + 6).key_id,
    }
    ledger.sql(ledger_tree_heads.insert().values(forged))

    verdict = ledger.verdict()

    assert failed(verdict) == (False, ledger.base + 6)
    assert verdict["reason"] == f"invalid signature on tree head for size {size}"


def test_an_edit_with_every_later_head_re_signed_by_another_key_is_caught(ledger):
    seq = ledger.base + 3
    edit_with_leaf_hash_recomputed(ledger, seq)
    attacker = generate_signing_key()
    tree = MerkleTree(bytes(ledger.row(s).leaf_hash) for s in range(ledger.size))
    with ledger.keel.engine.begin() as conn:
        for h in conn.execute(sa.select(ledger_tree_heads).where(ledger_tree_heads.c.tree_size > seq)).all():
            head = TreeHead(h.tree_size, tree.root(h.tree_size), h.timestamp_ms)
            conn.execute(
                ledger_tree_heads.update()
                .where(ledger_tree_heads.c.tree_size == h.tree_size)
                .values(root_hash=head.root_hash, signature=sign_tree_head(attacker, head))
            )

    verdict = ledger.verdict()

    assert failed(verdict) == (False, seq)
    assert verdict["reason"] == f"invalid signature on tree head for size {seq + 1}"


# Later appends do not launder a tamper ----------------------------------------------------
def test_tampering_stays_detected_after_later_appends_by_this_and_another_process(ledger):
    seq = ledger.base + 3
    edit_with_leaf_hash_recomputed(ledger, seq)

    record(ledger.keel, 2, step=50)  # this process's cached tree still holds the true leaf
    other = build(ledger.keel.settings)  # a new process rebuilds its tree from the edited store
    try:
        record(other, 2, step=51)
    finally:
        other.close()

    verdict = ledger.verdict()

    assert verdict["entries_checked"] == ledger.size + 4
    assert failed(verdict) == (False, seq)
    assert verdict["reason"] == f"root mismatch for tree size {seq + 1}"
