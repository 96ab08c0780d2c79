"""Tasks without an action: a checkpoint that logs it was reached and succeeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class IflowCheckpointOperator(BaseOperator):
    """Log ``checkpoint <task> reached (all upstream tasks succeeded)`` and succeed.

    Not an EmptyOperator: the scheduler marks those successful without running
    them, so task listeners (monitoring, alerts) would never see the checkpoint.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#ffffff"

    def __init__(self, *, iflow_item: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("do_xcom_push", False)
        super().__init__(**kwargs)
        self.iflow_item = iflow_item  # a mapped checkpoint (for_each) logs its item

    def execute(self, context: Any) -> None:
        index = getattr(context.get("ti"), "map_index", -1)
        if index is not None and index >= 0:
            self.log.info("checkpoint %s, item %s: %r", self.task_id, index, self.iflow_item)
        rule = str(getattr(self.trigger_rule, "value", self.trigger_rule))
        if rule == "all_success":
            self.log.info("checkpoint %s reached (all upstream tasks succeeded)", self.task_id)
        else:
            self.log.info("checkpoint %s reached (trigger rule %s)", self.task_id, rule)
