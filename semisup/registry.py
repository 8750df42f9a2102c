"""Registries of plug-in classes: built-in names, installed entry points, ``module:Class`` paths.

Every extension point of semisup (pretext tasks, temporal aggregators) is a
:class:`Registry` of subclasses of one base class. A recipe names a class in
one of three ways:

* a built-in name, registered with the registry's decorator
  (``@register_pretext("sesemi")``);
* the name of an entry point that an installed package declares in the
  registry's group (``[project.entry-points."semisup.pretext"]``);
* a ``package.module:Class`` path importable from ``PYTHONPATH``.

A plug-in that fails to import, or is not a subclass of the base, is a
one-line :class:`~semisup.errors.SemisupError` naming it.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from semisup.errors import SemisupError

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class CatalogueEntry:
    """One class a registry can hand out, as ``semisup pretext list`` shows it."""

    name: str
    source: str
    description: str


class Registry(Generic[T]):
    """Classes of one kind by name.

    Args:
        kind: what the classes are, for messages (``"pretext task"``).
        base: the class every entry must subclass.
        group: the entry-point group of installed plug-ins (``"semisup.pretext"``).
        listing: the command that lists the entries, for messages.

    Example:
        >>> class Base: name = ""
        >>> shapes = Registry("shape", Base, "semisup.example-shapes", "nothing")
        >>> @shapes.register("square")
        ... class Square(Base): pass
        >>> shapes.get("square") is Square, Square.name
        (True, 'square')
        >>> shapes.get("squar")
        Traceback (most recent call last):
        ...
        semisup.errors.SemisupError: recipe: unknown shape 'squar' (did you mean "square"?); give a registered name (see `nothing`) or a package.module:Class path
    """

    def __init__(self, kind: str, base: T, group: str, listing: str) -> None:
        self.kind, self.base, self.group, self.listing = kind, base, group, listing
        self._builtins: dict[str, T] = {}

    @property
    def short(self) -> str:
        """The kind's first word, for "pretext plug-in ..." messages."""
        return self.kind.split()[0]

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator that makes a class available to recipes by ``name``."""

        def add(cls: T) -> T:
            if name in self._builtins and self._builtins[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self._builtins[name].__module__}")
            cls.name = name
            self._builtins[name] = cls
            return cls

        return add

    def builtins(self) -> dict[str, T]:
        """The built-in (and in-process registered) classes by name."""
        return dict(self._builtins)

    def entry_points(self) -> dict[str, Any]:
        """Installed plug-ins: the entry points of the registry's group, by name."""
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=self.group)}

    def get(self, name: str, where: str = "recipe") -> T:
        """Look up a class: a built-in name, an installed plug-in's entry-point
        name, or a ``"package.module:Class"`` path.

        Raises:
            SemisupError: unknown name (with a did-you-mean), or a plug-in that
                does not import or is not a subclass of the base.
        """
        if name in self._builtins:
            return self._builtins[name]
        plugins = self.entry_points()
        if name in plugins:
            return self._load_entry_point(plugins[name], where)
        if ":" in name:
            return self._load_path(name, where)
        known = sorted({*self._builtins, *plugins})
        guess = difflib.get_close_matches(name, known, n=1)
        hint = f'did you mean "{guess[0]}"?' if guess else "known: " + ", ".join(known)
        raise SemisupError(f"{where}: unknown {self.kind} {name!r} ({hint}); give a registered name "
                           f"(see `{self.listing}`) or a package.module:Class path")

    def catalogue(self) -> list[CatalogueEntry]:
        """Every class found: built-ins, then installed plug-ins (a broken one says why)."""
        def summary(cls: type) -> str:
            return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

        out = [CatalogueEntry(n, "built-in" if c.__module__.startswith("semisup.") else c.__module__, summary(c))
               for n, c in sorted(self._builtins.items())]
        for name, ep in sorted(self.entry_points().items()):
            try:
                description = summary(self._load_entry_point(ep, "plug-in"))
            except SemisupError as exc:
                description = f"BROKEN: {str(exc).split(': ', 1)[-1]}"
            out.append(CatalogueEntry(name, f"plug-in {_dist_name(ep)} ({ep.value})", description))
        return out

    def _check(self, cls: Any, what: str, where: str) -> T:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise SemisupError(f"{where}: {what} is not a {self.base.__name__} subclass")
        return cls

    def _load_entry_point(self, ep: Any, where: str) -> T:
        try:
            cls = ep.load()
        except Exception as exc:  # any error inside the plug-in is the plug-in's
            raise SemisupError(f"{where}: {self.short} plug-in {ep.name!r} ({ep.value}, package {_dist_name(ep)}) "
                               f"failed to import: {type(exc).__name__}: {exc}") from exc
        cls = self._check(cls, f"{self.short} plug-in {ep.name!r} ({ep.value})", where)
        cls.name = ep.name
        return cls

    def _load_path(self, path: str, where: str) -> T:
        module_name, _, attr = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # any error inside the plug-in is the plug-in's
            raise SemisupError(f"{where}: {self.short} plug-in {path!r} failed to import: "
                               f"{type(exc).__name__}: {exc}") from exc
        if not hasattr(module, attr):
            raise SemisupError(f"{where}: {self.short} plug-in {path!r}: no class {attr!r} in module "
                               f"{module_name!r} ({getattr(module, '__file__', None) or 'no file'})")
        cls = self._check(getattr(module, attr), repr(path), where)
        if not cls.name:
            cls.name = path
        return cls


def _dist_name(ep: Any) -> str:
    """The name of the package that installed an entry point ("?" if unknown)."""
    return getattr(getattr(ep, "dist", None), "name", None) or "?"
