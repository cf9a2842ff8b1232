"""One registry per grid axis: adding a row is one entry, looked up by name with a one-line error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry mapping for one axis (``backbone``, ``objective``, ``teacher``, ``dataset``, ``executor``).

    A registry of behaviour (``rows`` given) holds one function per row of a rows registry (a loss per objective, a
    loader per dataset source): the rows registry is the one place the names are declared, and a function for a
    name it lacks is refused."""

    def __init__(self, axis: str, *, rows: Registry[Any] | None = None) -> None:
        self.axis = axis
        self.rows = rows
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, *, replace: bool = False) -> T:
        if name in self._entries and not replace:
            raise BenchError(f"{self.axis} {name!r} is already registered")
        if self.rows is not None and name not in self.rows:
            raise BenchError(f"{self.axis} {name!r}: no such {self.rows.axis} row")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def deco(entry: T) -> T:
            return self.add(name, entry)

        return deco

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise BenchError(f"unknown {self.axis} {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())
