"""run_late is claimed once per run in Airflow's audit log (a real migrated database).

A fresh ``DeadlineWatch`` is what a restarted scheduler has: nothing in memory. Its
claim must still see the earlier claim (the ``iflow.run_late`` row) and not raise again.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

PROBE = textwrap.dedent('''
    import json
    from datetime import datetime, timezone

    from sqlalchemy import select

    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from iflow_airflow.runtime.deadlines import AUDIT_EVENT, Late, _claim

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    a, b = Late("wf_claim", "run_a", start, 60.0, 5.0), Late("wf_claim", "run_b", start, 60.0, 5.0)
    first = _claim([a])            # a scheduler sees run_a late
    again = _claim([a, b])         # a restarted one (no memory) sees run_a and run_b late
    third = _claim([a, b])
    with create_session() as s:
        rows = s.execute(select(Log.dag_id, Log.run_id, Log.owner, Log.extra).where(Log.event == AUDIT_EVENT)).all()
    print("CLAIM-JSON " + json.dumps({"first": [x.run_id for x in first], "again": [x.run_id for x in again],
                                      "third": [x.run_id for x in third], "rows": [list(r) for r in rows]}))
    ''')


@pytest.mark.airflow
def test_each_late_run_is_claimed_once_even_after_a_restart(airflow_env):
    airflow_env.write_file("../claim_probe.py", PROBE)
    proc = airflow_env.run([sys.executable, str(airflow_env.home / "claim_probe.py")])
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("CLAIM-JSON ")), None)
    assert line, (proc.stdout + proc.stderr)[-6000:]
    out = json.loads(line[len("CLAIM-JSON "):])
    assert (out["first"], out["again"], out["third"]) == (["run_a"], ["run_b"], [])
    assert sorted(out["rows"]) == [["wf_claim", "run_a", "iflow", "not finished 1m after it started"],
                                   ["wf_claim", "run_b", "iflow", "not finished 1m after it started"]]
