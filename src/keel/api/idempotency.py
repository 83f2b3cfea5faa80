"""``Idempotency-Key`` on creating POSTs: a replay returns the first response; a different body is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict, InvalidInput
from keel.store.tables import idempotency_keys

SECRET_FIELDS = {"token", "password"}


def _redact(value):
    if isinstance(value, dict):
        return {k: ("<shown once>" if k in SECRET_FIELDS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


async def idempotent(request: Request, actor: Actor | None, run: Callable[[], dict], status_code: int = 201):
    """Run ``run`` once per (caller, key); later calls with the same key get the stored response."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return JSONResponse(await run_in_threadpool(run), status_code=status_code)
    if not 1 <= len(key) <= 200:
        raise InvalidInput("Idempotency-Key", "must be 1 to 200 characters")
    keel = request.app.state.keel
    principal = actor.user_id if actor else "anonymous"
    body_hash = hashlib.sha256(await request.body()).hexdigest()
    try:  # reserve the key first so two concurrent requests cannot both run
        with keel.engine.begin() as conn:
            conn.execute(
                idempotency_keys.insert().values(
                    principal=principal,
                    key=key,
                    method=request.method,
                    path=request.url.path,
                    body_sha256=body_hash,
                    status_code=0,
                    response={},
                    created_at=utcnow(),
                )
            )
    except sa.exc.IntegrityError:
        stored = _lookup(keel, principal, key)
        if (
            stored.body_sha256 != body_hash
            or stored.path != request.url.path
            or stored.method != request.method
        ):
            raise Conflict(
                "this Idempotency-Key was used with a different request", field="Idempotency-Key"
            ) from None
        if stored.status_code == 0:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress", field="Idempotency-Key"
            ) from None
        return JSONResponse(
            stored.response, status_code=stored.status_code, headers={"Idempotent-Replayed": "true"}
        )
    where = (idempotency_keys.c.principal == principal) & (idempotency_keys.c.key == key)
    try:
        response = await run_in_threadpool(run)
    except BaseException:
        with keel.engine.begin() as conn:  # a failed request may be retried with the same key
            conn.execute(idempotency_keys.delete().where(where))
        raise
    with keel.engine.begin() as conn:
        conn.execute(
            idempotency_keys.update().where(where).values(status_code=status_code, response=_redact(response))
        )
    return JSONResponse(response, status_code=status_code)


def _lookup(keel, principal: str, key: str):
    with keel.engine.connect() as conn:
        return conn.execute(
            sa.select(idempotency_keys).where(
                idempotency_keys.c.principal == principal, idempotency_keys.c.key == key
            )
        ).first()
