"""A small client of Airflow's REST API v2, shared by the CLI (``run``, ``resume``) and the engine API.

Only the calls iflow needs: a token (``POST /auth/token``), the DAG, trigger
(unpause + ``POST /dagRuns``), a run and its task instances, a task's XCom
result, creating or resizing a pool, waiting for a run, and resuming a failed run the way the UI's "clear"
does (``POST /api/v2/dags/{dag_id}/clearTaskInstances``). Needs no Airflow
installation, only ``httpx``.

URL and credentials come from the caller or from the environment:
``IFLOW_AIRFLOW_URL`` (e.g. ``http://localhost:8080``), ``IFLOW_AIRFLOW_USER``
and ``IFLOW_AIRFLOW_PASSWORD``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

URL_ENV, USER_ENV, PASSWORD_ENV = "IFLOW_AIRFLOW_URL", "IFLOW_AIRFLOW_USER", "IFLOW_AIRFLOW_PASSWORD"
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
PAGE_LIMIT = 100  # [api] maximum_page_limit default


class AirflowApiError(RuntimeError):
    """A request to Airflow failed (connection, authentication, or an unexpected answer)."""


class WorkflowNotDeployedError(AirflowApiError, LookupError):
    """The workflow (DAG id) is not known to the Airflow at that URL."""


class RunTimeoutError(AirflowApiError, TimeoutError):
    """A run did not finish within the time given."""


def _q(part: str) -> str:
    return quote(part, safe="")


class AirflowRestClient:
    """REST API v2 client with a bearer token, refreshed once on a 401."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None, *,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        if not url:
            raise AirflowApiError(f"no Airflow URL: pass --url or set {URL_ENV} (e.g. http://localhost:8080)")
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self._token: str | None = None

    @classmethod
    def from_env(cls, url: str | None = None, username: str | None = None, password: str | None = None,
                 **kw: Any) -> AirflowRestClient:
        """Arguments win over ``IFLOW_AIRFLOW_URL`` / ``IFLOW_AIRFLOW_USER`` / ``IFLOW_AIRFLOW_PASSWORD``."""
        return cls(url or os.environ.get(URL_ENV, ""), username or os.environ.get(USER_ENV),
                   password or os.environ.get(PASSWORD_ENV), **kw)

    # --- plumbing ---------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AirflowRestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self) -> str:
        if not self.username or self.password is None:
            raise AirflowApiError(f"no credentials for {self.url}: pass --user/--password or set "
                                  f"{USER_ENV} and {PASSWORD_ENV}")
        try:
            r = self.http.post("/auth/token", json={"username": self.username, "password": self.password})
        except httpx.HTTPError as exc:
            raise AirflowApiError(f"cannot reach Airflow at {self.url}: {type(exc).__name__}: {exc}") from exc
        if r.status_code not in (200, 201):
            raise AirflowApiError(f"login as {self.username!r} at {self.url} failed: HTTP {r.status_code} "
                                  f"{r.text[:300]}")
        self._token = r.json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {self._token}"
        return self._token

    def request(self, method: str, path: str, *, ok: Iterable[int] = (200,), **kw: Any) -> httpx.Response:
        """A request with the token; a status outside ``ok`` raises :class:`AirflowApiError`."""
        if self._token is None:
            self.login()
        try:
            r = self.http.request(method, path, **kw)
            if r.status_code == 401:  # expired token: log in again once
                self.login()
                r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise AirflowApiError(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from exc
        if r.status_code not in tuple(ok):
            raise AirflowApiError(f"{method} {path} -> HTTP {r.status_code}: {r.text[:1000]}")
        return r

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).json()

    def _paged(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.get(path, **{**(params or {}), "limit": PAGE_LIMIT, "offset": len(out)})
            items = page[key]
            out.extend(items)
            if not items or len(out) >= page.get("total_entries", 0):
                return out

    # --- DAGs and runs ------------------------------------------------------------------

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        r = self.request("GET", f"/api/v2/dags/{_q(dag_id)}", ok=(200, 404))
        return r.json() if r.status_code == 200 else None

    def require_dag(self, dag_id: str) -> dict[str, Any]:
        """The DAG, or :class:`WorkflowNotDeployedError` naming the iflow workflows that are deployed."""
        dag = self.dag(dag_id)
        if dag is not None:
            return dag
        try:
            known = sorted(d["dag_id"] for d in self._paged("/api/v2/dags", "dags", {"tags": "iflow"}))
        except AirflowApiError:
            known = []
        raise WorkflowNotDeployedError(
            f"workflow {dag_id!r} is not deployed on the Airflow at {self.url}; deployed iflow workflows: "
            f"{', '.join(known) or '(none)'} (put its YAML file into that Airflow's dags folder; a file with "
            "errors shows in the UI's import errors)")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, *, unpause: bool = True) -> str:
        """Start a manual run now (``logical_date`` null); returns its run id."""
        if unpause:
            self.unpause(dag_id)
        r = self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", ok=(200, 201),
                         json={"logical_date": None, "conf": dict(conf or {})})
        return r.json()["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")

    def runs(self, dag_id: str, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Runs of ``dag_id``, newest (by ``run_after``) first."""
        params: dict[str, Any] = {"order_by": "-run_after", "limit": limit}
        if state:
            params["state"] = state
        return self.get(f"/api/v2/dags/{_q(dag_id)}/dagRuns", **params)["dag_runs"]

    def latest_run(self, dag_id: str, state: str | None = None) -> dict[str, Any] | None:
        found = self.runs(dag_id, state=state, limit=1)
        return found[0] if found else None

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self._paged(f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances", "task_instances")

    def result(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """The task's result (XCom ``return_value``), or None when it kept none."""
        r = self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
                                "/xcomEntries/return_value", ok=(200, 404))
        if r.status_code == 404:
            return None
        value = r.json().get("value")
        if isinstance(value, str):  # the stored (JSON) form
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float | None = None, poll: float = 1.0,
                     on_change: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None
                     ) -> dict[str, Any]:
        """Poll until the run is ``success`` or ``failed``; returns the run.

        ``on_change(run, task_instances)`` is called whenever the run's or a task's
        state changed since the last poll (and once at the start).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Any = None
        while True:
            run = self.dag_run(dag_id, run_id)
            if on_change is not None:
                tis = self.task_instances(dag_id, run_id)
                snapshot = (run["state"], tuple(sorted((t["task_id"], t.get("map_index", -1), t["state"],
                                                        t.get("try_number")) for t in tis)))
                if snapshot != last:
                    last = snapshot
                    on_change(run, tis)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise RunTimeoutError(f"run {run_id} of {dag_id} did not finish within {timeout:g} s "
                                      f"(state {run['state']})")
            time.sleep(poll)

    def set_pool(self, name: str, slots: int, description: str | None = None) -> dict[str, Any]:
        """Create the pool, or resize it (and set the description if given) if it exists."""
        body: dict[str, Any] = {"name": name, "slots": slots}
        if description is not None:
            body["description"] = description
        r = self.request("POST", "/api/v2/pools", json=body, ok=(200, 201, 409))
        if r.status_code == 409:
            # Airflow 3.3 validates a PATCH body of a non-default pool as a whole pool
            # (name, slots, include_deferred) even with update_mask; the mask then
            # picks the fields that are really written.
            mask = [k for k in body if k != "name"]
            patch = {**body, "include_deferred": False}
            r = self.request("PATCH", f"/api/v2/pools/{_q(name)}", json=patch, params={"update_mask": mask})
        return r.json()

    def clear_failed(self, dag_id: str, run_id: str) -> list[str]:
        """Re-run the failed tasks of a run and every task downstream of them (the UI's "clear").

        ``POST /api/v2/dags/{dag_id}/clearTaskInstances`` with the run's failed task
        ids, ``include_downstream`` and ``reset_dag_runs`` (the run goes back to
        queued); successful upstream tasks keep their state and are not re-run.
        Returns the cleared task ids (sorted).
        """
        failed = sorted({t["task_id"] for t in self.task_instances(dag_id, run_id) if t["state"] == "failed"})
        if not failed:
            raise AirflowApiError(f"run {run_id} of {dag_id} has no failed task to resume")
        body = {"dry_run": False, "dag_run_id": run_id, "task_ids": failed, "include_downstream": True,
                "include_upstream": False, "only_failed": False, "reset_dag_runs": True,
                "note": "resumed by iflow-airflow"}
        r = self.request("POST", f"/api/v2/dags/{_q(dag_id)}/clearTaskInstances", json=body)
        return sorted({t["task_id"] for t in r.json().get("task_instances", [])})

    def resume(self, dag_id: str, run_id: str | None = None) -> tuple[str, list[str]]:
        """Resume ``run_id`` (default: the latest failed run); returns (run id, cleared task ids)."""
        self.require_dag(dag_id)
        if run_id is None:
            run = self.latest_run(dag_id, state="failed")
            if run is None:
                raise AirflowApiError(f"workflow {dag_id!r} has no failed run to resume")
            run_id = run["dag_run_id"]
        else:
            run = self.dag_run(dag_id, run_id)
            if run["state"] != "failed":
                raise AirflowApiError(f"run {run_id} of {dag_id} is {run['state']}, not failed: nothing to resume")
        return run_id, self.clear_failed(dag_id, run_id)
