"""Engine definitions, the REST client and the progress line, without an Airflow (httpx.MockTransport)."""

from __future__ import annotations

import io
import json

import httpx
import pytest
import yaml

from iflow_airflow import WorkflowEngine
from iflow_airflow.client.engine import definition_yaml, workflow_document
from iflow_airflow.client.progress import ProgressLine, render
from iflow_airflow.client.rest import AirflowApiError, AirflowRestClient, WorkflowNotDeployedError
from iflow_airflow.errors import WorkflowFileError

ENGINE = WorkflowEngine(allowed_modules="iflow_airflow.examples")


# --- definitions ---------------------------------------------------------------------------


def test_bare_and_wrapped_definitions_give_the_same_file():
    bare = {"description": "d", "orchestration": {"retry_attempts": 1}, "tasks": [{"id": "a"}]}
    wrapped = {"workflow": {"name": "old", "description": "d", "tasks": [{"id": "a"}]},
               "orchestration": {"retry_attempts": 1}}
    expected = {"orchestration": {"retry_attempts": 1},
                "workflow": {"name": "etl", "description": "d", "tasks": [{"id": "a"}]}}
    assert workflow_document("etl", bare) == expected
    assert workflow_document("etl", wrapped) == expected
    assert yaml.safe_load(definition_yaml("etl", bare)) == expected
    assert bare == {"description": "d", "orchestration": {"retry_attempts": 1}, "tasks": [{"id": "a"}]}  # untouched


def test_definition_is_validated_by_the_same_models_and_plan():
    plan = ENGINE.validate("etl", {"tasks": [{"id": "a", "command": "echo a"},
                                             {"id": "b", "dependencies": ["a"], "priority": "high"}]})
    assert (plan.dag_id, [t.task_id for t in plan.tasks]) == ("etl", ["a", "b"])
    assert plan.task("b").priority_weight == 4_000_100
    with pytest.raises(WorkflowFileError) as info:
        ENGINE.validate("etl", {"orchestration": {"retry_atempts": 1},
                                "tasks": [{"id": "a", "dependencies": ["b"]},
                                          {"id": "c", "callable": "os:system"}]})
    got = {(p.key_path, p.code) for p in info.value.problems}
    assert got == {("orchestration.retry_atempts", "unknown_key"), ("workflow.tasks[0].dependencies[0]", "unknown_dependency"),
                   ("workflow.tasks[1].callable", "callable")}
    assert info.value.file == "etl.yaml"
    assert "retry_atempts: 1" in info.value.source


@pytest.mark.parametrize("definition, message", [
    ([1, 2], "a definition must be a mapping, not list"),
    ({"workflow": "x"}, "`workflow` must be a mapping (got str)"),
    ({"tasks": [{"id": "a", "kwargs": {"x": object()}}]}, "the definition is not plain data"),
])
def test_definitions_that_are_not_plain_mappings(definition, message):
    with pytest.raises(WorkflowFileError) as info:
        ENGINE.validate("etl", definition)
    assert info.value.problems[0].message.startswith(message)


def test_run_without_definition_or_url_is_refused():
    with pytest.raises(ValueError, match="needs a definition when no Airflow url is given"):
        ENGINE.run_workflow("etl")


# --- REST client ---------------------------------------------------------------------------


class FakeAirflow:
    """Records requests; answers like Airflow 3.3's REST API v2."""

    def __init__(self):
        self.calls: list[tuple[str, str, dict]] = []
        self.tis = [{"task_id": "prepare", "state": "success", "try_number": 1},
                    {"task_id": "flaky", "state": "failed", "try_number": 1},
                    {"task_id": "after", "state": "upstream_failed", "try_number": 0}]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        path = request.url.path
        self.calls.append((request.method, str(request.url.copy_with(scheme="http", host="af")), body))
        if path == "/auth/token":
            return httpx.Response(201, json={"access_token": "tok"})
        assert request.headers["Authorization"] == "Bearer tok"
        if path == "/api/v2/dags/missing":
            return httpx.Response(404, json={"detail": "not found"})
        if path == "/api/v2/dags":
            return httpx.Response(200, json={"dags": [{"dag_id": "wf"}], "total_entries": 1})
        if path == "/api/v2/dags/wf" and request.method == "GET":
            return httpx.Response(200, json={"dag_id": "wf"})
        if path == "/api/v2/dags/wf/dagRuns" and request.method == "GET":
            return httpx.Response(200, json={"dag_runs": [{"dag_run_id": "r2", "state": "failed"}], "total_entries": 1})
        if path.endswith("/taskInstances"):
            return httpx.Response(200, json={"task_instances": self.tis, "total_entries": len(self.tis)})
        if path == "/api/v2/dags/wf/clearTaskInstances":
            return httpx.Response(200, json={"task_instances": [{"task_id": "flaky"}, {"task_id": "after"}],
                                             "total_entries": 2})
        return httpx.Response(500, text=f"unexpected {request.method} {path}")


