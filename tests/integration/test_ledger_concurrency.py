"""Concurrent writers share one gap-free ledger; a rolled-back unit of work leaves no trace.

Writers append through ``keel.uow()``, as services do: threads of one process, and
processes with their own ``Keel`` on the same store (the same ``KEEL_HOME`` on SQLite,
the same schema on PostgreSQL). Every commit must land as one block of consecutive
sequence numbers with a signed tree head at its end, and the whole ledger must verify.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from dataclasses import asdict

import pytest
import sqlalchemy as sa
from tests.support import World

from keel.bootstrap import build
from keel.evidence.canonical import canonical_json
from keel.evidence.merkle import leaf_hash, root_of
from keel.kernel.errors import InvalidInput
from keel.kernel.settings import Settings
from keel.store.tables import ledger_entries, ledger_head, ledger_tree_heads

EVENTS_PER_COMMIT = 3


class CommitRefused(Exception):
    """Raised from the store's commit hook: the transaction fails after the ledger append."""


def _refuse_commit(_conn) -> None:
    raise CommitRefused("the store refused the commit")


def commit_events(keel, writer: str, commit: int, *, refuse: bool = False) -> None:
    """One unit of work recording ``EVENTS_PER_COMMIT`` events; ``refuse`` makes its commit fail."""
    with keel.uow() as uow:
        for part in range(EVENTS_PER_COMMIT):
            uow.record(
                "test.concurrent", actor_id="system", tenant_id=None, writer=writer, commit=commit, part=part
            )
        if refuse:
            # Fault injection: nothing here can make a real commit fail on demand, so the
            # connection's commit hook raises once the events are appended and signed.
            sa.event.listen(uow.conn, "commit", _refuse_commit)
        uow.commit()


def write_from_process(settings: dict, writer: str, commits: int) -> None:
    """A separate process with its own Keel (and its own Merkle cache) on the same store."""
    keel = build(Settings(**settings))
    try:
        for commit in range(commits):
            commit_events(keel, writer, commit)
    finally:
        keel.close()


@pytest.fixture
def deployed(keel, client):
    """A deployed platform (so every commit signs a tree head) and the ledger size it left."""
    World.build(keel, client, baseline=False, tenant_slugs=())
    with keel.engine.connect() as conn:
        return keel, conn.execute(sa.select(ledger_head.c.size)).scalar_one()


def run_threads(targets) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(len(targets))

    def run(target):
        try:
            start.wait()
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert errors == []


def assert_sound(keel, base: int, committed: set[tuple[str, int]]) -> None:
    """Gap-free, unique, one block per commit, a signed head at each commit's end, and verified."""
    with keel.engine.connect() as conn:
        rows = conn.execute(sa.select(ledger_entries).order_by(ledger_entries.c.seq)).all()
        heads = conn.execute(sa.select(ledger_tree_heads.c.tree_size, ledger_tree_heads.c.root_hash)).all()
        counter = conn.execute(sa.select(ledger_head.c.size)).scalar_one()
        report = keel.ledger.verify(conn, keel.public_key_pem(conn))
    events = [json.loads(r.event_json) for r in rows]

    assert [r.seq for r in rows] == list(range(len(rows))) == [e["seq"] for e in events]
    assert counter == len(rows) == base + EVENTS_PER_COMMIT * len(committed)
    assert len({r.event_id for r in rows}) == len(rows)
    blocks: dict[tuple[str, int], list[int]] = {}
    for event in events[base:]:
        blocks.setdefault((event["payload"]["writer"], event["payload"]["commit"]), []).append(event["seq"])
    assert set(blocks) == committed
    for key, seqs in blocks.items():
        assert seqs == list(range(seqs[0], seqs[0] + EVENTS_PER_COMMIT)), key
    assert sorted(size for size, _ in heads if size > base) == sorted(s[-1] + 1 for s in blocks.values())
    leaves = [leaf_hash(canonical_json(e)) for e in events]
    for size, root in heads:
        assert bytes(root) == root_of(leaves[:size]), size
    assert asdict(report) | {"reason": ""} == {
        "ok": True,
        "entries_checked": len(rows),
        "tree_heads_checked": len(heads),
        "first_bad_seq": None,
        "reason": "",
    }


