"""The connector registry: built-in and third-party connectors load the same way.

Connectors are found through the ``keel.connectors`` entry-point group. A
plugin that fails to load is recorded in ``broken`` under its entry-point name
(and ``get`` raises ``ConnectorUnavailable`` for it); the others still work.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from keel.connectors.errors import ConnectorUnavailable
from keel.connectors.protocol import Connector, is_semver
from keel.kernel.errors import Conflict, InvalidInput, NotFound

GROUP = "keel.connectors"


class ConnectorRegistry:
    """Connector classes by name."""

    def __init__(self, *, group: str | None = GROUP) -> None:
        """Load every connector of the entry-point ``group`` (``None``: start empty)."""
        self._classes: dict[str, type[Connector]] = {}
        self._broken: dict[str, str] = {}
        if group is not None:
            self._load(group)

    def _load(self, group: str) -> None:
        for entry in sorted(entry_points(group=group), key=lambda e: e.name):
            try:
                cls = entry.load()
                _check_class(cls)
                if cls.name != entry.name:
                    raise InvalidInput("name", f"entry point '{entry.name}' loads connector '{cls.name}'")
            except Exception as exc:  # a broken plugin must not take the registry down
                self._broken[entry.name] = f"{type(exc).__name__}: {exc}"
                continue
            self._classes[entry.name] = cls

    def register(self, cls: type[Connector]) -> type[Connector]:
        """Add a connector class (usable as a decorator); a different class under a taken name conflicts."""
        _check_class(cls)
        existing = self._classes.get(cls.name)
        if existing is not None and existing is not cls:
            raise Conflict(f"connector '{cls.name}' is already registered", connector=cls.name)
        self._classes[cls.name] = cls
        self._broken.pop(cls.name, None)
        return cls

    def get(self, name: str) -> type[Connector]:
        if name in self._classes:
            return self._classes[name]
        if name in self._broken:
            raise ConnectorUnavailable(name, self._broken[name])
        raise NotFound("connector", name)

    def names(self) -> list[str]:
        """Names of the connectors that loaded, sorted."""
        return sorted(self._classes)

    @property
    def broken(self) -> dict[str, str]:
        """Plugins that failed to load: entry-point name → error."""
        return dict(self._broken)


def _check_class(cls: object) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise InvalidInput("connector", f"{cls!r} is not a Connector class")
    name = getattr(cls, "name", None)
    version = getattr(cls, "version", None)
    if not isinstance(name, str) or not name:
        raise InvalidInput("connector.name", f"{cls.__name__} has no name")
    if not isinstance(version, str) or not is_semver(version):
        raise InvalidInput("connector.version", f"{cls.__name__} version {version!r} is not semver")
