"""What each parse unit last saw, so that one unit's parse judges the cross-file rules deployment-wide.

Rule: after its parse, a unit (a loader's folder, ``source.discovery``) writes one small
JSON record next to the plan cache (``units-<tree digest>/<unit digest>.json``): the
YAML files it listed and, for each iflow file, its workflow name, its run parameters,
the workflows it runs and its resources' sizes. A unit's parse reads the records of
the other units as ``plan.facts.Foreign`` facts, so a workflow name another unit's file
owns, a ``run_workflow`` target in another unit, or a resource another unit sizes
differently is judged as if both files were in one folder
(``compiler.check_across_files``). The record's file list also tells a unit which of
its files left it (deleted or moved), whose last good versions it then forgets.

Reason: one parse of the whole folder grew with the folder; units keep each parse
small, but the rules are the deployment's.

Limits: the facts are as of the other unit's last parse (a change there reaches this
unit's errors at this unit's next parse; the dag-processor's upkeep re-parses the units
that report errors after any change); a record is read only when its file is at most
``MAX_RECORD_BYTES``; without a plan cache folder there are no records and each unit
is checked alone (``validate`` of the whole folder still checks everything).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from iflow_airflow.plan.facts import Facts, Foreign

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 16 << 20


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


class UnitRecords:
    """The records of one tree's units in ``folder``; best-effort: an unreadable record is no record."""

    def __init__(self, folder: Path | None, top: Path, unit: Path):
        self.folder = folder / f"units-{_digest(str(top))}" if folder is not None else None
        self.unit_rel = os.path.relpath(unit, top) if unit != top else "."
        self.path = self.folder / f"{_digest(self.unit_rel)}.json" if self.folder is not None else None

    def _records(self) -> Iterable[tuple[Path, dict[str, Any]]]:
        if self.folder is None:
            return
        try:
            names = sorted(n for n in os.listdir(self.folder) if n.endswith(".json") and not n.startswith("."))
        except OSError:
            return
        for n in names:
            p = self.folder / n
            try:
                if p.stat().st_size <= MAX_RECORD_BYTES:
                    yield p, json.loads(p.read_bytes())
            except (OSError, ValueError):
                continue

    def previous_files(self) -> set[str] | None:
        """The YAML files this unit listed at its last parse (None: no record)."""
        for p, data in self._records():
            if p == self.path and isinstance(data, dict):
                return {str(f) for f in data.get("files") or ()}
        return None

    def foreign(self) -> Foreign:
        """The facts of the other units' iflow files; records of units whose loader is gone are skipped."""
        out = Foreign()
        for p, data in self._records():
            if p == self.path or not isinstance(data, dict):
                continue
            try:
                out.facts += [Facts.from_json(d) for d in data.get("workflows") or ()]
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def save(self, listed: Iterable[str], facts: Iterable[Facts]) -> None:
        """Write this unit's record (atomically; never raises)."""
        if self.folder is None or self.path is None:
            return
        data = {"unit": self.unit_rel, "files": sorted(listed), "workflows": [f.to_json() for f in facts]}
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.info("iflow: cannot write the unit record %s: %s", self.path, exc)

    def drop_gone_units(self, top: Path, is_unit: Any) -> None:
        """Delete the records of units whose folder no longer has a loader (their files went to another unit)."""
        for p, data in self._records():
            rel = data.get("unit") if isinstance(data, dict) else None
            if p != self.path and isinstance(rel, str) and not is_unit(top / rel):
                try:
                    os.unlink(p)
                except OSError:
                    pass
