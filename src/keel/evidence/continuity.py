"""Is today's ledger a continuation of a signed tree head saved earlier? (pure)

Verification of the stored ledger checks it against itself; someone able to write
the database could cut off the newest entries together with their heads. A head
kept outside Keel closes that gap: the current head must be at least as large and
signed, and a consistency proof must link the saved root to the current one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from keel.evidence.offline import decode_fixed
from keel.evidence.proofdoc import check_proof_document, encode_hash
from keel.evidence.signing import TreeHead, load_public_key, verify_tree_head
from keel.kernel.errors import InvalidInput


def check_continuity(
    saved: Any, current: Any, proof: Mapping[str, Any] | None, public_key
) -> tuple[bool, str]:
    """``(ok, reason)``; never raises. ``proof`` is the consistency proof from ``saved`` to ``current``."""
    try:
        key = load_public_key(public_key)
        old, old_sig = _head(saved, "saved head")
        new, new_sig = _head(current, "current head")
    except ValueError as exc:
        return False, str(exc)
    except InvalidInput as exc:
        return False, exc.detail
    if not verify_tree_head(key, old, old_sig):
        return False, "the saved head's signature does not verify with the platform key"
    if not verify_tree_head(key, new, new_sig):
        return False, "the current head's signature does not verify with the platform key"
    if new.tree_size < old.tree_size:
        return False, f"the ledger shrank: {new.tree_size} entries now, {old.tree_size} in the saved head"
    if new.tree_size == old.tree_size:
        same = new.root_hash == old.root_hash
        return same, "same size and root as the saved head" if same else "same size, different root"
    if proof is None:
        return False, "a consistency proof is needed between the two sizes"
    expected = {
        "size1": old.tree_size,
        "size2": new.tree_size,
        "root1": encode_hash(old.root_hash),
        "root2": encode_hash(new.root_hash),
    }
    if {k: proof.get(k) for k in expected} != expected:
        return False, "the consistency proof is not about the saved and current heads"
    check = check_proof_document(json.dumps(dict(proof)))
    if not check.ok:
        return False, f"the ledger is not a continuation of the saved head: {check.reason}"
    return True, f"the ledger extends the saved head ({old.tree_size} → {new.tree_size} entries)"


def _head(raw: Any, name: str) -> tuple[TreeHead, bytes]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"the {name} is not a JSON object")
    try:
        root = decode_fixed(raw.get("root_hash"), 32)
        signature = decode_fixed(raw.get("signature"), 64)
        return TreeHead(raw.get("tree_size"), root, raw.get("timestamp_ms")), signature
    except ValueError as exc:
        raise ValueError(f"the {name} is malformed: {exc}") from None