def test_threads_appending_at_once_get_one_gap_free_signed_sequence(deployed):
    keel, base = deployed
    writers, commits = 6, 8

    run_threads(
        [lambda w=w: [commit_events(keel, f"t{w}", c) for c in range(commits)] for w in range(writers)]
    )

    assert_sound(keel, base, {(f"t{w}", c) for w in range(writers) for c in range(commits)})


def test_processes_and_threads_appending_to_one_store_get_one_gap_free_signed_sequence(deployed):
    keel, base = deployed
    settings = {
        "home": str(keel.settings.home),
        "database_url": keel.settings.database_url,
        "database_schema": keel.settings.database_schema,
        "seed_demo": False,
    }
    commits = 10
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=write_from_process, args=(settings, f"p{n}", commits)) for n in range(2)
    ]
    for process in processes:
        process.start()
    # Meanwhile this process appends too: its cached tree must take in the others' leaves.
    run_threads([lambda w=w: [commit_events(keel, f"t{w}", c) for c in range(commits)] for w in range(2)])
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]

    commit_events(keel, "after", 0)
    with keel.engine.connect() as conn:
        proof = keel.ledger.consistency_proof(conn, 1)

    expected = {(w, c) for w in ("p0", "p1", "t0", "t1") for c in range(commits)} | {("after", 0)}
    assert_sound(keel, base, expected)
    assert proof["size2"] == base + EVENTS_PER_COMMIT * len(expected)


def failing_unit(keel, mode: str) -> None:
    """Run a unit of work that records events and then fails in ``mode``."""
    if mode == "raises before commit":
        with pytest.raises(RuntimeError), keel.uow() as uow:
            uow.record("test.concurrent", actor_id="system", tenant_id=None, writer="lost", commit=0, part=0)
            raise RuntimeError("the service failed after recording its events")
        return
    if mode == "event cannot be encoded":
        with pytest.raises(InvalidInput), keel.uow() as uow:
            uow.record("test.concurrent", actor_id="system", tenant_id=None, writer="lost", commit=0, part=0)
            uow.record(
                "test.concurrent", actor_id="system", tenant_id=None, writer="lost", value=float("nan")
            )
            uow.commit()
        return
    with pytest.raises(CommitRefused):
        commit_events(keel, "lost", 0, refuse=True)


@pytest.mark.parametrize(
    "mode", ["raises before commit", "event cannot be encoded", "commit fails after the append"]
)
def test_a_unit_of_work_that_fails_leaves_no_ledger_rows_and_the_next_append_verifies(deployed, mode):
    keel, base = deployed
    commit_events(keel, "before", 0)
    with keel.engine.connect() as conn:
        head_before = keel.ledger.latest_tree_head(conn)

    failing_unit(keel, mode)

    with keel.engine.connect() as conn:
        assert keel.ledger.latest_tree_head(conn) == head_before
        assert conn.execute(sa.select(ledger_head.c.size)).scalar_one() == head_before["tree_size"]
        stored = conn.execute(sa.select(sa.func.count()).select_from(ledger_entries)).scalar_one()
        assert stored == head_before["tree_size"]
    commit_events(keel, "after", 0)
    assert_sound(keel, base, {("before", 0), ("after", 0)})


def test_rollbacks_in_some_threads_while_others_commit_leave_a_sound_ledger(deployed):
    keel, base = deployed
    commits = 8

    def failer(writer: str):
        for commit in range(commits):
            with pytest.raises(CommitRefused):
                commit_events(keel, writer, commit, refuse=True)

    def committer(writer: str):
        for commit in range(commits):
            commit_events(keel, writer, commit)

    run_threads(
        [lambda: failer("f0"), lambda: committer("c0"), lambda: failer("f1"), lambda: committer("c1")]
    )
    commit_events(keel, "after", 0)

    assert_sound(keel, base, {(w, c) for w in ("c0", "c1") for c in range(commits)} | {("after", 0)})
    # The cached tree serves proofs that match the signed head (it was rebuilt after each rollback).
    with keel.engine.connect() as conn:
        head = keel.ledger.latest_tree_head(conn)
        proof = keel.ledger.consistency_proof(conn, 1)
    assert (proof["size2"], proof["root2"]) == (head["tree_size"], head["root_hash"])
