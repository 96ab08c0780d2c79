"""An on-disk cache of compiled workflow plans, for the dag-processor's re-parses.

Airflow re-parses the loader every ``min_file_process_interval`` (30 s) in a
fresh process, and almost every file is unchanged since the last parse. A plan
depends only on the file's bytes, its name, its ``iflow.defaults.yaml`` chain,
the ``[iflow]`` settings and the code that compiles it, so a plan compiled
once can be reused until one of those changes:

* **Key**: SHA-256 over a format number, the Python version, the size and
  mtime of every source file of this package and of the libraries whose
  behaviour a plan depends on (PyYAML, pydantic, pydantic-core, pendulum,
  croniter), the settings, the file's display name and bytes, and every
  defaults file's name and text. Any change gives a new key; nothing is ever
  invalidated in place.
* **Only what is safe to reuse is stored**: successful plans without
  ``callable:`` or custom ``operator:`` actions and without extensions (custom
  strategies, resolvers, monitors) and without email/Slack alert channels: those
  are checked against importable code, installed providers
  and installed entry points, which can change without any file changing
  (``cacheable``; whatever else comes to read the environment while planning
  must be excluded there too). Errors are never cached: a broken file is
  compiled every time.
* **Writes** go to a temporary file in the cache folder, then ``os.replace``:
  concurrent writers of one key write the same bytes and readers see a whole
  file or none.
* **Reads** check a header with the payload's SHA-256, then unpickle with an
  allow-list (plan dataclasses, dates and time zones only: no other class or
  function can be reached). Every plan is read back before it is stored, so
  a plan that does not survive the round trip unchanged is not stored.
  A short, corrupt, foreign or unreadable file counts as a miss and the file
  is compiled as if there were no cache.
* The folder is created ``0700``; a folder owned by another user or writable
  by group or others is not used (a planted plan would become a DAG).
* Entries used in the last day are kept; on a miss, entries untouched for
  ``MAX_AGE_DAYS`` are removed (at most once per process).

``[iflow] plan_cache`` (``AIRFLOW__IFLOW__PLAN_CACHE``): empty (default) uses
``$AIRFLOW_HOME/iflow-cache``; a path uses that folder; ``off`` turns it off.
The DAG loader and the folder scans of the resource keeper and the iflow page
use the cache; the CLI and ``compile_file`` without a ``cache`` argument always
compile.
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import logging
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from iflow_airflow.plan import ir as plan_types
from iflow_airflow.plan.ir import CallableAction, OperatorAction, WorkflowPlan

log = logging.getLogger(__name__)

FORMAT = 3  # 2: class paths moved to the stage folders (plan.ir); 3: groups, for_each, run_workflow
MAGIC = b"IFLOWPLAN1\n"
MAX_AGE_DAYS = 14
TOUCH_AFTER_S = 24 * 3600
OFF_VALUES = ("off", "false", "no", "0", "none", "disabled")
DEPENDENCIES = ("yaml", "_yaml", "pydantic", "pydantic_core", "pendulum", "croniter")

# Everything a pickled plan may name: nothing that runs code or reaches other objects.
_ALLOWED: dict[str, frozenset[str]] = {
    "iflow_airflow.plan.ir": frozenset(
        name for name, obj in vars(plan_types).items()
        if isinstance(obj, type) and obj.__module__ == plan_types.__name__ and hasattr(obj, "__dataclass_fields__")),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "pendulum.datetime": frozenset({"DateTime"}),
    "pendulum.date": frozenset({"Date"}),
    "pendulum.time": frozenset({"Time"}),
    "pendulum.duration": frozenset({"Duration"}),
    "pendulum.tz.timezone": frozenset({"Timezone", "FixedTimezone"}),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a plan cache file")


def _reducers() -> dict[type, Any]:
    """How pendulum values are stored, so that they come back exactly and need nothing off the allow-list.

    ``zoneinfo`` pickles a zone through ``getattr(cls, '_unpickle')``: stored by its name instead.
    pendulum's ``DateTime`` pickles without ``fold`` (and pendulum's default fold is 1): stored with it.
    """
    try:
        from pendulum.datetime import DateTime
        from pendulum.tz.timezone import Timezone
    except ImportError:  # pragma: no cover - pendulum is a dependency
        return {}

    def datetime_(d: Any) -> tuple:
        fields = (d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond, d.tzinfo)
        return copyreg.__newobj_ex__, (DateTime, fields, {"fold": d.fold})  # type: ignore[attr-defined]

    return {Timezone: lambda tz: (Timezone, (tz.key,)), DateTime: datetime_}


def dumps(plan: WorkflowPlan) -> bytes:
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _reducers()
    pickler.dump(plan)
    payload = buf.getvalue()
    return MAGIC + hashlib.sha256(payload).digest() + payload


def loads(data: bytes) -> WorkflowPlan:
    """The plan in ``data``; raises ``ValueError`` (or an unpickling error) for anything else."""
    head = len(MAGIC) + 32
    if len(data) < head or not data.startswith(MAGIC):
        raise ValueError("not a plan cache file")
    payload = data[head:]
    if hashlib.sha256(payload).digest() != data[len(MAGIC):head]:
        raise ValueError("checksum mismatch")
    plan = _Unpickler(io.BytesIO(payload)).load()
    if not isinstance(plan, WorkflowPlan):
        raise ValueError(f"not a plan: {type(plan).__name__}")
    return plan


def cacheable(plan: WorkflowPlan) -> bool:
    """Plans whose meaning depends on importable code or entry points are always recompiled."""
    from iflow_airflow.constants import BUILTIN_RESOLVERS, BUILTIN_STRATEGIES

    if plan.monitors or plan.settings.strategy not in BUILTIN_STRATEGIES \
            or plan.settings.conflict_resolution not in BUILTIN_RESOLVERS:  # extensions (entry points)
        return False
    if plan.alerts.email or plan.alerts.slack:  # checked against installed providers (plan/alerting.py)
        return False
    return not any(isinstance(t.action, (CallableAction, OperatorAction)) for t in plan.tasks)


_environment: str | None = None


def _stat_line(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return f"{path}:missing"


def environment_fingerprint() -> str:
    """The code a plan comes from: Python, this package's sources, the libraries it relies on (once per process)."""
    global _environment
    if _environment is None:
        import importlib.util

        parts = [f"format={FORMAT}", sys.version, sys.implementation.cache_tag or ""]
        package = Path(__file__).resolve().parent
        for folder, dirs, files in os.walk(package):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            parts += [_stat_line(os.path.join(folder, f)) for f in sorted(files) if f.endswith(".py")]
        for name in DEPENDENCIES:
            module = sys.modules.get(name)
            origin = getattr(module, "__file__", None) if module is not None else None
            if origin is None:
                try:
                    spec = importlib.util.find_spec(name)
                    origin = spec.origin if spec else None
                except (ImportError, ValueError):
                    origin = None
            parts.append(f"{name}=" + (_stat_line(origin) if origin else "absent"))
        _environment = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return _environment


