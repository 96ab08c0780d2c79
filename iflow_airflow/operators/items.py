"""``for_each: {param: ...}`` / ``{result: ...}``: read the list a mapped task fans out over, at run time.

Airflow maps a task over an upstream's XCom only if that XCom is a list (else
it fails the *upstream* with ``UnmappableXComTypePushed``), and a run
parameter is no XCom at all. So each such task gets one ``<id>__items`` task
that reads the value, checks it is a list (a JSON list, when it is text, as a
command's last line is) and keeps it; the mapped task expands over it.

Rule: a value that is not a list fails this task with a message naming the
upstream task (or parameter) and what it returned; an empty list is kept, so
Airflow skips the mapped task, and the log says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

SHOWN_CHARS = 200


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def as_items(value: Any, what: str) -> list[Any]:
    """``value`` as a list of items: a list, or text holding a JSON list; else a clear error naming ``what``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise AirflowFailException(f"for_each: {what} returned {_shown(value)!r}, which is not a JSON list "
                                       "(expected text such as [\"eu\", \"us\"] as its result)") from None
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise AirflowFailException(f"for_each: {what} returned {_shown(value)}, a {type(value).__name__}, "
                                   "not a list")
    return value


class IflowItemsOperator(BaseOperator):
    """Keep the items of ``mapped_task``: run parameter ``param`` or the result of task ``result``.

    Always keeps its list as XCom (the mapped task needs it, whatever
    ``state_persistence`` says). Nothing is Jinja-rendered. Not retried: a
    wrong value will not be right on a second read.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#f4f4f4"

    def __init__(self, *, mapped_task: str, param: str | None = None, result: str | None = None,
                 **kwargs: Any) -> None:
        kwargs["do_xcom_push"] = True
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        if (param is None) == (result is None):
            raise ValueError(f"task {self.task_id!r}: give exactly one of param or result")
        self.mapped_task, self.param, self.result = mapped_task, param, result

    def execute(self, context: Any) -> list[Any]:
        if self.param is not None:
            value, what = (context.get("params") or {}).get(self.param), f"run parameter {self.param!r}"
        else:
            value = context["ti"].xcom_pull(task_ids=self.result, key="return_value")
            what = f"upstream task {self.result!r}"
        items = as_items(value, what)
        if not items:
            self.log.info("for_each of task %s: %s is an empty list, so %s is skipped", self.mapped_task, what,
                          self.mapped_task)
        else:
            self.log.info("for_each of task %s: %d items from %s", self.mapped_task, len(items), what)
        return items
