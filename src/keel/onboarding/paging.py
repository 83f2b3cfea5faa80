"""The one keyset query behind every onboarding list: rows matching ``where``, by id, after a cursor."""

from __future__ import annotations

import sqlalchemy as sa


def keyset(table: sa.Table, *where: sa.ColumnElement[bool], after: str | None, limit: int) -> sa.Select:
    query = sa.select(table).where(*where).order_by(table.c.id).limit(limit)
    return query.where(table.c.id > after) if after else query
