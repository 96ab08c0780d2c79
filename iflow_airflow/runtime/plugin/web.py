"""The iflow page: a FastAPI app that the plugin mounts on the api-server at ``/iflow``.

=====================================  =============================================
``GET /iflow/``                        the page (server-rendered HTML, small script)
``GET /iflow/fragment``                the page's refreshable part (the script's)
``GET /iflow/api/workflows``           every workflow's figures + the resources
``GET /iflow/api/workflows/{name}``    one workflow, its recent runs (404 if unknown)
``GET /iflow/timeline/{name}.svg``     the timeline of a run (``?run_id=``)
``GET /iflow/static/{file}``           the stylesheet and the script
``GET /iflow/schema/{name}.json``      the JSON Schema of ``workflow`` / ``defaults`` files
=====================================  =============================================

Every route but the schemas depends on Airflow's ``get_user``: a valid JWT as
``Authorization: Bearer`` (API clients) or the UI's ``_token`` cookie (the page, framed
by the Airflow UI) - 401 without. The page itself, opened by a browser that is not logged
in (it asks for ``text/html``), redirects to Airflow's login page, which comes back to it.
The schemas need no login: editors fetch them, and they describe the file format only.
Workflows are limited to the DAGs the user may read (the auth manager's
``get_authorized_dag_ids``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from iflow_airflow import version_compat
from iflow_airflow.gc_pause import collector_paused
from iflow_airflow.runtime import summary
from iflow_airflow.runtime.plugin import render

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"iflow.css": "text/css", "iflow.js": "text/javascript", "icon.svg": "image/svg+xml"}
NO_STORE = {"Cache-Control": "no-store"}


def _readable_dag_ids(user: Any, session: Any) -> set[str]:
    """DAG ids the user may read; none when the auth manager cannot say.

    Fails closed: when the permission lookup raises, the page shows no workflow (as
    Airflow's own API refuses), rather than every one.
    """
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session))
    except Exception:
        log.exception("iflow: the auth manager could not list the DAGs this user may read; showing none")
        return set()


class LoginRequired(Exception):
    """A browser without a session asked for the page: send it to the login page."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


async def page_user(request: Request) -> Any:
    """The user, as ``get_user``; a browser (``Accept: text/html``) without a session is sent to log in."""
    try:
        return await version_compat.request_user(request)
    except HTTPException as exc:
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            raise LoginRequired(version_compat.login_url(str(request.url))) from exc
        raise


User = Annotated[Any, Depends(get_user)]
PageUser = Annotated[Any, Depends(page_user)]
Runs = Annotated[int, Query(ge=1, le=200)]


def _summary(user: Any, session: Any, runs: int) -> dict[str, Any]:
    with collector_paused():  # thousands of task rows: no collector passes over the server's heap
        return summary.workflows_summary(session, runs_per_workflow=runs,
                                         dag_ids=_readable_dag_ids(user, session))


def _detail(name: str, user: Any, session: Any, run_id: str | None, runs: int) -> dict[str, Any]:
    with collector_paused():
        detail = summary.workflow_detail(session, name, run_id=run_id, runs_per_workflow=runs,
                                         dag_ids=_readable_dag_ids(user, session))
    if detail is None:
        raise HTTPException(404, f"no iflow workflow named {name!r}")
    return detail


def create_app() -> FastAPI:
    """The /iflow app: the page and its JSON (authenticated), static files, the public schemas."""
    app = FastAPI(title="iflow", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(exc.url, status_code=303, headers=NO_STORE)

    _add_views(app)
    _add_files(app)
    return app


def _add_views(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse)
    def page(user: PageUser, session: SessionDep, runs: Runs = summary.RUNS_PER_WORKFLOW) -> HTMLResponse:
        return HTMLResponse(render.page(_summary(user, session, runs)), headers=NO_STORE)

    @app.get("/fragment", response_class=HTMLResponse)
    def fragment(user: User, session: SessionDep, runs: Runs = summary.RUNS_PER_WORKFLOW) -> HTMLResponse:
        return HTMLResponse(render.content(_summary(user, session, runs)), headers=NO_STORE)

    @app.get("/api/workflows")
    def list_workflows(user: User, session: SessionDep, runs: Runs = summary.RUNS_PER_WORKFLOW) -> JSONResponse:
        return JSONResponse(_summary(user, session, runs), headers=NO_STORE)

    @app.get("/api/workflows/{name}")
    def get_workflow(name: str, user: User, session: SessionDep, run_id: str | None = None,
                     runs: Runs = summary.RUNS_PER_WORKFLOW) -> JSONResponse:
        return JSONResponse(_detail(name, user, session, run_id, runs), headers=NO_STORE)

    @app.get("/timeline/{name}.svg")
    def timeline(name: str, user: User, session: SessionDep, run_id: str | None = None) -> Response:
        detail = _detail(name, user, session, run_id, summary.RUNS_PER_WORKFLOW)
        return Response(render.timeline_svg(name, detail["timeline"]), media_type="image/svg+xml",
                        headers=NO_STORE)


def _add_files(app: FastAPI) -> None:
    @app.get("/static/{filename}")
    def static(filename: str, user: User) -> FileResponse:
        if filename not in STATIC_FILES:
            raise HTTPException(404, "no such file")
        return FileResponse(STATIC / filename, media_type=STATIC_FILES[filename])

    @app.get("/schema/{name}.json")
    def schema(name: str) -> Response:
        from iflow_airflow.schema import published

        if name not in published.NAMES:
            raise HTTPException(404, f"no schema {name!r}; known: {', '.join(published.NAMES)}")
        return Response(published.packaged_text(name), media_type="application/schema+json")
