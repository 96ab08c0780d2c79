"""Which files of a dags folder are workflow files, and which parse unit each one belongs to.

Workflow files are YAML files that ``.airflowignore`` does not exclude: Airflow's own
ignore rules (``version_compat.ignore_rule_type``) applied by our own walk, because
Airflow's raises on a symlink loop (which would drop every iflow DAG). Without Airflow
(the CLI on a laptop) the folder is walked without ignore rules.

**Parse units.** A *loader* is a ``.py`` file that calls ``load_workflows`` (the
shipped ``iflow_dags.py``). Airflow 3.3 parses each ``.py`` file as one unit, so a
folder with its own loader is its own unit: a YAML file belongs to the nearest loader
at or above its folder, and a loader's walk stops at a sub-folder that has its own
(:func:`iter_yaml_files` with ``own_unit``). Names, defaults and error keys stay
relative to the *tree root*, the outermost folder holding a loader
(:func:`tree_root`), so moving files between units changes none of them. Reason: one
unit's parse grows with its files; sub-folder loaders keep every parse small (issue:
10,000 workflows). Limit: a loader that ``.airflowignore`` excludes is no loader (its
folder belongs to the unit above), and a loader must name ``load_workflows`` literally.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iflow_airflow.constants import DEFAULTS_FILE_NAME as DEFAULTS_NAME
from iflow_airflow.constants import YAML_SUFFIXES

LOADER_MARK = b"load_workflows"
LOADER_READ_MAX = 1 << 20  # a loader is a few lines; a larger .py file is read only this far
_loader_cache: dict[str, tuple[int, int, bool]] = {}


def is_loader(path: Path) -> bool:
    """True for a ``.py`` file that calls ``load_workflows`` (read again only when its mtime or size changes)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    key = str(path)
    cached = _loader_cache.get(key)
    if cached is None or cached[:2] != (st.st_mtime_ns, st.st_size):
        try:
            with open(path, "rb") as fh:
                found = LOADER_MARK in fh.read(LOADER_READ_MAX)
        except OSError:
            found = False
        cached = (st.st_mtime_ns, st.st_size, found)
        _loader_cache[key] = cached
    return cached[2]


def has_loader(folder: Path) -> bool:
    """True when ``folder`` itself holds a loader file (its own parse unit)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return any(n.endswith(".py") and is_loader(folder / n) for n in sorted(names))


def tree_root(folder: Path, stop: Path | None = None) -> Path:
    """The outermost folder at or above ``folder`` that holds a loader, not above ``stop`` (resolved).

    ``stop`` is the bundle (the dags folder) when known. Workflow names, defaults and
    error keys are relative to the tree root, whichever unit parses a file.
    """
    at = best = Path(folder).resolve()
    limit = stop.resolve() if stop is not None else None
    while True:
        if has_loader(at):
            best = at
        if at == limit or at.parent == at:
            return best
        at = at.parent


def unit_of(path: Path, top: Path) -> Path:
    """The folder of the loader that parses ``path`` (a file or folder below ``top``): the nearest one at or above it."""
    at = path if path.is_dir() else path.parent
    top_r = top.resolve()
    while True:
        if has_loader(at) or at.resolve() == top_r or at.parent == at:
            return at
        at = at.parent


def iter_yaml_files(root: Path, own_unit: bool = False) -> Iterator[Path]:
    """YAML files under ``root`` that ``.airflowignore`` does not exclude (Airflow's own rules).

    ``own_unit``: only ``root``'s own parse unit, i.e. not below a sub-folder with its own loader.
    """
    try:
        from airflow.configuration import conf

        from iflow_airflow.version_compat import ignore_rule_type

        rule = ignore_rule_type(conf.get_mandatory_value("core", "DAG_IGNORE_FILE_SYNTAX", fallback="glob"))
    except ImportError:  # no Airflow (plain CLI use): walk without ignore rules
        rule = None
    for p in sorted(_walk(root, rule, stop_at_units=own_unit)):
        path = Path(p)
        if path.suffix.lower() in YAML_SUFFIXES and path.name != DEFAULTS_NAME and path.is_file():
            yield path


def _own_loader(folder: Path, rule: Any, patterns: list[Any]) -> bool:
    """``folder`` holds a loader that the ignore rules leave to Airflow (so it is a parse unit)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return False
    return any(n.endswith(".py") and is_loader(folder / n)
               and (rule is None or not rule.match(folder / n, patterns)) for n in names)


def _walk(root: Path, rule: Any, ignore_file: str = ".airflowignore", stop_at_units: bool = False) -> Iterator[str]:
    """Airflow's ``find_path_from_directory`` walk (symlinks followed, ignore files applied per
    folder and below), except that a folder reached a second time (a symlink loop such as
    ``dags/loop -> ..``) is skipped: Airflow raises there, which dropped every iflow DAG.
    ``stop_at_units``: a sub-folder with its own loader is not entered (another unit's)."""
    patterns_by_dir: dict[Path, list[Any]] = {root.resolve(): []}
    for folder, dirs, files in os.walk(root, followlinks=True):
        here = Path(folder)
        patterns = list(patterns_by_dir.get(here.resolve(), []))
        if rule is not None and (here / ignore_file).is_file():
            with open(here / ignore_file) as fh:
                lines = [re.sub(r"\s*#.*", "", line) for line in fh.read().split("\n")]
            patterns += [r for r in (rule.compile(line, root, here / ignore_file) for line in lines if line) if r]
        kept = []
        for sub in dirs:
            real = (here / sub).resolve()
            if real in patterns_by_dir or (rule is not None and rule.match(here / sub, patterns)):
                continue
            if stop_at_units and _own_loader(here / sub, rule, patterns):
                continue
            patterns_by_dir[real] = patterns
            kept.append(sub)
        dirs[:] = kept
        for name in files:
            if name != ignore_file and (rule is None or not rule.match(here / name, patterns)):
                yield str(here / name)
