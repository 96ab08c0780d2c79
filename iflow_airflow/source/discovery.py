"""Which files of a dags folder are workflow files: YAML files that ``.airflowignore`` does not exclude.

Airflow's own ignore rules (``version_compat.ignore_rule_type``) applied by our
own walk, because Airflow's raises on a symlink loop (which would drop every
iflow DAG). Without Airflow (the CLI on a laptop) the folder is walked without
ignore rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iflow_airflow.constants import DEFAULTS_FILE_NAME as DEFAULTS_NAME
from iflow_airflow.constants import YAML_SUFFIXES


def iter_yaml_files(root: Path) -> Iterator[Path]:
    """YAML files under ``root`` that ``.airflowignore`` does not exclude (Airflow's own rules)."""
    try:
        from airflow.configuration import conf

        from iflow_airflow.version_compat import ignore_rule_type

        rule = ignore_rule_type(conf.get_mandatory_value("core", "DAG_IGNORE_FILE_SYNTAX", fallback="glob"))
    except ImportError:  # no Airflow (plain CLI use): walk without ignore rules
        rule = None
    for p in sorted(_walk(root, rule)):
        path = Path(p)
        if path.suffix.lower() in YAML_SUFFIXES and path.name != DEFAULTS_NAME and path.is_file():
            yield path


def _walk(root: Path, rule: Any, ignore_file: str = ".airflowignore") -> Iterator[str]:
    """Airflow's ``find_path_from_directory`` walk (symlinks followed, ignore files applied per
    folder and below), except that a folder reached a second time (a symlink loop such as
    ``dags/loop -> ..``) is skipped: Airflow raises there, which dropped every iflow DAG."""
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
            patterns_by_dir[real] = patterns
            kept.append(sub)
        dirs[:] = kept
        for name in files:
            if name != ignore_file and (rule is None or not rule.match(here / name, patterns)):
                yield str(here / name)
