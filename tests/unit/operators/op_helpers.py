"""Shared by the operator tests: hostile values, a fake task instance and a context.

Operators are executed directly with a small fake context (params + a fake task
instance that answers ``xcom_pull``), so the shell-safety, environment, result and
error rules are checked exactly and fast, without an Airflow database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iflow_airflow.settings import IflowSettings

EXAMPLES = IflowSettings(allowed_modules=("iflow_airflow.examples",))

HOSTILE = [
    "$(touch {marker})",
    "`touch {marker}`",
    "; touch {marker}",
    "a && touch {marker} || touch {marker}",
    "line1\ntouch {marker}\n",
    "'\"'; touch {marker}; echo '",
    "$HOME ${PATH} \\$ \\\\ * ? [a] ~ !! %s %d",
    "ünïcödé ✓ 完整的",
]


class FakeTI:
    """Stands in for the task SDK's RuntimeTaskInstance: identity plus ``xcom_pull``."""

    def __init__(self, xcoms: dict[str, Any] | None = None, **identity: Any) -> None:
        self.xcoms = xcoms or {}
        self.pulled: list[tuple[Any, str]] = []
        self.dag_id = identity.get("dag_id", "wf")
        self.run_id = identity.get("run_id", "manual__2026-01-01")
        self.task_id = identity.get("task_id", "t")
        self.try_number = identity.get("try_number", 1)

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        self.pulled.append((task_ids, key))
        return self.xcoms.get(task_ids)


def ctx(params: dict[str, Any] | None = None, xcoms: dict[str, Any] | None = None, **identity: Any) -> dict:
    return {"params": dict(params or {}), "ti": FakeTI(xcoms, **identity)}


def marker_values(tmp_path: Path) -> tuple[Path, list[str]]:
    marker = tmp_path / "pwned"
    return marker, [v.replace("{marker}", str(marker)) for v in HOSTILE]


