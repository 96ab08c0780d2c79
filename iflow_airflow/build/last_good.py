"""The last good version of every workflow file, so that a bad edit loses nothing (SPEC §5).

Airflow's plain dags folder (``LocalDagBundle``) has no versions, and a task process
loads its DAG by re-parsing the loader: without a copy of the last valid YAML, a typo
saved mid-run makes every later task of that run "Dag not found". So each parse that
finds a file valid keeps its bytes (and its ``iflow.defaults.yaml`` chain as read) in
the **store**; a parse that finds it invalid compiles the stored copy instead, and the
DAG says so on its page (description, docs banner with since-when and every problem
with file:line, tag ``iflow:last-good``). ``[iflow] on_invalid`` chooses:

* ``keep_last_good`` (default): the last good DAG stays listed, scheduled, triggerable;
* ``pause``: the same DAG, tagged ``iflow:paused-while-invalid``; the dag-processor's
  upkeep (``runtime/dag_processor.py``) pauses it and unpauses it once the file is fixed;
* ``hide``: no DAG while the file is invalid (Airflow's own behaviour for a broken
  ``.py`` file; runs in flight then fail to load their tasks).

Rules and limits:

* One JSON file per workflow file, named by the SHA-256 of its path relative to the
  dags folder, holding a SHA-256 of its own content. Written to a temporary file and
  ``os.replace``d, so readers see a whole entry or the previous one. A corrupt, foreign
  or unreadable entry counts as none (logged); nothing in it is executed: it is YAML
  text that goes through the same validation (and ``allowed_modules``) as the file.
* The folder (``[iflow] last_good_store``; default ``$AIRFLOW_HOME/iflow-last-good``)
  must be the same for every component that loads DAGs: the dag-processor writes it,
  and workers read it (``docker-compose.yaml`` mounts one volume into all of them). It
  is created ``0700`` and not used if another user owns it or others may write it.
* A file that was never valid has no entry: it is only an error. A file that is gone
  from the dags folder loses its entry (a deliberate delete: the workflow goes away).
  A file that no longer looks like an iflow file (``workflow:`` misspelt) but had an
  entry is an invalid file, not a deleted one.
* One store serves one dags folder (entries are keyed by the relative path).
* Only the dag-processor writes; task processes read (``from_config(read_only=True)``):
  with a versioned bundle a task parses its run's version of the files, which is then
  simply compiled (valid) or falls back to the newest last good version (invalid).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from iflow_airflow.errors import WorkflowFileError

log = logging.getLogger(__name__)

FORMAT = 1
TAG_LAST_GOOD = "iflow:last-good"
TAG_PAUSED = "iflow:paused-while-invalid"
MAX_PROBLEMS_SHOWN = 20


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


@dataclass(frozen=True)
class Entry:
    """A file's last good bytes (as text), its defaults chain then, and when it was saved / broke."""

    display: str
    text: str
    defaults: tuple[tuple[str, str], ...]
    saved_at: float
    broken_since: float | None = None

    def content_digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.display, self.text, *(p for d in self.defaults for p in d)):
            h.update(part.encode("utf-8", "surrogatepass") + b"\0")
        return h.hexdigest()

    def to_json(self) -> bytes:
        body = {"format": FORMAT, "display": self.display, "text": self.text,
                "defaults": [list(d) for d in self.defaults], "saved_at": self.saved_at,
                "broken_since": self.broken_since}
        body["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Entry:
        """The entry in ``data``; raises ``ValueError`` for anything not written by ``to_json``."""
        body = json.loads(data.decode("utf-8"))
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError("not a last good entry of this format")
        digest = body.pop("sha256", None)
        if digest != hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest():
            raise ValueError("checksum mismatch")
        defaults = tuple((str(f), str(t)) for f, t in body["defaults"])
        since = body["broken_since"]
        return cls(str(body["display"]), str(body["text"]), defaults, float(body["saved_at"]),
                   None if since is None else float(since))


def entry_for(c: Any, now: float | None = None) -> Entry | None:
    """The entry a valid ``Compiled`` would leave (None when its bytes or defaults are not at hand)."""
    if c.raw is None or any(not isinstance(getattr(d, "text", None), str) for d in c.defaults):
        return None
    try:
        text = c.raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return Entry(c.display, text, tuple((d.file, d.text) for d in c.defaults), now or time.time())


class LastGoodStore:
    """Entries in one folder. Every method is best-effort: a failure is logged, never raised."""

    def __init__(self, folder: Path | str, read_only: bool = False):
        self.folder = Path(folder)
        self.read_only = read_only  # a task process: reads only (see ``from_config``)

    @staticmethod
    def name_of(display: str) -> str:
        return hashlib.sha256(display.encode("utf-8", "surrogatepass")).hexdigest()[:40] + ".json"

    def get(self, display: str) -> Entry | None:
        return self._read(self.folder / self.name_of(display))

    def _read(self, path: Path) -> Entry | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("iflow last good store: cannot read %s: %s", path, exc)
            return None
        try:
            return Entry.from_json(data)
        except Exception as exc:  # corrupt / foreign: as if there were none
            log.warning("iflow last good store: ignoring unusable %s: %s", path, exc)
            return None

    def put(self, entry: Entry) -> bool:
        if self.read_only:
            return False
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(entry.to_json())
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.folder / self.name_of(entry.display))
            except BaseException:
                with _quiet():
                    os.unlink(tmp)
                raise
        except Exception as exc:  # a read-only store (a worker's mount): the dag-processor writes it
            log.info("iflow last good store: cannot write %s: %s", self.folder, exc)
            return False
        return True

    def remember(self, entry: Entry) -> None:
        """Keep ``entry`` as the file's last good version unless the same content is already kept as healthy."""
        old = self.get(entry.display)
        if old is None or old.broken_since is not None or old.content_digest() != entry.content_digest():
            self.put(entry)

    def mark_broken(self, entry: Entry, since: float) -> Entry:
        """The entry with its ``broken_since`` set (stored once: the first parse that saw the file invalid)."""
        if entry.broken_since is not None:
            return entry
        marked = dataclasses.replace(entry, broken_since=since)
        self.put(marked)
        return marked

    def forget(self, display: str) -> None:
        if self.read_only:
            return
        with _quiet():
            os.unlink(self.folder / self.name_of(display))

    def others(self, displays: Iterable[str]) -> list[Entry]:
        """Entries of files other than ``displays`` (files that are gone, ignored or no longer iflow files)."""
        known = {self.name_of(d) for d in displays}
        try:
            names = [n for n in os.listdir(self.folder) if n.endswith(".json") and not n.startswith(".")]
        except OSError:
            return []
        found = (self._read(self.folder / n) for n in sorted(set(names) - known))
        return [e for e in found if e is not None]


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)


