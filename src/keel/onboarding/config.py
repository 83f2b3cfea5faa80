"""A deployed connector's configuration: secrets split out into the tenant's keyring, and back.

The Data Engineer sends one configuration with its credentials inline. Every field
the connector's spec marks secret is written to the tenant's encrypted secrets
store under ``connectors/<connector_id>/<path>`` and replaced by ``"***"`` in the
stored configuration; ``secret_refs`` maps the field's path to the secret's name.
Sending ``"***"`` again for a secret keeps the stored one, so a configuration read
back from the API can be edited and sent as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy.engine import Connection

from keel.connectors.protocol import REDACTED, Connector, is_secret, properties_of
from keel.kernel.errors import InvalidInput


def secret_name(connector_id: str, path: str) -> str:
    return f"connectors/{connector_id}/{path}"


def split_secrets(
    connector: Connector, config: Mapping[str, Any], previous_refs: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """``(stored_config, kept_refs, new_secrets)`` of a configuration holding secrets inline.

    ``new_secrets`` maps path → plaintext to store; ``kept_refs`` the secrets sent
    back as ``"***"`` that keep their stored value.
    """
    stored = copy.deepcopy(dict(config))
    kept: dict[str, str] = {}
    fresh: dict[str, str] = {}
    for path, parent, key in _secret_slots(connector.spec(), stored, ""):
        value = parent[key]
        if value == REDACTED:
            if path not in previous_refs:
                raise InvalidInput(f"config.{path}", "is '***' but no credential is stored for it yet")
            kept[path] = previous_refs[path]
        elif not isinstance(value, str):
            raise InvalidInput(f"config.{path}", "must be a string")
        else:
            fresh[path] = value
        parent[key] = REDACTED
    return stored, kept, fresh


def effective_config(conn: Connection, keyring, tenant_id: str, stored: Mapping, refs: Mapping) -> dict:
    """The configuration with its secrets put back, for talking to the source only."""
    config = copy.deepcopy(dict(stored))
    for path, name in refs.items():
        parent = config
        *head, last = path.split(".")
        for part in head:
            parent = parent[part]
        parent[last] = keyring.get_secret(conn, tenant_id, name)
    return config


def _secret_slots(schema: Mapping[str, Any], value: Any, prefix: str) -> Iterator[tuple[str, dict, str]]:
    """``(path, parent, key)`` of every secret value present in ``value`` per ``schema``."""
    if not isinstance(value, dict):
        return
    for key, schemas in properties_of(schema).items():
        if key not in value:
            continue
        path = f"{prefix}{key}"
        if any(is_secret(s) for s in schemas):
            yield path, value, key
        else:
            for sub in schemas:
                yield from _secret_slots(sub, value[key], f"{path}.")
