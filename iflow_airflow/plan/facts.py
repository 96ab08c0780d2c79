"""A workflow's cross-file facts: what the rules across files need to know of a file another parse unit parsed.

``compiler.check_across_files`` judges names, ``run_workflow`` links and resource sizes
over every file of the deployment; a file of another unit is known only by these
facts (recorded by that unit's parse, ``build.units``), never by its whole plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Facts:
    """One iflow file's cross-file facts: what another unit needs to know about it."""

    display: str
    name: str
    params: tuple[str, ...] | None  # None: the workflow declares no run parameters (any are accepted)
    runs: tuple[str, ...] = ()
    resources: tuple[tuple[str, int, int | None], ...] = ()

    @classmethod
    def of(cls, display: str, plan: Any) -> Facts:
        from iflow_airflow.plan.ir import RunWorkflowAction

        runs = sorted({t.action.workflow for t in plan.tasks if isinstance(t.action, RunWorkflowAction)})
        res = sorted((r.name, r.slots, r.max_slots) for r in plan.resources.values())
        return cls(display, plan.dag_id, tuple(plan.params) or None, tuple(runs), tuple(res))

    def to_json(self) -> dict[str, Any]:
        return {"display": self.display, "name": self.name, "params": self.params, "runs": list(self.runs),
                "resources": [list(r) for r in self.resources]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Facts:
        params = d.get("params")
        return cls(str(d["display"]), str(d["name"]), tuple(map(str, params)) if params is not None else None,
                   tuple(map(str, d.get("runs") or ())),
                   tuple((str(n), int(s), None if m is None else int(m)) for n, s, m in d.get("resources") or ()))


@dataclass
class Foreign:
    """The facts of every other unit's files (by workflow name), as their last parses recorded them."""

    facts: list[Facts] = field(default_factory=list)

    def by_name(self) -> dict[str, list[Facts]]:
        out: dict[str, list[Facts]] = {}
        for f in self.facts:
            out.setdefault(f.name, []).append(f)
        return out
