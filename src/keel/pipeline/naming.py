"""Names of materialized objects (pure): safe identifiers and versioned table names.

Every name Keel puts into SQL text passes through here, so it is one of
``[a-z0-9]`` words joined by single underscores. The double underscore is kept
for the version suffix: ``order`` version 1.2.3 is built as ``order__v1_2_3``, and
no entity name can look like another's versioned table.
"""

from __future__ import annotations

import re

from keel.contracts.model import Version
from keel.kernel.errors import InvalidInput

LAYERS = ("gdp", "kpi")
MAX_LENGTH = 63  # the longest identifier PostgreSQL keeps; a safe bound for every engine
_SAFE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
_SEPARATORS = re.compile(r"[-.:]")


def safe_name(text: str, field: str = "name") -> str:
    """``text`` as an identifier: lower-cased, with ``-``, ``.`` and ``:`` of contract ids as ``_``.

    Anything else outside ``[a-z0-9_]``, a leading, trailing or doubled underscore, or
    a name longer than ``MAX_LENGTH`` raises ``InvalidInput``.
    """
    name = _SEPARATORS.sub("_", str(text).lower())
    if not _SAFE.match(name) or len(name) > MAX_LENGTH:
        raise InvalidInput(
            field,
            f"'{text}' is not a safe name: use letters, digits and single underscores "
            f"(at most {MAX_LENGTH} characters)",
        )
    return name


def version_tag(version: str) -> str:
    """``1.2.3`` as ``v1_2_3``."""
    try:
        parsed = Version.parse(version)
    except ValueError as exc:
        raise InvalidInput("version", str(exc)) from None
    return f"v{parsed.major}_{parsed.minor}_{parsed.patch}"


def canonical_version(version: str) -> str:
    """The version as the bookkeeping records it (``v1.2.3`` and ``1.2.3`` are one version)."""
    version_tag(version)
    return str(Version.parse(version))


def versioned(name: str, version: str) -> str:
    """The table one version of ``name`` is built into: ``<name>__v<major>_<minor>_<patch>``."""
    return f"{safe_name(name)}__{version_tag(version)}"


def layer_name(layer: str) -> str:
    """A layer that holds materializations (Raw is landed by ingestion, not built)."""
    if layer not in LAYERS:
        raise InvalidInput("layer", f"'{layer}' is not one of {', '.join(LAYERS)}")
    return str(layer)
