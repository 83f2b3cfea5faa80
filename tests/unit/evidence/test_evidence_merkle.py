"""The Merkle tree gives RFC 6962 roots and proofs, and verification rejects every tampered proof."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.evidence.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from keel.kernel.errors import InvalidInput

# Test vectors of the Certificate Transparency reference implementation
# (merkle_test.cc), also used by Go transparency-dev/merkle and Trillian.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (leaf index, tree size) -> audit path
CT_INCLUSION = {
    (0, 1): [],
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
# (size1, size2) -> consistency proof
CT_CONSISTENCY = {
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}


def _ct_tree() -> MerkleTree:
    return MerkleTree(leaf_hash(leaf) for leaf in CT_LEAVES)


def _tree(size: int) -> tuple[MerkleTree, list[bytes]]:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    return MerkleTree(hashes), hashes


def test_hashes_use_the_rfc_6962_domain_separation_prefixes():
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_ct_reference_vectors_at_every_historical_size(size):
    assert _ct_tree().root(size).hex() == CT_ROOTS[size]
    assert root_of([leaf_hash(leaf) for leaf in CT_LEAVES[:size]]).hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size"), sorted(CT_INCLUSION))
def test_inclusion_proofs_match_the_ct_reference_vectors(index, size):
    tree = _ct_tree()
    proof = tree.inclusion_proof(index, size)
    assert [p.hex() for p in proof] == CT_INCLUSION[(index, size)]
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(index, size, leaf_hash(CT_LEAVES[index]), proof, root)


@pytest.mark.parametrize(("size1", "size2"), sorted(CT_CONSISTENCY))
def test_consistency_proofs_match_the_ct_reference_vectors(size1, size2):
    tree = _ct_tree()
    proof = tree.consistency_proof(size1, size2)
    assert [p.hex() for p in proof] == CT_CONSISTENCY[(size1, size2)]
    root1, root2 = bytes.fromhex(CT_ROOTS[size1]), bytes.fromhex(CT_ROOTS[size2])
    assert verify_consistency(size1, size2, root1, root2, proof)


def test_every_proof_of_every_size_up_to_64_verifies_and_roots_match_the_reference():
    tree, hashes = _tree(64)
    for size in range(65):
        root = tree.root(size)
        assert root == root_of(hashes[:size])
        for index in range(size):
            assert verify_inclusion(index, size, hashes[index], tree.inclusion_proof(index, size), root)
        for size1 in range(size + 1):
            proof = tree.consistency_proof(size1, size)
            assert verify_consistency(size1, size, tree.root(size1), root, proof)


def test_append_and_extend_report_length_and_leaves():
    tree = MerkleTree()
    assert len(tree) == 0
    assert tree.root() == EMPTY_ROOT
    assert tree.append(leaf_hash(b"a")) == 0
    tree.extend([leaf_hash(b"b"), leaf_hash(b"c")])
    assert len(tree) == 3
    assert [tree.leaf(i) for i in range(3)] == [leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")]


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.append(b"short"),
        lambda t: t.leaf(5),
        lambda t: t.root(6),
        lambda t: t.root(-1),
        lambda t: t.inclusion_proof(5),
        lambda t: t.inclusion_proof(2, 2),
        lambda t: t.inclusion_proof(-1),
        lambda t: t.consistency_proof(4, 3),
        lambda t: t.consistency_proof(1, 9),
        lambda t: t.consistency_proof(True, 3),
    ],
)
def test_out_of_range_requests_are_invalid_input(call):
    tree, _ = _tree(5)
    with pytest.raises(InvalidInput):
        call(tree)


def test_a_root_does_not_commit_to_the_tree_size_so_tree_heads_must_sign_it():
    tree, hashes = _tree(4)
    # Leaf 0's path in a 3-leaf tree has the same shape as in a 4-leaf tree.
    proof = tree.inclusion_proof(0, 3)
    assert verify_inclusion(0, 4, hashes[0], proof, tree.root(3))


def test_consistency_edge_cases_follow_rfc_9162():
    tree, _ = _tree(5)
    root5 = tree.root()
    assert tree.consistency_proof(0, 5) == []
    assert tree.consistency_proof(5, 5) == []
    assert verify_consistency(0, 5, EMPTY_ROOT, root5, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, root5, [root5])
    assert not verify_consistency(0, 5, root5, root5, [])
    assert verify_consistency(5, 5, root5, root5, [])
    assert not verify_consistency(5, 5, root5, tree.root(4), [])
    assert not verify_consistency(5, 5, root5, root5, [root5])
    assert not verify_consistency(3, 5, tree.root(3), root5, [])
    assert not verify_consistency(5, 3, root5, tree.root(3), tree.consistency_proof(3, 5))


@pytest.mark.parametrize(
    "args",
    [
        (1, 1, b"\x00" * 32, [], b"\x00" * 32),  # index == size
        (-1, 4, b"\x00" * 32, [], b"\x00" * 32),
        (True, 4, b"\x00" * 32, [], b"\x00" * 32),
        (0, 4.0, b"\x00" * 32, [], b"\x00" * 32),
        (0, 1, b"\x00" * 31, [], b"\x00" * 31),
        (0, 1, "0" * 32, [], "0" * 32),
        (0, 2, b"\x00" * 32, ["0" * 32], b"\x00" * 32),
        (0, 2, b"\x00" * 32, [b"\x00" * 33], b"\x00" * 32),
        (0, 2, b"\x00" * 32, None, b"\x00" * 32),
        (0, 2, b"\x00" * 32, b"\x00" * 32, b"\x00" * 32),
        (0, 2, b"\x00" * 32, [None], b"\x00" * 32),
        (0, 2, b"\x00" * 32, iter([b"\x00" * 32]), b"\x00" * 32),
    ],
)
def test_verify_inclusion_returns_false_for_malformed_input(args):
    assert verify_inclusion(*args) is False


@pytest.mark.parametrize(
    "args",
    [
        (2, 1, b"\x00" * 32, b"\x00" * 32, []),
        (-1, 1, b"\x00" * 32, b"\x00" * 32, []),
        (1, True, b"\x00" * 32, b"\x00" * 32, []),
        (1, 2, b"\x00" * 31, b"\x00" * 32, [b"\x00" * 32]),
        (1, 2, b"\x00" * 32, "0" * 32, [b"\x00" * 32]),
        (1, 2, b"\x00" * 32, b"\x00" * 32, [b"\x00" * 31]),
        (1, 2, b"\x00" * 32, b"\x00" * 32, ["0" * 32]),
        (1, 2, b"\x00" * 32, b"\x00" * 32, None),
        (1, 2, b"\x00" * 32, b"\x00" * 32, 5),
        (3, 4, b"\x00" * 32, b"\x00" * 32, iter([b"\x00" * 32])),
    ],
)
def test_verify_consistency_returns_false_for_malformed_input(args):
    assert verify_consistency(*args) is False


def _flip(proof: list[bytes], element: int, bit: int) -> list[bytes]:
    damaged = list(proof)
    value = bytearray(damaged[element])
    value[bit // 8] ^= 1 << (bit % 8)
    damaged[element] = bytes(value)
    return damaged


@settings(max_examples=150, deadline=None)
@given(data=st.data(), size=st.integers(min_value=1, max_value=200))
def test_inclusion_proofs_verify_and_any_tampering_fails(data, size):
    tree, hashes = _tree(size)
    assert tree.root() == root_of(hashes)
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = tree.inclusion_proof(index)
    root = tree.root()
    assert verify_inclusion(index, size, hashes[index], proof, root)

    if proof:
        element = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        assert not verify_inclusion(index, size, hashes[index], _flip(proof, element, bit), root)
        assert not verify_inclusion(index, size, hashes[index], proof[:-1], root)
        assert not verify_inclusion(index, size, hashes[index], proof[1:], root)
    assert not verify_inclusion(index, size, hashes[index], [*proof, root], root)
    assert not verify_inclusion(index, size, hashes[index], [*proof, EMPTY_ROOT], root)
    assert not verify_inclusion(index, size, _flip([hashes[index]], 0, 7)[0], proof, root)
    assert not verify_inclusion(index, size, hashes[index], proof, _flip([root], 0, 0)[0])
    other_index = data.draw(st.integers(0, size), label="other_index")
    if other_index != index:
        assert not verify_inclusion(other_index, size, hashes[index], proof, root)
    # A root does not commit to its tree size (which is why tree heads sign
    # both): another size whose path has the same shape can verify. Any size
    # whose path has a different length must not.
    other_size = data.draw(st.integers(index + 1, 2 * size + 1), label="other_size")
    bigger, _ = _tree(2 * size + 1)
    if len(bigger.inclusion_proof(index, other_size)) != len(proof):
        assert not verify_inclusion(index, other_size, hashes[index], proof, root)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), size2=st.integers(min_value=1, max_value=200))
def test_consistency_proofs_verify_and_any_tampering_fails(data, size2):
    tree, hashes = _tree(size2)
    size1 = data.draw(st.integers(1, size2), label="size1")
    root1, root2 = tree.root(size1), tree.root(size2)
    assert root1 == root_of(hashes[:size1])
    proof = tree.consistency_proof(size1, size2)
    assert verify_consistency(size1, size2, root1, root2, proof)

    if proof:
        element = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        assert not verify_consistency(size1, size2, root1, root2, _flip(proof, element, bit))
        assert not verify_consistency(size1, size2, root1, root2, proof[:-1])
        assert not verify_consistency(size1, size2, root1, root2, proof[1:])
    assert not verify_consistency(size1, size2, root1, root2, [*proof, root2])
    assert not verify_consistency(size1, size2, _flip([root1], 0, 3)[0], root2, proof)
    assert not verify_consistency(size1, size2, root1, _flip([root2], 0, 3)[0], proof)
    other1 = data.draw(st.integers(0, size2), label="other_size1")
    if other1 != size1:
        assert not verify_consistency(other1, size2, root1, root2, proof)
    # As for inclusion, only a size with a differently shaped proof must fail.
    other2 = data.draw(st.integers(size1 + 1, 2 * size2 + 1), label="other_size2")
    bigger, _ = _tree(2 * size2 + 1)
    if len(bigger.consistency_proof(size1, other2)) != len(proof):
        assert not verify_consistency(size1, other2, root1, root2, proof)


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(-3, 70),
    size=st.integers(-3, 70),
    proof=st.lists(st.binary(min_size=0, max_size=40), max_size=10),
    leaf=st.binary(max_size=40),
    root=st.binary(max_size=40),
)
def test_verification_never_raises_on_arbitrary_input(index, size, proof, leaf, root):
    assert verify_inclusion(index, size, leaf, proof, root) in (True, False)
    assert verify_consistency(index, size, leaf, root, proof) in (True, False)
