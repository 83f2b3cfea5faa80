"""``keel evidence verify --expect-head``: a ledger cut short is caught against a head kept outside Keel."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from cli_harness import Cli

from keel.store.tables import ledger_entries, ledger_head, ledger_tree_heads


@pytest.fixture
def cli(settings):
    return Cli(settings)


def _save_head(cli: Cli, world, tmp_path):
    head = cli.json("evidence", "tree-head", token=world.tokens["AU"])
    path = tmp_path / "head.json"
    path.write_text(json.dumps(head))
    return head, path


def test_a_ledger_that_extends_the_saved_head_passes(cli, world, tmp_path):
    head, path = _save_head(cli, world, tmp_path)
    world.post("acme:TA", "/api/v1/me/tokens", json={"name": "later", "ttl_days": 1})  # more evidence

    result = cli("evidence", "verify", "--expect-head", str(path), token=world.tokens["AU"])

    assert result.exit_code == 0, result.output
    assert f"the ledger extends the saved head ({head['tree_size']} →" in result.stdout


def test_a_ledger_cut_short_with_its_heads_verifies_alone_but_not_against_the_saved_head(
    cli, world, tmp_path
):
    head, path = _save_head(cli, world, tmp_path)
    keep = head["tree_size"] - 3
    # Tamper: drop the newest entries, their tree heads, and rewind the counter, consistently.
    with world.keel.engine.begin() as conn:
        conn.execute(ledger_entries.delete().where(ledger_entries.c.seq >= keep))
        conn.execute(ledger_tree_heads.delete().where(ledger_tree_heads.c.tree_size > keep))
        conn.execute(ledger_head.update().values(size=keep))

    alone = cli("evidence", "verify", token=world.tokens["AU"])
    against = cli("evidence", "verify", "--expect-head", str(path), token=world.tokens["AU"])

    assert alone.exit_code == 0, alone.output  # self-consistent: this is the gap the saved head closes
    assert against.exit_code == 1
    assert f"the ledger shrank: {keep} entries now, {head['tree_size']} in the saved head" in against.output


def test_a_forged_saved_head_is_refused(cli, world, tmp_path):
    head, path = _save_head(cli, world, tmp_path)
    path.write_text(json.dumps({**head, "tree_size": head["tree_size"] - 1}))

    result = cli("evidence", "verify", "--expect-head", str(path), token=world.tokens["AU"])

    assert result.exit_code == 1
    assert "the saved head's signature does not verify with the platform key" in result.output


def test_an_unreadable_saved_head_is_bad_input(cli, world, tmp_path):
    result = cli("evidence", "verify", "--expect-head", str(tmp_path / "nope.json"), token=world.tokens["AU"])

    assert result.exit_code == 2
    assert "--expect-head: cannot read" in result.stderr
    assert world.scalar(sa.select(sa.func.count()).select_from(ledger_entries)) > 0
