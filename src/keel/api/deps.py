"""Request dependencies: the Keel instance, the authenticated actor, pagination."""

from __future__ import annotations

import base64
import binascii
import re

from fastapi import Depends, Query, Request

from keel.accounts import auth
from keel.identity.actor import Actor
from keel.kernel.errors import InvalidInput, Unauthenticated

SESSION_COOKIE = "keel_session"


def get_keel(request: Request):
    return request.app.state.keel


def current_actor(request: Request, keel=Depends(get_keel)) -> Actor:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        return auth.authenticate(keel, bearer=value.strip())
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        if request.method not in ("GET", "HEAD") and request.headers.get("x-keel-csrf") != "1":
            # Cookies ride along cross-site; a custom header cannot, so it proves same-origin intent.
            raise Unauthenticated("session requests that change state need the X-Keel-CSRF: 1 header")
        return auth.authenticate(keel, session=session)
    raise Unauthenticated("a bearer token or a session is required")


class Page:
    """Cursor pagination: an opaque ``cursor`` from the previous page's ``next_cursor``."""

    def __init__(
        self,
        cursor: str | None = Query(None, description="Opaque cursor from next_cursor."),
        limit: int = Query(50, ge=1, le=500),
    ) -> None:
        self.limit = limit
        self.after = decode_cursor(cursor) if cursor else None

    def render(self, items: list[dict], key: str) -> dict:
        more = len(items) > self.limit
        items = items[: self.limit]
        return {"items": items, "next_cursor": encode_cursor(str(items[-1][key])) if more and items else None}


CURSOR_PREFIX = "k1:"  # versions the format, and tells a cursor this API issued from random base64
_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,400}$")


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode((CURSOR_PREFIX + value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The sort key a cursor carries; ``InvalidInput("cursor")`` for anything this API did not issue."""
    bad = InvalidInput("cursor", "is not a cursor this API issued; pass next_cursor unchanged")
    if not _CURSOR.match(cursor):  # b64decode would silently drop foreign characters
        raise bad
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    value = text.removeprefix(CURSOR_PREFIX)
    if value == text or not value or not value.isprintable():
        raise bad
    return value
