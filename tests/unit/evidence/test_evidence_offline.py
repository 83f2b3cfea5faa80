"""An exported ledger verifies with only the file and the public key, and each kind of tampering
is caught at the first sequence number that can no longer be trusted."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from keel.evidence.canonical import canonical_json
from keel.evidence.merkle import MerkleTree, leaf_hash
from keel.evidence.offline import EXPORT_FORMAT, VerifyReport, verify_entries, verify_export
from keel.evidence.signing import TreeHead, generate_signing_key, key_id, public_key_pem, sign_tree_head

KEY = generate_signing_key()
PUBLIC = KEY.public_key()
HEAD_SIZES = (4, 7, 10)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _entry(seq: int, **extra) -> dict:
    event = {"seq": seq, "type": "contract.published", "actor": "ana", "data": {"n": seq, **extra}}
    return {"seq": seq, "leaf_hash": _b64(leaf_hash(canonical_json(event))), "event": event}


def _head(entries: list[dict], size: int, timestamp_ms: int, key=KEY) -> dict:
    tree = MerkleTree(leaf_hash(canonical_json(e["event"])) for e in entries[:size])
    head = TreeHead(size, tree.root(), timestamp_ms)
    return {
        "tree_size": size,
        "root_hash": _b64(head.root_hash),
        "timestamp_ms": timestamp_ms,
        "signature": _b64(sign_tree_head(key, head)),
        "key_id": key_id(key),
    }


def _export(count: int = 10, head_sizes: tuple[int, ...] = HEAD_SIZES) -> dict:
    entries = [_entry(i) for i in range(count)]
    heads = [_head(entries, size, 1_700_000_000_000 + size) for size in head_sizes]
    return {
        "format": EXPORT_FORMAT,
        "public_key": public_key_pem(KEY),
        "entries": entries,
        "tree_heads": heads,
    }


def _failed(report: VerifyReport, first_bad_seq: int | None, reason_part: str) -> None:
    assert not report.ok, report
    assert report.first_bad_seq == first_bad_seq, report
    assert reason_part in report.reason, report


def test_an_intact_export_verifies_with_the_supplied_key():
    assert verify_export(_export(), PUBLIC) == VerifyReport(
        True, 10, 3, None, "10 entries and 3 signed tree heads verify"
    )


def test_an_intact_export_survives_a_json_round_trip_and_a_pem_key():
    doc = json.loads(json.dumps(_export()))
    assert verify_export(doc, public_key_pem(KEY)).ok


def test_without_a_supplied_key_the_embedded_key_is_used_and_the_report_says_so():
    report = verify_export(_export())
    assert report.ok
    assert "key embedded in the export" in report.reason


def test_an_empty_ledger_verifies():
    assert verify_export(_export(0, ()), PUBLIC).ok


def test_an_edited_event_is_caught_at_its_seq():
    doc = _export()
    doc["entries"][5]["event"]["actor"] = "mallory"
    _failed(verify_export(doc, PUBLIC), 5, "leaf hash does not match")


def test_an_edited_event_with_a_recomputed_leaf_hash_is_caught_by_the_root_of_the_span():
    doc = _export()
    doc["entries"][5] = _entry(5, forged=True)
    report = verify_export(doc, PUBLIC)
    _failed(report, 4, "root mismatch for tree size 7")
    assert (report.entries_checked, report.tree_heads_checked) == (10, 1)


def test_a_deleted_entry_is_reported_missing():
    doc = _export()
    del doc["entries"][3]
    _failed(verify_export(doc, PUBLIC), 3, "entry 3 missing")


def test_deleting_the_last_entry_leaves_a_tree_head_over_missing_entries():
    doc = _export()
    del doc["entries"][9]
    _failed(verify_export(doc, PUBLIC), 9, "tree head covers entries that are missing")


def test_deleting_and_renumbering_is_caught_by_the_root():
    doc = _export()
    entries = [e for e in doc["entries"] if e["seq"] != 8]
    doc["entries"] = [_entry(i) for i in range(len(entries))]
    _failed(verify_export(doc, PUBLIC), 9, "tree head covers entries that are missing")
    # With the tail signed again by a forger's key, the signature gives it away.
    doc["tree_heads"][-1] = _head(doc["entries"], 9, 1_700_000_000_100, key=generate_signing_key())
    _failed(verify_export(doc, PUBLIC), 7, "names key")


def test_two_swapped_entries_are_reported_out_of_order():
    doc = _export()
    entries = doc["entries"]
    entries[3], entries[6] = entries[6], entries[3]
    _failed(verify_export(doc, PUBLIC), 3, "out of order")


def test_an_inserted_entry_is_caught_at_the_duplicated_seq():
    doc = _export()
    doc["entries"].insert(3, _entry(3, inserted=True))
    _failed(verify_export(doc, PUBLIC), 3, "seq 3 repeated or out of order")


def test_an_entry_whose_event_seq_disagrees_with_its_position_is_caught():
    doc = _export()
    event = dict(doc["entries"][2]["event"], seq=7)
    doc["entries"][2] = {"seq": 2, "leaf_hash": _b64(leaf_hash(canonical_json(event))), "event": event}
    _failed(verify_export(doc, PUBLIC), 2, "event seq 7 does not match its position")


def test_a_forged_tree_head_signature_is_caught_at_the_span_it_vouches_for():
    doc = _export()
    forged = _head(doc["entries"], 7, 1_700_000_000_007, key=generate_signing_key())
    forged["key_id"] = key_id(KEY)  # claim the real key
    doc["tree_heads"][1] = forged
    report = verify_export(doc, PUBLIC)
    _failed(report, 4, "invalid signature on tree head for size 7")
    assert report.tree_heads_checked == 1


def test_a_signature_moved_to_another_tree_head_is_refused():
    doc = _export()
    doc["tree_heads"][2]["signature"] = doc["tree_heads"][1]["signature"]
    _failed(verify_export(doc, PUBLIC), 7, "invalid signature on tree head for size 10")


def test_a_valid_export_does_not_verify_with_another_key():
    _failed(verify_export(_export(), generate_signing_key().public_key()), 0, "names key")


def test_tree_heads_must_not_go_back_in_size_or_time():
    doc = _export()
    doc["tree_heads"][1], doc["tree_heads"][2] = doc["tree_heads"][2], doc["tree_heads"][1]
    _failed(verify_export(doc, PUBLIC), None, "goes back in size or time")
    doc = _export()
    doc["tree_heads"][2] = _head(doc["entries"], 10, 1)
    _failed(verify_export(doc, PUBLIC), 7, "goes back in size or time")


def test_entries_after_the_last_signed_tree_head_fail_unless_an_unsigned_tail_is_allowed():
    doc = _export(12)
    _failed(verify_export(doc, PUBLIC), 10, "entries 10..11 are not covered by a signed tree head")
    report = verify_export(doc, PUBLIC, allow_unsigned_tail=True)
    assert report.ok
    assert "entries 10..11 not yet under a signed tree head" in report.reason


def test_verify_entries_accepts_raw_bytes_as_rows_from_the_store_would_give():
    doc = _export()
    entries = [{**e, "leaf_hash": base64.b64decode(e["leaf_hash"])} for e in doc["entries"]]
    heads = [
        {**h, "root_hash": base64.b64decode(h["root_hash"]), "signature": base64.b64decode(h["signature"])}
        for h in doc["tree_heads"]
    ]
    assert verify_entries(entries, heads, PUBLIC).ok


@pytest.mark.parametrize(
    ("mutate", "reason_part"),
    [
        (lambda d: d.update(format="other/1"), "unknown export format"),
        (lambda d: d.update(entries={}), "'entries' must be a list"),
        (lambda d: d.update(tree_heads=None), "'tree_heads' must be a list"),
        (lambda d: d["entries"].__setitem__(0, "x"), "not an object"),
        (lambda d: d["entries"][0].update(seq="0"), "no integer 'seq'"),
        (lambda d: d["entries"][0].update(event=[]), "no event object"),
        (lambda d: d["entries"][0].update(leaf_hash="zz"), "leaf_hash is not valid base64"),
        (lambda d: d["entries"][0].update(leaf_hash=None), "leaf_hash must be base64 text"),
        (lambda d: d["entries"][0]["event"].update(x=float("nan")), "cannot be encoded as canonical JSON"),
        (lambda d: d["tree_heads"].__setitem__(0, []), "tree head 0 is not an object"),
        (lambda d: d["tree_heads"][0].update(tree_size=True), "tree head 0 is malformed"),
        (lambda d: d["tree_heads"][0].update(timestamp_ms=-5), "tree head 0 is malformed"),
        (lambda d: d["tree_heads"][0].update(signature=_b64(b"short")), "must be 64 bytes"),
        (lambda d: d["tree_heads"][0].update(key_id=7), "key_id must be a string"),
    ],
)
def test_malformed_exports_are_refused_with_a_reason_not_an_exception(mutate, reason_part):
    doc = copy.deepcopy(_export())
    mutate(doc)
    report = verify_export(doc, PUBLIC)
    assert not report.ok
    assert reason_part in report.reason, report


@pytest.mark.parametrize(
    "doc", [None, [], "text", 5, {"format": EXPORT_FORMAT, "entries": [], "tree_heads": []}]
)
def test_documents_that_are_not_exports_are_refused(doc):
    assert not verify_export(doc).ok


def test_an_unusable_public_key_is_refused():
    report = verify_export(_export(), "not a key")
    assert not report.ok
    assert "unusable public key" in report.reason