def folder_from_config() -> Path | None:
    """``[iflow] last_good_store`` as a folder; None when it is ``off``."""
    from iflow_airflow import settings
    from iflow_airflow.plan import cache as plan_cache

    value = settings.get("last_good_store").strip()
    if value.lower() in plan_cache.OFF_VALUES:
        return None
    return Path(value).expanduser() if value else plan_cache.airflow_home() / "iflow-last-good"


def from_config(read_only: bool = False) -> LastGoodStore | None:
    """The configured store, or None when it is off or its folder is not safe to use.

    Task processes open it ``read_only``: with a versioned bundle (``GitDagBundle``) a task
    parses the loader at its run's bundle version, whose files must not replace the newest
    last good version; only the dag-processor (and tools) write.
    """
    from iflow_airflow.plan import cache as plan_cache

    try:
        folder = folder_from_config()
        if folder is None or not plan_cache.safe_folder(folder, "last good store", need_write=False):
            return None
        return LastGoodStore(folder, read_only)
    except Exception as exc:  # the store must never stop DAGs from loading
        log.warning("iflow last good store disabled: %s: %s", type(exc).__name__, exc)
        return None


def banner(entry: Entry, error: WorkflowFileError, policy: str) -> tuple[str, str]:
    """(description, docs banner) of a DAG running its last good version: since when, and every problem."""
    since = _stamp(entry.broken_since or time.time())
    state = "paused while its file is invalid" if policy == "pause" else "running its last good version"
    first = error.problems[0] if error.problems else None
    short = (f"⚠ {state}: {entry.display} is invalid since {since}"
             + (f" ({first.location()}: {first.message})" if first else "") + ".")
    shown = error.problems[:MAX_PROBLEMS_SHOWN]
    more = len(error.problems) - len(shown)
    lines = [f"> **⚠ This workflow is {state}** (saved {_stamp(entry.saved_at)}).",
             f"> `{entry.display}` has been invalid since **{since}**; the DAG below is the last version "
             "that was valid. Fix the file and it is replaced within seconds.", ">"]
    lines += [f"> - `{p.location()}` {p.key_path or ''}: {p.message}" for p in shown]
    if more:
        lines.append(f"> - ... and {more} more (all in the import errors)")
    return short[:1000], "\n".join(lines)


def last_good_plan(plan: Any, policy: str) -> Any:
    """The plan, tagged for the UI (tags are searchable in the DAG list)."""
    tags = tuple(plan.tags) + ((TAG_LAST_GOOD, TAG_PAUSED) if policy == "pause" else (TAG_LAST_GOOD,))
    return dataclasses.replace(plan, tags=tags)


def defaults_docs(entry: Entry) -> Sequence[Any]:
    from iflow_airflow.source import reader as yaml_source

    return [yaml_source.parse(f, t) for f, t in entry.defaults]
