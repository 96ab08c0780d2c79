"""Notifications, deadlines and "why is it waiting?" on a real Airflow (issue 17).

One deployment (dag-processor, scheduler, api-server; harness.py) serves the module.
Its alerts go to servers the test starts on loopback: an SMTP server (aiosmtpd) behind
the Airflow connection ``iflow_e2e_smtp`` and an HTTP webhook receiver.

* ``late_wf`` has ``deadline: 4s`` and a 20 s task: ``run_late`` must arrive exactly
  once (webhook and mail, from the scheduler's keeper), and the iflow API marks the run late;
* ``fail_wf`` fails its only task: ``task_failed`` is mailed from the task process;
* ``holder_wf`` and ``waiter_wf`` contend for the 1-slot resource ``lane``: while the
  holder runs, the waiter's task is explained as waiting for resource ``iflow_lane`` held
  by ``hold`` of ``holder_wf`` (API and, with a browser, the page).
"""

from __future__ import annotations

import shutil
import textwrap
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from browser import browser, login
from harness import REPO_ROOT, AirflowDeployment
from receivers import SmtpReceiver, WebhookReceiver

SMTP_CONN = "iflow_e2e_smtp"


def _files(webhook: str) -> dict[str, str]:
    common = "orchestration: {retry_attempts: 0}\n"
    return {
        "late_wf.yaml": common + textwrap.dedent(f"""\
            workflow:
              name: late_wf
              deadline: 4s
              alerts: {{webhook: "{webhook}", email: [oncall@example.test], events: [run_late, run_failed]}}
              tasks:
                - {{id: slow, command: 'sleep 20'}}
            """),
        "fail_wf.yaml": common + textwrap.dedent(f"""\
            workflow:
              name: fail_wf
              alerts: {{webhook: "{webhook}", email: [oncall@example.test], events: [task_failed]}}
              tasks:
                - {{id: boom, command: 'echo about to fail; exit 3'}}
            """),
        "iflow.defaults.yaml": "resources:\n  lane: {slots: 1}\n",
        "holder_wf.yaml": common + textwrap.dedent("""\
            workflow:
              name: holder_wf
              tasks:
                - {id: hold, priority: low, resource: lane, command: 'sleep 40'}
            """),
        "waiter_wf.yaml": common + textwrap.dedent("""\
            workflow:
              name: waiter_wf
              tasks:
                - {id: first, priority: critical, resource: lane, command: 'echo hi'}
                - {id: after, dependencies: [first], command: 'echo after'}
            """),
    }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("iflow_notify")
    dags = root / "dags"
    dags.mkdir()
    shutil.copy(REPO_ROOT / "dags" / "iflow_dags.py", dags / "iflow_dags.py")
    rx, smtp = WebhookReceiver(), SmtpReceiver()
    for name, text in _files(rx.url).items():
        (dags / name).write_text(text)
    af = AirflowDeployment(root / "home", dags, extra_env={
        "AIRFLOW__IFLOW__KEEPER_INTERVAL": "1",
        "AIRFLOW__IFLOW__SMTP_CONN_ID": SMTP_CONN,
        f"AIRFLOW_CONN_{SMTP_CONN.upper()}": smtp.connection_uri(),
    })
    try:
        af.start()
        for dag in ("late_wf", "fail_wf", "holder_wf", "waiter_wf"):
            af.client.wait_for_dag(dag, timeout=180)
        yield {"af": af, "rx": rx, "smtp": smtp}
    finally:
        try:
            af.stop()
        finally:
            rx.close()
            smtp.close()


def _events(rx: WebhookReceiver, event: str, workflow: str) -> list[dict]:
    return [b for b in rx.bodies if b.get("event") == event and b.get("workflow") == workflow]


