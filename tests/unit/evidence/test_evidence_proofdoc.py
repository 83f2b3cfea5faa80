"""Proof documents verify when sound and are refused, with a reason, never an exception, otherwise."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.evidence.merkle import MerkleTree, leaf_hash
from keel.evidence.proofdoc import ProofCheck, check_proof_document, consistency_document, inclusion_document

TREE = MerkleTree(leaf_hash(i.to_bytes(2, "big")) for i in range(13))


def _inclusion(index: int = 5, size: int = 13) -> dict:
    return inclusion_document(
        index, size, TREE.leaf(index), TREE.inclusion_proof(index, size), TREE.root(size)
    )


def _consistency(size1: int = 5, size2: int = 13) -> dict:
    return consistency_document(
        size1, size2, TREE.root(size1), TREE.root(size2), TREE.consistency_proof(size1, size2)
    )


def _check(doc: dict) -> ProofCheck:
    return check_proof_document(json.dumps(doc))


def test_documents_have_the_transparency_log_json_form():
    doc = _inclusion(5, 13)
    assert list(doc) == ["leafIdx", "treeSize", "root", "leafHash", "proof"]
    assert doc["root"] == base64.b64encode(TREE.root(13)).decode()
    assert list(_consistency()) == ["size1", "size2", "root1", "root2", "proof"]


def test_valid_inclusion_and_consistency_documents_verify_from_bytes_or_text():
    assert check_proof_document(json.dumps(_inclusion()).encode()) == ProofCheck(
        True, "inclusion", "leaf 5 is included in the tree of size 13"
    )
    assert check_proof_document(json.dumps(_consistency())) == ProofCheck(
        True, "consistency", "the tree of size 5 is a prefix of the tree of size 13"
    )
    assert _check(_consistency(13, 13)).ok
    assert _check(_inclusion(0, 1)).ok


def _with(doc: dict, **changes) -> dict:
    return {**doc, **changes}


def _without(doc: dict, key: str) -> dict:
    return {k: v for k, v in doc.items() if k != key}


GOOD_B64 = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    ("doc", "reason_part"),
    [
        (_with(_inclusion(), leafIdx=True), "'leafIdx' must be a JSON integer, got boolean"),
        (_with(_inclusion(), treeSize=13.0), "'treeSize' must be a JSON integer, got number"),
        (_with(_inclusion(), treeSize="13"), "'treeSize' must be a JSON integer, got string"),
        (_with(_inclusion(), leafIdx=-1), "'leafIdx' must be between"),
        (_with(_inclusion(), treeSize=2**64), "'treeSize' must be between"),
        (_with(_inclusion(), leafIdx=13), "'leafIdx' 13 is not below 'treeSize' 13"),
        (_with(_inclusion(), leafIdx=6), "inclusion proof does not verify"),
        (_with(_inclusion(), treeSize=8), "inclusion proof does not verify"),
        (_without(_inclusion(), "root"), "missing key 'root'"),
        (_with(_inclusion(), extra=1), "unknown key 'extra'"),
        (_with(_inclusion(), root=GOOD_B64[:-1]), "'root' is not valid base64"),
        (_with(_inclusion(), root=GOOD_B64 + "="), "'root' is not valid base64"),
        (_with(_inclusion(), root=" " + GOOD_B64), "'root' is not valid base64"),
        (_with(_inclusion(), root=GOOD_B64[:-2] + "B="), "'root' is not canonical base64"),
        (
            _with(_inclusion(), root=base64.b64encode(bytes(31)).decode()),
            "'root' must encode 32 bytes, got 31",
        ),
        (
            _with(_inclusion(), root=base64.urlsafe_b64encode(b"\xff" * 32).decode()),
            "'root' is not valid base64",
        ),
        (_with(_inclusion(), leafHash=None), "'leafHash' must be a base64 string, got null"),
        (_with(_inclusion(), proof="abc"), "'proof' must be a list, got string"),
        (_with(_inclusion(), proof=[1]), "'proof[0]' must be a base64 string, got number"),
        (_with(_inclusion(), proof=[GOOD_B64] * 131), "more than any valid proof"),
        (_with(_consistency(), size1=14), "'size1' 14 is larger than 'size2' 13"),
        (_with(_consistency(), root1=_consistency()["root2"]), "consistency proof does not verify"),
        (_without(_consistency(), "proof"), "missing key 'proof'"),
        ({"proof": []}, "not a proof document"),
    ],
)
def test_malformed_or_false_documents_are_refused_with_a_reason(doc, reason_part):
    check = _check(doc)
    assert not check.ok
    assert reason_part in check.reason


def test_every_single_bit_flip_of_a_proof_element_is_refused():
    doc = _inclusion()
    for i, element in enumerate(doc["proof"]):
        raw = bytearray(base64.b64decode(element))
        for bit in range(256):
            raw[bit // 8] ^= 1 << (bit % 8)
            damaged = _with(
                doc, proof=[*doc["proof"][:i], base64.b64encode(raw).decode(), *doc["proof"][i + 1 :]]
            )
            assert not _check(damaged).ok
            raw[bit // 8] ^= 1 << (bit % 8)


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe\xfa", "not valid JSON"),
        (json.dumps(_inclusion())[:-5], "not valid JSON"),
        ("[1, 2]", "must be a JSON object, got array"),
        ('"text"', "must be a JSON object, got string"),
        ('{"leafIdx": NaN}', "NaN is not a number"),
        ('{"leafIdx": 1, "leafIdx": 2}', "duplicate key 'leafIdx'"),
        ("[" * 100_000, "not valid JSON"),
        ('{"leafIdx": ' + "9" * 5000 + "}", "not valid JSON"),
        (None, "must be bytes or text"),
    ],
)
def test_unparseable_input_is_refused_with_a_reason(raw, reason_part):
    check = check_proof_document(raw)
    assert not check.ok
    assert reason_part in check.reason


def test_truncating_a_valid_document_anywhere_is_refused():
    raw = json.dumps(_consistency()).encode()
    for cut in range(len(raw)):
        assert not check_proof_document(raw[:cut]).ok


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
_near_docs = st.fixed_dictionaries(
    {},
    optional={
        "leafIdx": _json | st.integers(0, 20),
        "treeSize": _json | st.integers(0, 20),
        "size1": _json | st.integers(0, 20),
        "size2": _json | st.integers(0, 20),
        "root": _json | st.just(GOOD_B64),
        "leafHash": _json | st.just(GOOD_B64),
        "root1": _json | st.just(GOOD_B64),
        "root2": _json | st.just(GOOD_B64),
        "proof": _json | st.lists(st.just(GOOD_B64) | _json, max_size=4),
    },
)


@settings(max_examples=300, deadline=None)
@given(doc=_json | _near_docs)
def test_arbitrary_json_never_raises(doc):
    check = check_proof_document(json.dumps(doc))
    assert isinstance(check, ProofCheck)
    assert not check.ok


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_bytes_never_raise(raw):
    assert not check_proof_document(raw).ok
