"""Key ring over the store: tenant data keys, secrets and platform keys, all envelope-encrypted."""

from __future__ import annotations

import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Connection

from keel.kernel.clock import utcnow
from keel.kernel.errors import Blocked, Conflict, IntegrityError, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.secrets import envelope
from keel.store.tables import platform_keys, secrets, tenant_keys

KEY_CHECK_PLAINTEXT = b"keel tenant key check"
PLATFORM_SCOPE = "platform"


class KeyRing:
    """Wraps tenant data keys with the master key; encrypts secrets with the tenant's key."""

    def __init__(self, master_key: bytes) -> None:
        self._master = master_key

    # Tenant data keys -------------------------------------------------------------------
    def create_tenant_key(self, conn: Connection, tenant_id: str) -> None:
        key = envelope.new_key()
        conn.execute(
            tenant_keys.insert().values(
                tenant_id=tenant_id,
                wrapped_key=envelope.encrypt(self._master, key, f"tenant-key:{tenant_id}"),
                key_check=envelope.encrypt(key, KEY_CHECK_PLAINTEXT, f"key-check:{tenant_id}"),
                created_at=utcnow(),
            )
        )

    def tenant_key(self, conn: Connection, tenant_id: str) -> bytes:
        row = conn.execute(sa.select(tenant_keys).where(tenant_keys.c.tenant_id == tenant_id)).first()
        if row is None:
            raise NotFound("tenant key", tenant_id)
        if row.wrapped_key is None:
            raise Blocked("the tenant's data key was destroyed (crypto-shredded)", tenant_id=tenant_id)
        return envelope.decrypt(self._master, row.wrapped_key, f"tenant-key:{tenant_id}")

    def shred_tenant_key(self, conn: Connection, tenant_id: str) -> dict:
        """Destroy the tenant's data key and prove none of its ciphertexts decrypts any more."""
        conn.execute(
            tenant_keys.update()
            .where(tenant_keys.c.tenant_id == tenant_id)
            .values(wrapped_key=None, destroyed_at=utcnow())
        )
        return self.prove_shredded(conn, tenant_id)

    def prove_shredded(self, conn: Connection, tenant_id: str) -> dict:
        row = conn.execute(sa.select(tenant_keys).where(tenant_keys.c.tenant_id == tenant_id)).one()
        blobs = [(f"key-check:{tenant_id}", row.key_check)]
        blobs += [
            (f"secret:{tenant_id}:{s.name}:{s.version}", s.ciphertext)
            for s in conn.execute(sa.select(secrets).where(secrets.c.tenant_id == tenant_id))
        ]
        undecryptable = 0
        for aad, blob in blobs:
            try:
                key = self.tenant_key(conn, tenant_id)
                envelope.decrypt(key, blob, aad)
            except (Blocked, IntegrityError):
                undecryptable += 1
        return {
            "key_destroyed": row.wrapped_key is None,
            "ciphertexts_checked": len(blobs),
            "ciphertexts_undecryptable": undecryptable,
            "proven": row.wrapped_key is None and undecryptable == len(blobs),
        }

    # Secrets ----------------------------------------------------------------------------
    def put_secret(self, conn: Connection, tenant_id: str, name: str, value: str, actor_id: str) -> dict:
        if not name or len(name) > 200:
            raise InvalidInput("name", "must be 1 to 200 characters")
        if not value:
            raise InvalidInput("value", "must not be empty")
        current = conn.execute(
            sa.select(secrets.c.version).where(secrets.c.tenant_id == tenant_id, secrets.c.name == name)
        ).scalar()
        version = (current or 0) + 1
        blob = envelope.encrypt(
            self.tenant_key(conn, tenant_id), value.encode(), self._aad(tenant_id, name, version)
        )
        values = {"ciphertext": blob, "version": version, "created_by": actor_id, "created_at": utcnow()}
        if current is None:
            conn.execute(secrets.insert().values(id=new_id("SEC"), tenant_id=tenant_id, name=name, **values))
        else:
            conn.execute(
                secrets.update()
                .where(secrets.c.tenant_id == tenant_id, secrets.c.name == name)
                .values(**values)
            )
        return {"tenant_id": tenant_id, "name": name, "version": version}

    def get_secret(self, conn: Connection, tenant_id: str, name: str) -> str:
        """Plaintext for internal use only (connectors); never returned by an API."""
        row = conn.execute(
            sa.select(secrets).where(secrets.c.tenant_id == tenant_id, secrets.c.name == name)
        ).first()
        if row is None:
            raise NotFound("secret", name)
        key = self.tenant_key(conn, tenant_id)
        return envelope.decrypt(key, row.ciphertext, self._aad(tenant_id, name, row.version)).decode()

    def list_secrets(self, conn: Connection, tenant_id: str) -> list[dict]:
        rows = conn.execute(
            sa.select(secrets.c.name, secrets.c.version, secrets.c.created_by, secrets.c.created_at)
            .where(secrets.c.tenant_id == tenant_id)
            .order_by(secrets.c.name)
        )
        return [dict(r._mapping) for r in rows]

    @staticmethod
    def _aad(tenant_id: str, name: str, version: int) -> str:
        return f"secret:{tenant_id}:{name}:{version}"

    def derived_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` derived from the master key (HKDF-SHA256); never stored."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"keel:{purpose}".encode()).derive(
            self._master
        )

    def check_master_key(self, conn: Connection) -> None:
        """Fail at start, not later, when the master key is not the one that wrapped the stored keys."""
        row = conn.execute(sa.select(platform_keys).where(platform_keys.c.active).limit(1)).first()
        if row is None:
            return
        try:
            envelope.decrypt(self._master, row.private_ciphertext, f"platform-key:{row.key_id}")
        except IntegrityError:
            raise InvalidInput(
                "KEEL_MASTER_KEY", "does not match the key that wrapped the stored keys of this Keel home"
            ) from None

    # Platform keys (ledger signing key) ---------------------------------------------------
    def store_platform_key(
        self, conn: Connection, key_id: str, purpose: str, private_pem: bytes, public_pem: str
    ) -> None:
        existing = conn.execute(
            sa.select(platform_keys.c.key_id).where(
                platform_keys.c.purpose == purpose, platform_keys.c.active
            )
        ).first()
        if existing is not None:
            raise Conflict(f"an active {purpose} key exists already", key_id=existing.key_id)
        conn.execute(
            platform_keys.insert().values(
                key_id=key_id,
                purpose=purpose,
                public_pem=public_pem,
                private_ciphertext=envelope.encrypt(self._master, private_pem, f"platform-key:{key_id}"),
                active=True,
                created_at=utcnow(),
            )
        )

    def platform_key(self, conn: Connection, purpose: str) -> tuple[str, bytes, str] | None:
        """``(key_id, private_pem, public_pem)`` of the active key for ``purpose``, or None."""
        row = conn.execute(
            sa.select(platform_keys).where(platform_keys.c.purpose == purpose, platform_keys.c.active)
        ).first()
        if row is None:
            return None
        pem = envelope.decrypt(self._master, row.private_ciphertext, f"platform-key:{row.key_id}")
        return row.key_id, pem, row.public_pem
