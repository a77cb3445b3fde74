"""A small generic registry: name -> spec, filled by decorators, with helpful misses."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

from miaudit.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to specs; a second registration of a name fails, a miss names the closest."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T, *, force: bool = False) -> None:
        if name in self._items and not force:
            raise RuntimeError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str, *, where: str | None = None) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(self.unknown_message(name, where=where)) from None

    def unknown_message(self, name: str, *, where: str | None = None) -> str:
        close = difflib.get_close_matches(name, list(self._items), n=1)
        hint = f", did you mean {close[0]!r}?" if close else ""
        prefix = f"{where}: " if where else ""
        known = ", ".join(sorted(self._items))
        return f"{prefix}unknown {self.kind} {name!r}{hint} (known: {known})"

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def names(self) -> list[str]:
        return sorted(self._items)
