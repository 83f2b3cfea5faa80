"""Evidence ledger core: an RFC 6962 Merkle log of audit events.

Pure code only (no database, no HTTP): canonical event encoding
(``canonical``), the Merkle tree and proof verification (``merkle``), signed
tree heads (``signing``), transparency-log proof documents (``proofdoc``) and
verification of an exported ledger (``offline``).
"""
