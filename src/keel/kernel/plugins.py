"""One way to find plugins: classes named in an entry-point group, built-ins and third parties alike.

A registry loads every class of its group, checks each with ``check`` (its own rules,
raising ``InvalidInput``) and that its ``name`` is the entry point's. A plugin that
fails to load is kept in ``broken`` with the error, and ``get`` raises the registry's
``unavailable`` error for it; the other plugins still work.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from keel.kernel.errors import Conflict, InvalidInput, KeelError, NotFound

T = TypeVar("T")


class PluginRegistry(Generic[T]):
    """Plugin classes by name. ``kind`` names them in errors ("connector"), ``field`` in their fields."""

    kind: str = "plugin"
    field: str = "plugin"

    def __init__(
        self, group: str | None, *, check: Callable[[object], None], unavailable: type[KeelError]
    ) -> None:
        """Load every class of the entry-point ``group`` (``None``: start empty)."""
        self._check = check
        self._unavailable = unavailable
        self._classes: dict[str, type[T]] = {}
        self._broken: dict[str, str] = {}
        if group is not None:
            self._load(group)

    def _load(self, group: str) -> None:
        for entry in sorted(entry_points(group=group), key=lambda e: e.name):
            try:
                cls = entry.load()
                self._check(cls)
                if cls.name != entry.name:
                    raise InvalidInput("name", f"entry point '{entry.name}' loads {self.field} '{cls.name}'")
            except Exception as exc:  # a broken plugin must not take the registry down
                self._broken[entry.name] = f"{type(exc).__name__}: {exc}"
                continue
            self._classes[entry.name] = cls

    def register(self, cls: type[T]) -> type[T]:
        """Add a class (usable as a decorator); a different class under a taken name conflicts."""
        self._check(cls)
        existing = self._classes.get(cls.name)
        if existing is not None and existing is not cls:
            raise Conflict(
                f"{self.kind} '{cls.name}' is already registered", **{self.kind.split()[-1]: cls.name}
            )
        self._classes[cls.name] = cls
        self._broken.pop(cls.name, None)
        return cls

    def get(self, name: str) -> type[T]:
        if name in self._classes:
            return self._classes[name]
        if name in self._broken:
            raise self._unavailable(name, self._broken[name])
        raise NotFound(self.kind, name)

    def names(self) -> list[str]:
        """Names of the plugins that loaded, sorted."""
        return sorted(self._classes)

    @property
    def broken(self) -> dict[str, str]:
        """Plugins that failed to load: entry-point name → error."""
        return dict(self._broken)

    def mark_broken(self, name: str, error: str) -> None:
        """Take a loaded plugin out of service (it failed when used)."""
        self._classes.pop(name, None)
        self._broken[name] = error