def test_resume_clears_the_failed_tasks_of_the_latest_failed_run_and_their_dependants():
    fake = FakeAirflow()
    client = AirflowRestClient("http://af/", "admin", "pw", transport=httpx.MockTransport(fake))
    assert client.resume("wf") == ("r2", ["after", "flaky"])
    assert fake.calls[0] == ("POST", "http://af/auth/token", {"username": "admin", "password": "pw"})
    assert [(m, u) for m, u, _ in fake.calls[1:4]] == [
        ("GET", "http://af/api/v2/dags/wf"),
        ("GET", "http://af/api/v2/dags/wf/dagRuns?order_by=-run_after&limit=1&state=failed"),
        ("GET", "http://af/api/v2/dags/wf/dagRuns/r2/taskInstances?limit=100&offset=0"),
    ]
    assert fake.calls[4] == ("POST", "http://af/api/v2/dags/wf/clearTaskInstances", {
        "dry_run": False, "dag_run_id": "r2", "task_ids": ["flaky"], "include_downstream": True,
        "include_upstream": False, "only_failed": False, "reset_dag_runs": True, "note": "resumed by iflow-airflow"})


def test_not_deployed_names_the_deployed_workflows():
    client = AirflowRestClient("http://af", "admin", "pw", transport=httpx.MockTransport(FakeAirflow()))
    with pytest.raises(WorkflowNotDeployedError) as info:
        client.require_dag("missing")
    assert str(info.value).startswith(
        "workflow 'missing' is not deployed on the Airflow at http://af; deployed iflow workflows: wf (")


def test_missing_url_and_credentials_are_clear(monkeypatch):
    for var in ("IFLOW_AIRFLOW_URL", "IFLOW_AIRFLOW_USER", "IFLOW_AIRFLOW_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(AirflowApiError, match="no Airflow URL: pass --url or set IFLOW_AIRFLOW_URL"):
        AirflowRestClient.from_env()
    monkeypatch.setenv("IFLOW_AIRFLOW_URL", "http://af")
    client = AirflowRestClient.from_env()
    assert client.url == "http://af"
    with pytest.raises(AirflowApiError, match="no credentials for http://af"):
        client.dag("wf")


# --- progress ------------------------------------------------------------------------------


TIS = [{"task_id": "a", "state": "success"}, {"task_id": "b", "state": "running"},
       {"task_id": "c", "state": "deferred"}, {"task_id": "d", "state": None}]


def test_progress_line_counts_done_tasks_and_names_the_running_ones():
    assert render("running", TIS, width=8) == "[##------] 1/4 done  running: b  deferred: c"
    done = [{"task_id": "a", "state": "success"}, {"task_id": "b", "state": "failed"},
            {"task_id": "d", "state": "upstream_failed"}]
    assert render("failed", done, width=6) == "[######] 3/3 done  failed: b, d  (run failed)"


def test_progress_redraws_in_place_on_a_tty_and_prints_lines_otherwise():
    tty, pipe = io.StringIO(), io.StringIO()
    for stream, is_tty in ((tty, True), (pipe, False)):
        bar = ProgressLine(stream, tty=is_tty)
        bar.update({"state": "running"}, TIS[:2])
        bar.update({"state": "running"}, TIS[:2])  # no change: nothing printed
        bar.update({"state": "success"}, [{"task_id": "a", "state": "success"}, {"task_id": "b", "state": "success"}])
        bar.finish()
    first = "[" + "#" * 10 + "-" * 10 + "] 1/2 done  running: b"
    last = "[" + "#" * 20 + "] 2/2 done  (run success)"
    assert pipe.getvalue() == f"{first}\n{last}\n"
    assert tty.getvalue() == f"\r{first}\r{last}" + " " * (len(first) - len(last)) + "\n"
