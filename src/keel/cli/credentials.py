"""The CLI's saved API tokens: ``$KEEL_HOME/credentials.json`` (mode 0600), one per server.

A server is keyed by its ``KEEL_URL`` (remote mode) or ``"local"`` (the embedded
platform in ``KEEL_HOME``), so signing in to one Keel never hands its token to another.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keel.kernel.settings import Settings

FILE_NAME = "credentials.json"
LOCAL = "local"


def path(settings: Settings) -> Path:
    return settings.home / FILE_NAME


def server_key(settings: Settings) -> str:
    return settings.url.rstrip("/") if settings.url else LOCAL


def _read_all(settings: Settings) -> dict:
    try:
        data = json.loads(path(settings).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load(settings: Settings) -> dict | None:
    """The saved entry (``token``, ``token_id``, ``email``, ...) for this server, if any."""
    entry = _read_all(settings).get(server_key(settings))
    return entry if isinstance(entry, dict) and isinstance(entry.get("token"), str) else None


def save(settings: Settings, entry: dict) -> Path:
    data = _read_all(settings)
    data[server_key(settings)] = entry
    _write(settings, data)
    return path(settings)


def forget(settings: Settings) -> bool:
    data = _read_all(settings)
    if data.pop(server_key(settings), None) is None:
        return False
    _write(settings, data)
    return True


def _write(settings: Settings, data: dict) -> None:
    target = path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Create with 0600 from the start: the token must never be readable by others, even briefly.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.chmod(target, 0o600)