def safe_folder(folder: Path, what: str = "plan cache", *, need_write: bool = True) -> bool:
    """Create ``folder`` 0700 if missing; False (logged) if another user owns it or others may write it.

    A planted file there would become a DAG, so such a folder is not used at all.
    """
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.stat()
    except OSError as exc:
        log.info("iflow %s %s is not usable (%s)", what, folder, exc)
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        log.warning("iflow %s %s belongs to another user; not using it", what, folder)
        return False
    if st.st_mode & 0o022:
        log.warning("iflow %s %s is writable by group or others; not using it", what, folder)
        return False
    if need_write and not os.access(folder, os.W_OK | os.X_OK):
        log.info("iflow %s %s is not writable; not using it", what, folder)
        return False
    return True


class PlanCache:
    """Plans by key in one folder. Every method is best-effort: a failure is a miss, never an error."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0
        self._pruned = False

    def key(self, display: str, raw: bytes, defaults: Sequence[Any], settings: Any) -> str | None:
        """The key of one file's plan; None when it must not be cached (a defaults file is broken)."""
        h = hashlib.sha256()
        for part in (environment_fingerprint(), repr(settings), display):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        h.update(hashlib.sha256(raw).digest())
        for doc in defaults:
            text = getattr(doc, "text", None)
            if not isinstance(text, str):  # a WorkflowFileError: the file fails anyway, do not cache
                return None
            h.update(doc.file.encode("utf-8", "surrogatepass") + b"\0")
            h.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.plan"

    def get(self, key: str) -> WorkflowPlan | None:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                data = f.read()
                mtime = os.fstat(f.fileno()).st_mtime
        except OSError:
            self.misses += 1
            return None
        try:
            plan = loads(data)
        except Exception as exc:
            log.info("ignoring unusable iflow plan cache file %s: %s", path, exc)
            self.misses += 1
            return None
        if time.time() - mtime > TOUCH_AFTER_S:
            try:
                os.utime(path)  # still in use: keep it past the next pruning
            except OSError:
                pass
        self.hits += 1
        return plan

    def put(self, key: str, plan: WorkflowPlan) -> bool:
        """Store ``plan`` if it is safe to reuse and survives a round trip unchanged."""
        if not cacheable(plan):
            return False
        try:
            data = dumps(plan)
            if loads(data) != plan:
                return False
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".plan")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self._path(key))
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except Exception as exc:
            log.info("could not store an iflow plan in %s: %s", self.folder, exc)
            return False
        self._prune()
        return True

    def _prune(self) -> None:
        if self._pruned:
            return
        self._pruned = True
        limit = time.time() - MAX_AGE_DAYS * 86400
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    if entry.name.endswith(".plan") and entry.is_file(follow_symlinks=False):
                        try:
                            if entry.stat(follow_symlinks=False).st_mtime < limit:
                                os.unlink(entry.path)
                        except OSError:
                            pass
        except OSError:
            pass


def _config_value() -> str:
    from iflow_airflow import settings

    return settings.get("plan_cache") or ""


def airflow_home() -> Path:
    try:
        from airflow.configuration import AIRFLOW_HOME

        return Path(AIRFLOW_HOME)
    except Exception:
        return Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser()


_from_config: dict[str, PlanCache | None] = {}


def from_config() -> PlanCache | None:
    """The configured cache (``[iflow] plan_cache``), or None when it is off or its folder is unusable."""
    try:
        value = _config_value().strip()
        if value.lower() in OFF_VALUES:
            return None
        folder = Path(value).expanduser() if value else airflow_home() / "iflow-cache"
        key = str(folder)
        if key not in _from_config:
            _from_config[key] = PlanCache(folder) if safe_folder(folder) else None
        return _from_config[key]
    except Exception as exc:  # a cache problem must never stop DAGs from loading
        log.info("iflow plan cache disabled: %s: %s", type(exc).__name__, exc)
        return None
