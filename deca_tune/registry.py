"""A tiny name -> object registry, so a new data set, backbone, method or task family is one file
plus one line.

Each registry lives in its own module (``deca_tune/data/registry.py``, ``models/registry.py``,
``methods/registry.py``, ``tasks/__init__.py``) and names the modules that hold its built-in
entries; those modules register themselves with the ``@REGISTRY.register("name")`` decorator
and are imported the first time the registry is read, so importing a registry is cheap and
never circular. Adding a built-in entry: write its module (with the decorator) and add the
module's name to the registry's ``modules`` list. Adding your own, without touching the
package: call ``REGISTRY.register("name")(obj)`` in a module of yours and name that module in
the spec's ``plugins`` list (``--plugins`` on the command line), so Ray workers import it too.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'deca'?)"`` for the closest of ``choices`` (difflib), else ``""``."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Maps user-facing names (what people type on the command line) to objects."""

    def __init__(self, kind: str, modules: Iterable[str] = ()) -> None:
        self.kind = kind
        self.modules = tuple(modules)
        self._items: dict[str, T] = {}
        self._loaded = not self.modules

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # first: the modules below register into this registry
            for module in self.modules:
                importlib.import_module(module)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` on a class or function (or call it on one)."""
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; "
                f"choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_plugins(modules: Iterable[str] | None) -> None:
    """Import the user's plugin modules (they register their own entries); errors name the module."""
    for module in modules or ():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UnknownNameError(f"plugin module {module!r} cannot be imported: {exc}") from exc
