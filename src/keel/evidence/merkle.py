"""RFC 6962 Merkle tree (SHA-256) with inclusion and consistency proofs.

Hashing follows RFC 6962 §2.1: a leaf hash is ``SHA-256(0x00 || data)`` and an
interior node ``SHA-256(0x01 || left || right)``; the root of the empty tree is
``SHA-256("")``. Proofs are the PATH and SUBPROOF lists of RFC 6962 §2.1.1 and
§2.1.2 (the same as RFC 9162 §2.1.3 and §2.1.4), ordered from the leaves up.

``MerkleTree`` keeps every complete subtree hash, so proofs and roots for any
historical size only rehash the ragged right edge of the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from keel.kernel.errors import InvalidInput

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF = b"\x00"
_NODE = b"\x01"
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf's data: ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes into their parent: ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE + left + right).digest()


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Reference MTH of RFC 6962 §2.1 over leaf hashes, by plain recursion.

    Slow and simple on purpose: tests use it to cross-check ``MerkleTree``.
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return bytes(leaf_hashes[0])
    k = _split(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only, in-memory Merkle tree of leaf hashes.

    ``_levels[k]`` is a bytearray of the 32-byte hashes of the complete
    subtrees of ``2**k`` leaves, left to right, so ``append`` is amortised
    O(1) and every proof needs O(log n) lookups plus at most O(log n) hashes
    for the incomplete right edge of the requested tree size.
    """

    __slots__ = ("_levels", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0
        self.extend(leaf_hashes)

    def __len__(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> int:
        """Add one leaf hash; returns its index."""
        if len(leaf_hash) != HASH_SIZE:
            raise InvalidInput("leaf_hash", f"must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
        levels = self._levels
        levels[0] += leaf_hash
        index = self._size
        n = index + 1
        self._size = n
        level = 0
        # Each time the node count of a level becomes even, its last two
        # nodes complete a subtree one level up.
        while not n & 1:
            below = levels[level]
            parent = _sha256(_NODE + below[-64:]).digest()
            level += 1
            n >>= 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += parent
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes in order."""
        append = self.append
        for h in leaf_hashes:
            append(h)

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        self._check_index(index, self._size)
        start = index * HASH_SIZE
        return bytes(self._levels[0][start : start + HASH_SIZE])

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree made of the first ``size`` leaves (default: all)."""
        size = self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 6962 §2.1.1, leaf-side first."""
        size = self._check_size(size)
        self._check_index(index, size)
        levels = self._levels
        proof: list[bytes] = []
        last = size - 1
        level = 0
        # Walk up the aligned binary tree: at each level the sibling subtree
        # is complete unless it runs past ``size``, in which case it is the
        # ragged right edge (hashed once), or absent (the node is promoted).
        while last >> level:
            sibling = ((index >> level) ^ 1) << level
            if sibling < size:
                end = sibling + (1 << level)
                if end <= size:
                    offset = (sibling >> level) * HASH_SIZE
                    proof.append(bytes(levels[level][offset : offset + HASH_SIZE]))
                else:
                    proof.append(self._subtree(sibling, size))
            level += 1
        return proof

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """PROOF(size1, D[0:size2]) of RFC 6962 §2.1.2, leaf-side first.

        Empty when ``size1`` is 0 or equals ``size2``.
        """
        size2 = self._check_size(size2)
        if type(size1) is not int or size1 < 0 or size1 > size2:
            raise InvalidInput("size1", f"must be an integer between 0 and {size2}, got {size1!r}")
        if size1 == 0 or size1 == size2:
            return []
        proof: list[bytes] = []
        self._subproof(size1, 0, size2, True, proof)
        return proof

    def _subproof(self, m: int, lo: int, hi: int, whole: bool, out: list[bytes]) -> None:
        """SUBPROOF(m, D[lo:hi], whole) of RFC 6962 §2.1.2, appended to ``out``."""
        n = hi - lo
        if m == n:
            if not whole:
                out.append(self._subtree(lo, hi))
            return
        k = _split(n)
        if m <= k:
            self._subproof(m, lo, lo + k, whole, out)
            out.append(self._subtree(lo + k, hi))
        else:
            self._subproof(m - k, lo + k, hi, False, out)
            out.append(self._subtree(lo, lo + k))

    def _subtree(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a range whose start is aligned to its own size.

        Every range met while building RFC 6962 proofs has that shape, so it
        splits into complete subtrees by the set bits of its length.
        """
        levels = self._levels
        parts: list[bytes] = []
        n = hi - lo
        pos = lo
        for level in range(n.bit_length() - 1, -1, -1):
            if n >> level & 1:
                offset = (pos >> level) * HASH_SIZE
                parts.append(bytes(levels[level][offset : offset + HASH_SIZE]))
                pos += 1 << level
        acc = parts.pop()
        while parts:
            acc = _sha256(_NODE + parts.pop() + acc).digest()
        return acc

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if type(size) is not int or size < 0 or size > self._size:
            raise InvalidInput("tree_size", f"must be an integer between 0 and {self._size}, got {size!r}")
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if type(index) is not int or index < 0 or index >= size:
            raise InvalidInput("leaf_index", f"must be an integer below tree size {size}, got {index!r}")


_HASH_LENGTHS = {HASH_SIZE}
_BYTES = (bytes, bytearray)


def _hash_lengths_ok(*hashes: object) -> bool:
    """True when every argument has length 32 (types are left to the hashing)."""
    return all(len(h) == HASH_SIZE for h in hashes)  # type: ignore[arg-type]


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an inclusion proof (RFC 9162 §2.1.3.2); False on any malformed input.

    Computes the same root as the RFC's loop, but first splits the proof at
    the level where the leaf's path meets the path of the last leaf (the
    right edge of the tree): below it (``inner``) the index bits give each
    sibling's side; above it every sibling present is a complete left
    subtree. A proof of the wrong length is rejected before any hashing.
    Hashes are bytes or bytearray of 32 bytes (proof elements may be any
    bytes-like object); anything else, or negative or bool sizes, gives False.
    """
    if type(leaf_index) is not int or type(tree_size) is not int or not 0 <= leaf_index < tree_size:
        return False
    sha256 = _sha256
    node = _NODE
    try:
        if type(leaf_hash) not in _BYTES or type(root) not in _BYTES:
            return False
        if len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
            return False
        inner = (leaf_index ^ (tree_size - 1)).bit_length()
        if len(proof) != inner + (leaf_index >> inner).bit_count():
            return False
        if proof and set(map(len, proof)) != _HASH_LENGTHS:
            return False
        r = bytes(leaf_hash)
        idx = leaf_index
        for p in proof[:inner]:
            # The index bit says on which side the sibling sits.
            r = sha256(node + p + r).digest() if idx & 1 else sha256(node + r + p).digest()
            idx >>= 1
        for p in proof[inner:]:
            r = sha256(node + p + r).digest()
        return r == root
    except TypeError:
        return False


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> bool:
    """Check a consistency proof (RFC 9162 §2.1.4.2); False on any malformed input.

    Edge cases the RFC leaves to the caller: ``size1 == 0`` is consistent
    with any tree only with an empty proof and ``root1`` equal to the empty
    root; ``size1 == size2`` needs an empty proof and equal roots.
    """
    if type(size1) is not int or type(size2) is not int or not 0 <= size1 <= size2:
        return False
    if type(root1) not in _BYTES or type(root2) not in _BYTES:
        return False
    try:
        proof = list(proof)
        if not _hash_lengths_ok(root1, root2, *proof):
            return False
        root1, root2 = bytes(root1), bytes(root2)
        return _verify_consistency(size1, size2, root1, root2, proof)
    except TypeError:
        return False


def _verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> bool:
    if size1 == 0:
        return not proof and root1 == EMPTY_ROOT and (size2 > 0 or root2 == EMPTY_ROOT)
    if size1 == size2:
        return not proof and root1 == root2
    if not proof:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn = size1 - 1
    sn = size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    sha256 = _sha256
    node = _NODE
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = sha256(node + c + fr).digest()
            sr = sha256(node + c + sr).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = sha256(node + sr + c).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2
