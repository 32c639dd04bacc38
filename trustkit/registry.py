"""Name -> factory registries with aliases and "did you mean" errors (one Registry per kind)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable, Generic, Iterator, TypeVar

from trustkit.errors import UnknownNameError

T = TypeVar("T")


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object: its canonical name, aliases and a one-line summary."""

    name: str
    obj: T
    summary: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)


class Registry(Generic[T]):
    """A case-insensitive mapping from names (and aliases) to objects of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._lookup: dict[str, str] = {}

    def add(self, name: str, obj: T, *, summary: str = "", aliases: tuple[str, ...] = ()) -> T:
        """Register ``obj`` under ``name`` and ``aliases``; names must be unique across both."""
        canonical = _normalise(name)
        for key in (canonical, *map(_normalise, aliases)):
            if key in self._lookup:
                raise ValueError(f"{self.kind} name '{key}' is registered twice")
            self._lookup[key] = canonical
        self._entries[canonical] = Entry(canonical, obj, summary, tuple(aliases))
        return obj

    def register(self, name: str, *, summary: str = "", aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(obj: T) -> T:
            return self.add(name, obj, summary=summary, aliases=aliases)

        return decorate

    def canonical(self, name: str) -> str:
        """The canonical name for ``name`` or an alias; raises UnknownNameError with suggestions."""
        key = _normalise(name)
        if key in self._lookup:
            return self._lookup[key]
        choices = ", ".join(self.names())
        close = difflib.get_close_matches(key, list(self._lookup), n=1, cutoff=0.6)
        hint = f" (did you mean '{self._lookup[close[0]]}'?)" if close else ""
        raise UnknownNameError(f"unknown {self.kind} '{name}'{hint}; choose one of: {choices}")

    def get(self, name: str) -> T:
        """The object registered as ``name`` (case-insensitive, aliases allowed)."""
        return self._entries[self.canonical(name)].obj

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _normalise(name) in self._lookup

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
