"""The one scanner of installed packages' entry points (operator kinds, strategies, resolvers, monitors).

Rule: the first registration of a name wins (``importlib.metadata`` order), and
a built-in name cannot be taken by a package. Nothing is imported here: an entry
point is only *named*; loading it is the caller's business, after the module
allow-list said yes (``[iflow] allowed_modules``).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable


def registered(group: str, builtins: Iterable[str] = ()) -> dict[str, importlib.metadata.EntryPoint]:
    """Entry points of ``group`` by name, first registration first, built-in names left out."""
    taken = set(builtins)
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=group):
        if ep.name not in taken:
            found.setdefault(ep.name, ep)
    return found


def module_of(ep: importlib.metadata.EntryPoint) -> str:
    """The module an entry point names (``pkg.mod`` of ``pkg.mod:Class``), for the allow-list check."""
    return ep.value.partition(":")[0].strip()
