"""Which file owns a workflow name that two files claim (SPEC §1: names are unique).

Rule: the file that already owned the name keeps it; the newcomer gets the error.
Taking files in path order instead let a new file whose path sorts first take an
established workflow's DAG over (its history, permissions and schedule).

"Already owned" is known from a small ledger next to the plan cache (one JSON file
per dags folder, written atomically; every process that scans the folder reads and
updates it). Without a ledger entry (first scan, no cache, ``iflow-airflow validate``)
the file modified longest ago wins, then the path: a file just added is the newest.
Limit: a newcomer copied with its old modification time (``cp -p``) and scanned before
any ledger exists would win.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Protocol, Sequence


class Claimant(Protocol):
    path: Path
    display: str


def _age_key(c: Claimant) -> tuple[float, str]:
    try:
        mtime = c.path.stat().st_mtime
    except OSError:
        mtime = float("inf")
    return mtime, c.display


class NameLedger:
    """name -> owning file (relative to the dags folder), kept in ``folder``; best-effort:
    an unreadable or unwritable ledger behaves as an empty one, never as an error."""

    def __init__(self, folder: Path | None, root: Path, read_only: bool = False):
        self.root = root
        self.read_only = read_only  # a task process: it may parse an older bundle version (a git checkout)
        digest = hashlib.sha256(str(root.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.path = folder / f"names-{digest}.json" if folder is not None else None
        self.owners = self._read()

    def _read(self) -> dict[str, str]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def owner(self, name: str, claimants: Sequence[Claimant]) -> Claimant:
        """The claimant that keeps ``name``: the recorded owner if it still claims it, else the oldest."""
        recorded = self.owners.get(name)
        for c in claimants:
            if c.display == recorded:
                return c
        return min(claimants, key=_age_key)

    def save(self, owners: dict[str, str], scope: set[str] | None = None) -> None:
        """Record the current owners (only when they changed).

        ``scope``: the files the caller looked at (one parse unit); the ledger is re-read
        and only names whose owner is in ``scope`` are replaced, so units that share the
        ledger keep each other's entries. None: ``owners`` is the whole folder's.
        """
        if self.path is None or self.read_only:
            return
        if scope is not None:
            fresh = self._read()
            owners = {**{k: v for k, v in fresh.items() if v not in scope and k not in owners}, **owners}
        if owners == self.owners:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(owners, fh, sort_keys=True)
            os.replace(tmp, self.path)
            self.owners = dict(owners)
        except OSError:
            pass
