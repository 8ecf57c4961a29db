"""One small generic name -> object registry, shared by models, balancers, datasets and protocols."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def close_matches(name: str, candidates: list[str], n: int = 5) -> list[str]:
    """Return the candidates closest to ``name`` (by spelling, then by shared prefix)."""
    matches = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not matches:
        head = name.split("_")[0].split(".")[0]
        matches = [c for c in candidates if c.startswith(head)][:n]
    return matches


def unknown_name_error(what: str, name: str, candidates: list[str]) -> ValueError:
    """Build the ValueError every registry raises for an unknown name."""
    near = close_matches(name, candidates)
    hint = f" Did you mean: {', '.join(near)}?" if near else ""
    shown = ", ".join(sorted(candidates)[:40]) + (" ..." if len(candidates) > 40 else "")
    return ValueError(f"Unknown {what} {name!r}.{hint} Registered {what}s: {shown}")


class Registry(Generic[T]):
    """Maps names to objects (usually constructors) and explains unknown names."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering an object under ``name`` (default: its ``__name__``)."""

        def add(obj: T) -> T:
            key = name or obj.__name__
            if key in self._entries:
                raise ValueError(f"{self.what} {key!r} is already registered")
            self._entries[key] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise a ValueError naming close matches."""
        if not isinstance(name, str):
            raise TypeError(f"{self.what} name must be a str, got {type(name).__name__}")
        try:
            return self._entries[name]
        except KeyError:
            raise unknown_name_error(self.what, name, list(self._entries)) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching the fnmatch ``pattern``."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
