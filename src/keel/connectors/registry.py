"""The connector registry: built-in and third-party connectors load the same way.

Connectors are found through the ``keel.connectors`` entry-point group. A
plugin that fails to load is recorded in ``broken`` under its entry-point name
(and ``get`` raises ``ConnectorUnavailable`` for it); the others still work.
"""

from __future__ import annotations

from keel.connectors.errors import ConnectorUnavailable
from keel.connectors.protocol import Connector, is_semver
from keel.kernel.errors import InvalidInput
from keel.kernel.plugins import PluginRegistry

GROUP = "keel.connectors"


class ConnectorRegistry(PluginRegistry[Connector]):
    """Connector classes by name."""

    kind = "connector"
    field = "connector"

    def __init__(self, *, group: str | None = GROUP) -> None:
        """Load every connector of the entry-point ``group`` (``None``: start empty)."""
        super().__init__(group, check=_check_class, unavailable=ConnectorUnavailable)


def _check_class(cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise InvalidInput("connector", f"{cls!r} is not a Connector class")
    name = getattr(cls, "name", None)
    version = getattr(cls, "version", None)
    if not isinstance(name, str) or not name:
        raise InvalidInput("connector.name", f"{cls.__name__} has no name")
    if not isinstance(version, str) or not is_semver(version):
        raise InvalidInput("connector.version", f"{cls.__name__} version {version!r} is not semver")