@pytest.mark.e2e
def test_run_late_exactly_once_and_marked_on_the_page(deployment):
    af, rx, smtp = deployment["af"], deployment["rx"], deployment["smtp"]
    client = af.client
    run_id = client.trigger("late_wf")
    first = af.wait_until(lambda: _events(rx, "run_late", "late_wf") or None, timeout=90, what="run_late webhook")
    (body,) = first
    assert body["run_id"] == run_id and body["deadline"] == "4s" and body["late_by_s"] > 0
    assert body["url"].endswith(f"/dags/late_wf/runs/{quote(run_id, safe='')}")  # quoted as TaskInstance.log_url
    detail = client.get("/iflow/api/workflows/late_wf")
    (entry,) = [p for p in detail["in_progress"] if p["run_id"] == run_id]
    assert entry["deadline"]["late"] is True and detail["late_runs"] == 1 and detail["deadline"] == "4s"
    assert client.wait_for_run("late_wf", run_id, timeout=120) == "success"
    time.sleep(5)  # five more keeper ticks: nothing may fire again
    assert len(_events(rx, "run_late", "late_wf")) == 1
    mails = [m for m in smtp.messages if m["subject"].startswith("[iflow] run_late: late_wf")]
    assert len(mails) == 1 and mails[0]["to"] == ["oncall@example.test"]
    assert f"run {run_id} of workflow late_wf is late: not finished 4s after it started" in mails[0]["body"]
    recent = client.get("/iflow/api/workflows/late_wf")["recent_runs"]
    assert next(r for r in recent if r["run_id"] == run_id)["deadline"]["late"] is True


@pytest.mark.e2e
def test_task_failed_is_mailed_from_the_task_process(deployment):
    af, rx, smtp = deployment["af"], deployment["rx"], deployment["smtp"]
    run_id = af.client.trigger("fail_wf")
    assert af.client.wait_for_run("fail_wf", run_id, timeout=120) == "failed"
    mail = af.wait_until(lambda: next((m for m in smtp.messages if m["subject"].startswith(
        "[iflow] task_failed: fail_wf")), None), timeout=30, what="task_failed mail")
    assert mail["subject"] == f"[iflow] task_failed: fail_wf {run_id} boom"
    assert "task boom of workflow fail_wf failed for good (try 1)" in mail["body"]
    assert len(_events(rx, "task_failed", "fail_wf")) == 1


def _waiting(client, workflow: str, task: str) -> dict | None:
    w = client.get(f"/iflow/api/workflows/{workflow}")
    return next((x for x in w["waiting"] if x["task_id"] == task and x["state"] == "scheduled"), None)


@pytest.fixture(scope="module")
def contention(deployment) -> dict:
    """holder_wf's task holds the 1-slot resource; waiter_wf's critical task waits for it."""
    client = deployment["af"].client
    holder = client.trigger("holder_wf")
    client.wait_until(lambda: client.get(f"/api/v2/dags/holder_wf/dagRuns/{holder}/taskInstances/hold")
                      ["state"] == "running", timeout=120, what="hold running")
    waiter = client.trigger("waiter_wf")
    reason = client.wait_until(lambda: _waiting(client, "waiter_wf", "first"), timeout=60,
                               what="waiter_wf.first waiting for the resource")
    return {"holder": holder, "waiter": waiter, "reason": reason}


@pytest.mark.e2e
def test_why_waiting_names_the_resource_and_who_holds_it(deployment, contention):
    client = deployment["af"].client
    w = contention["reason"]
    assert w["kind"] == "resource" and w["resource"] == "iflow_lane" and (w["used"], w["slots"]) == (1, 1)
    (h,) = w["holders"]
    assert (h["task"], h["workflow"], h["run_id"], h["priority"]) == ("hold", "holder_wf", contention["holder"],
                                                                      "low (2)")
    assert w["reason"].startswith("waiting for resource iflow_lane: 1 of 1 slot taken (needs 1), held by hold of "
                                  "holder_wf (low (2), since ")
    after = next(x for x in client.get("/iflow/api/workflows/waiter_wf")["waiting"] if x["task_id"] == "after")
    assert after["kind"] == "upstream" and after["reason"].startswith("waiting for upstream task first (")
    res = next(r for r in client.get("/iflow/api/workflows")["resources"] if r["pool"] == "iflow_lane")
    assert res["priority_inversions"] == 0  # the low task took the slot while nothing higher waited


@pytest.mark.e2e
@pytest.mark.browser
def test_browser_shows_the_waiting_reason(deployment, contention):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    af = deployment["af"]
    with browser() as driver:
        login(driver, af)
        wait = WebDriverWait(driver, 60)
        driver.get(f"{af.base_url}/iflow/")
        row = wait.until(EC.presence_of_element_located((
            By.CSS_SELECTOR, "section[data-workflow='waiter_wf'] tr.waiting[data-task='first'][data-kind='resource']")))
        assert row.get_attribute("data-run-id") == contention["waiter"]
        assert "held by hold of holder_wf" in row.find_element(By.CSS_SELECTOR, "td.reason").text
        assert row.is_displayed()
