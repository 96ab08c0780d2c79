"""Demo callables for ``callable:`` tasks: no network, no shell, files only where told.

They show the calling convention: static ``args``/``kwargs`` from the workflow,
plus ``iflow_results`` (``{upstream_task_id: result}``) and ``iflow_params``
(the run's params) when the function asks for them by name.
"""

from __future__ import annotations

import os
from typing import Any


def summarize(text: str = "", iflow_results: dict[str, Any] | None = None) -> str:
    """One line: ``text`` followed by ``task=result`` for each upstream result, in task order."""
    parts = [text] if text else []
    for task_id in sorted(iflow_results or {}):
        parts.append(f"{task_id}={iflow_results[task_id]}")
    return "; ".join(parts)


def add(a: float, b: float) -> float:
    """``a + b``: a result that is not a string (it reaches commands JSON-encoded)."""
    return a + b


def greet(name: str = "world", iflow_params: dict[str, Any] | None = None) -> str:
    """``hello <name>``, where a run param ``name`` wins over the static argument."""
    return f"hello {(iflow_params or {}).get('name', name)}"


def fail_once(marker_path: str) -> str:
    """Fail the first time it is called for ``marker_path`` and succeed afterwards (to show retries)."""
    if not os.path.exists(marker_path):
        with open(marker_path, "w", encoding="utf-8") as fh:
            fh.write("failed once\n")
        raise RuntimeError(f"fail_once: first call for {marker_path}; the next try will succeed")
    return "succeeded after a failure"


class Text:
    """Shows the ``"pkg.mod:Class.method"`` form."""

    @staticmethod
    def upper(text: str) -> str:
        return text.upper()


def tag_item(prefix: str = "item", iflow_item: Any = None) -> dict[str, Any]:
    """``{"tag": "<prefix>:<item>"}`` for one item of a ``for_each`` task (the ``iflow_item`` keyword)."""
    return {"tag": f"{prefix}:{iflow_item}"}
