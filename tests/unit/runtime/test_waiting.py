"""runtime/waiting.py on fixed rows with hand-worked answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from iflow_airflow.runtime import figures as fig
from iflow_airflow.runtime.waiting import ActiveRow, Context, explain, priority_inversions

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
HIGH, LOW = 4_000_100, 2_000_100  # levels 4 and 2


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def ti(dag, run, task, state, pool=None, weight=LOW, slots=1, queued=None, start=None, sched=None):
    return fig.TaskRow(dag, run, task, state, queued, start, None, 1, pool, slots, weight, sched)


def active(t: fig.TaskRow, queue=None) -> ActiveRow:
    return ActiveRow(t.dag_id, t.run_id, t.task_id, t.state, t.pool, t.pool_slots, t.priority_weight,
                     t.queued_dttm, t.start_date, t.scheduled_dttm, queue)


CTX = Context(pool_slots={"iflow_db": 1, "iflow_gpu": 4}, upstream={"billing": {"report": ("close_books",)}},
              max_active={"billing": 10, "refresh": 2}, parallelism=32,
              level_names={("billing", "close_books"): "critical", ("refresh", "reload"): "low"})


def test_a_task_waits_for_the_resource_and_names_who_holds_it():
    holder = ti("billing", "r1", "close_books", "running", "iflow_db", HIGH, queued=at(5), start=at(6))
    waiter = ti("refresh", "r9", "reload", "scheduled", "iflow_db", LOW, sched=at(7))
    (w,) = explain([waiter], [active(holder), active(waiter)], CTX, [("refresh", "r9")])
    assert w["kind"] == "resource" and w["resource"] == "iflow_db" and (w["used"], w["slots"]) == (1, 1)
    assert w["reason"] == ("waiting for resource iflow_db: 1 of 1 slot taken (needs 1), held by close_books of "
                           "billing (critical (4), since 2026-03-01T12:00:05+00:00)")
    assert w["holders"] == [{"task": "close_books", "workflow": "billing", "run_id": "r1", "state": "running",
                             "slots": 1, "priority": "critical (4)", "since": "2026-03-01T12:00:05+00:00"}]
    assert w["priority"] == "low (2)"


def test_upstream_max_concurrent_executor_and_the_other_states():
    rows = [
        ti("billing", "r1", "close_books", "running", "iflow_db", HIGH, queued=at(1)),
        ti("billing", "r1", "report", None),
        ti("refresh", "r2", "a", "running", queued=at(1)), ti("refresh", "r2", "b", "queued", queued=at(2)),
        ti("refresh", "r2", "c", "scheduled", sched=at(3)),
        ti("refresh", "r2", "d", "deferred"), ti("refresh", "r2", "e", "up_for_retry"),
    ]
    ctx = CTX._replace(conditions={("refresh", "d"): "file /data/in.csv"})
    found = explain(rows, [active(r, "q1") for r in rows], ctx, [("billing", "r1"), ("refresh", "r2")])
    assert [w["kind"] for w in found] == ["max_concurrent", "executor", "deferred", "retry", "upstream"]
    out = {w["task_id"]: w for w in explain(rows, [active(r, "q1") for r in rows], ctx,
                                            [("billing", "r1"), ("refresh", "r2")])}
    assert set(out) == {"report", "b", "c", "d", "e"}  # running tasks are not waiting
    assert out["report"]["reason"] == "waiting for upstream task close_books (running)"
    assert out["c"]["reason"] == "waiting for max_concurrent_tasks: 2 of 2 tasks of this run are running or queued"
    assert out["b"]["kind"] == "executor" and out["b"]["reason"].startswith("queued since 2026-03-01T12:00:02")
    assert out["d"]["reason"] == "deferred: waiting in the triggerer for file /data/in.csv"
    assert out["e"]["kind"] == "retry"
    busy = CTX._replace(parallelism=3, max_active={})
    (c,) = [w for w in explain(rows, [active(r) for r in rows], busy, [("refresh", "r2")]) if w["task_id"] == "c"]
    assert c["reason"] == "waiting for executor slots: 3 of 3 ([core] parallelism) taken"


def test_free_slots_but_higher_priority_tasks_are_ahead():
    rows = [ti("a", "r", "big", "scheduled", "iflow_gpu", HIGH, slots=3, sched=at(1)),
            ti("a", "r", "small", "scheduled", "iflow_gpu", LOW, slots=2, sched=at(1)),
            ti("b", "r", "hold", "running", "iflow_gpu", LOW, slots=1, queued=at(0))]
    out = {w["task_id"]: w for w in explain(rows, [active(r) for r in rows], CTX, [("a", "r")])}
    assert out["small"]["kind"] == "priority" and out["small"]["ahead"] == 1
    assert out["big"]["kind"] == "scheduler"  # 3 free slots, needs 3: nothing holds it


def test_priority_inversions_count_grants_to_lower_levels_while_higher_waited():
    rows = [
        ti("x", "r", "hi", "success", "iflow_db", HIGH, sched=at(10), queued=at(30)),   # waits 10..30
        ti("y", "r", "lo1", "success", "iflow_db", LOW, sched=at(0), queued=at(20)),    # granted at 20: inversion
        ti("y", "r", "lo2", "success", "iflow_db", LOW, sched=at(0), queued=at(5)),     # at 5 nobody higher waits
        ti("y", "r", "lo3", "success", "iflow_db", LOW, sched=at(25), queued=at(30)),   # same loop as hi: none
        ti("z", "r", "hi2", "success", "iflow_gpu", HIGH, sched=at(0), queued=None),    # still waiting
        ti("z", "r", "lo4", "running", "iflow_gpu", LOW, sched=at(1), queued=at(1)),    # inversion on gpu
        ti("z", "r", "eq", "running", "iflow_gpu", HIGH, sched=at(2), queued=at(3)),    # same level: none
    ]
    assert priority_inversions(rows) == {"iflow_db": 1, "iflow_gpu": 1}
    assert priority_inversions([]) == {}
