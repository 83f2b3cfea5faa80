"""check_continuity: the current signed head must extend a head saved earlier."""

from __future__ import annotations

import base64

from keel.evidence.continuity import check_continuity
from keel.evidence.merkle import MerkleTree, leaf_hash
from keel.evidence.proofdoc import consistency_document
from keel.evidence.signing import TreeHead, generate_signing_key, public_key_pem, sign_tree_head

KEY = generate_signing_key()
PUBLIC = public_key_pem(KEY)
TREE = MerkleTree(leaf_hash(bytes([i])) for i in range(12))


def _head(size: int, key=KEY) -> dict:
    head = TreeHead(size, TREE.root(size), 1_700_000_000_000 + size)
    return {
        "tree_size": size,
        "root_hash": base64.b64encode(head.root_hash).decode(),
        "timestamp_ms": head.timestamp_ms,
        "signature": base64.b64encode(sign_tree_head(key, head)).decode(),
    }


def _proof(size1: int, size2: int) -> dict:
    return consistency_document(
        size1, size2, TREE.root(size1), TREE.root(size2), TREE.consistency_proof(size1, size2)
    )


def test_a_longer_ledger_with_a_valid_proof_extends_the_saved_head():
    assert check_continuity(_head(5), _head(12), _proof(5, 12), PUBLIC) == (
        True,
        "the ledger extends the saved head (5 → 12 entries)",
    )


def test_the_same_head_is_a_continuation_of_itself():
    assert check_continuity(_head(7), _head(7), None, PUBLIC) == (
        True,
        "same size and root as the saved head",
    )


def test_a_shorter_ledger_is_caught():
    assert check_continuity(_head(9), _head(6), None, PUBLIC) == (
        False,
        "the ledger shrank: 6 entries now, 9 in the saved head",
    )


def test_a_proof_about_other_sizes_or_a_tampered_proof_is_refused():
    other = check_continuity(_head(5), _head(12), _proof(4, 12), PUBLIC)
    tampered = _proof(5, 12)
    tampered["proof"] = tampered["proof"][:-1]
    assert other == (False, "the consistency proof is not about the saved and current heads")
    assert check_continuity(_head(5), _head(12), tampered, PUBLIC)[0] is False


def test_heads_signed_by_another_key_or_malformed_are_refused_without_raising():
    assert check_continuity(_head(5, generate_signing_key()), _head(12), _proof(5, 12), PUBLIC) == (
        False,
        "the saved head's signature does not verify with the platform key",
    )
    assert check_continuity({"tree_size": 5}, _head(12), None, PUBLIC)[0] is False
    assert check_continuity("not a head", _head(12), None, PUBLIC) == (
        False,
        "the saved head is not a JSON object",
    )
