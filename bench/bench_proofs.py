"""Benchmark Merkle proof generation and verification at 1,000,000 leaves.

Run ``python bench/bench_proofs.py``: prints markdown table rows and one JSON
line. ``run()`` returns the same results for a common bench runner.

1. Inclusion-proof generation latency (p50, p99) over random indices of a
   1,000,000-leaf ``MerkleTree``; target p99 <= 1 ms.
2. ``verify_inclusion`` over the same proofs against a bare hashlib loop that
   makes exactly the same ``sha256(0x01 + l + r)`` calls with no checks; the two run
   interleaved, round after round, and the median of the rounds is compared.
   ratio = baseline_time / keel_time, target >= 0.8. An informational row
   also compares with a loop that only chains the hashes (no left/right
   choice), which no correct verifier can match.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import sys
import time
from pathlib import Path

try:
    from keel.evidence.merkle import MerkleTree, leaf_hash, verify_inclusion
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from keel.evidence.merkle import MerkleTree, leaf_hash, verify_inclusion

TREE_SIZE = 1_000_000
SAMPLES = 10_000
ROUNDS = 7
GEN_P99_TARGET_MS = 1.0
VERIFY_RATIO_TARGET = 0.8


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _bare_loop(cases: list[tuple[int, int, bytes, list[bytes], bytes]]) -> None:
    """The same sha256(0x01 + l + r) calls as verification, in the same order, with no checks.

    The side of each sibling comes straight from the index bits, which is the
    least work that still hashes the same inputs.
    """
    sha256 = hashlib.sha256
    node = b"\x01"
    for index, size, leaf, proof, _root in cases:
        inner = (index ^ (size - 1)).bit_length()
        r = leaf
        idx = index
        for p in proof[:inner]:
            # The index bit says on which side the sibling sits.
            r = sha256(node + p + r).digest() if idx & 1 else sha256(node + r + p).digest()
            idx >>= 1
        for p in proof[inner:]:
            r = sha256(node + p + r).digest()


def _hash_only_loop(cases: list[tuple[int, int, bytes, list[bytes], bytes]]) -> None:
    """As many sha256 calls with no left/right logic at all: a floor no verifier can reach."""
    sha256 = hashlib.sha256
    node = b"\x01"
    for _index, _size, leaf, proof, _root in cases:
        r = leaf
        for p in proof:
            r = sha256(node + p + r).digest()


def _keel_loop(cases: list[tuple[int, int, bytes, list[bytes], bytes]]) -> None:
    verify = verify_inclusion
    for index, size, leaf, proof, root in cases:
        if not verify(index, size, leaf, proof, root):
            raise AssertionError(f"proof for leaf {index} did not verify")


def run(tree_size: int = TREE_SIZE, samples: int = SAMPLES, rounds: int = ROUNDS) -> list[dict]:
    """Run both measurements; one result dict per measurement."""
    rng = random.Random(6962)
    tree = MerkleTree()
    append = tree.append
    for i in range(tree_size):
        append(leaf_hash(i.to_bytes(8, "big")))
    root = tree.root()
    indices = [rng.randrange(tree_size) for _ in range(samples)]

    timer = time.perf_counter_ns
    gen = tree.inclusion_proof
    for index in indices[:200]:  # warm up
        gen(index)
    latencies_ms: list[float] = []
    proofs: list[list[bytes]] = []
    for index in indices:
        start = timer()
        proof = gen(index)
        latencies_ms.append((timer() - start) / 1e6)
        proofs.append(proof)
    latencies_ms.sort()
    p50 = _percentile(latencies_ms, 0.50)
    p99 = _percentile(latencies_ms, 0.99)

    cases = [(i, tree_size, tree.leaf(i), p, root) for i, p in zip(indices, proofs, strict=True)]
    baseline_s: list[float] = []
    hash_only_s: list[float] = []
    keel_s: list[float] = []
    for _ in range(rounds):
        for loop, times in ((_bare_loop, baseline_s), (_keel_loop, keel_s), (_hash_only_loop, hash_only_s)):
            start = timer()
            loop(cases)
            times.append((timer() - start) / 1e9)
    base = statistics.median(baseline_s)
    hash_only = statistics.median(hash_only_s)
    keel = statistics.median(keel_s)
    verify_ratio = base / keel

    return [
        {
            "name": f"inclusion proof generation p50 ({tree_size:,} leaves)",
            "value": round(p50, 4),
            "unit": "ms",
            "baseline": None,
            "ratio": None,
            "target": None,
            "pass": True,
        },
        {
            "name": f"inclusion proof generation p99 ({tree_size:,} leaves)",
            "value": round(p99, 4),
            "unit": "ms",
            "baseline": GEN_P99_TARGET_MS,
            "ratio": round(p99 / GEN_P99_TARGET_MS, 4),
            "target": f"p99 <= {GEN_P99_TARGET_MS} ms",
            "pass": p99 <= GEN_P99_TARGET_MS,
        },
        {
            "name": f"verify_inclusion, {samples:,} proofs vs bare hashlib loop",
            "value": round(keel * 1e6 / samples, 3),
            "unit": "us/proof",
            "baseline": round(base * 1e6 / samples, 3),
            "ratio": round(verify_ratio, 3),
            "target": f"baseline/keel >= {VERIFY_RATIO_TARGET}",
            "pass": verify_ratio >= VERIFY_RATIO_TARGET,
        },
        {
            "name": "verify_inclusion vs hash-chaining only (informational)",
            "value": round(keel * 1e6 / samples, 3),
            "unit": "us/proof",
            "baseline": round(hash_only * 1e6 / samples, 3),
            "ratio": round(hash_only / keel, 3),
            "target": None,
            "pass": True,
        },
    ]


if __name__ == "__main__":  # this benchmark alone, through the common runner (bench/run.py)
    from run import main as run_benches

    sys.exit(run_benches([Path(__file__).stem]))
