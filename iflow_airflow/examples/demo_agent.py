"""DEMO ONLY: a small deterministic offline stand-in for the iFlow CLI agent.

``python -m iflow_airflow.examples.demo_agent PROMPT`` behaves like ``iflow -p PROMPT``
as far as a ``prompt:`` task can tell: it gets the prompt as its one argument, the
run's identity as ``IFLOW_WORKFLOW`` / ``IFLOW_RUN_ID`` / ``IFLOW_TASK_ID`` and upstream
answers as ``IFLOW_RESULT_<task>``, does the work, and prints its answer on stdout.
It calls no model and no network. ``make run`` configures it as ``[iflow] agent_command``
when no ``iflow`` command is installed, so the seed example ``full_stack_development``
shows its full-stack flow end to end on any machine; set ``agent_command`` (in
``config/iflow.cfg`` or ``AIRFLOW__IFLOW__AGENT_COMMAND``) to use a real agent.

What it does: the prompt's first keyword picks a step (see :data:`STEPS`), and each
step works in ONE shared folder per run, ``$IFLOW_WORKSPACE_ROOT/<workflow>/<run id>``
(default root ``$AIRFLOW_HOME/iflow-workspaces``): analysis writes ``requirements.md``,
design ``design.md`` and ``api.json``, development ``backend/service.py`` or
``frontend/view.py`` (the task id says which), integration ``app.py`` wiring the two,
and testing ``tests/test_app.py``, which it then really runs (``python -m unittest``).
A step fails (exit 1, with the reason on stderr) when its input from an earlier step
is missing or the tests fail. Files are written the same way every time, so a retry
or a re-run gives the same workspace.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

DEMO_LABEL = "[demo agent]"
#: The resources of the little application the demo builds (a to-do list).
API = {"resource": "todos", "routes": [["GET", "/todos"], ["POST", "/todos"], ["GET", "/health"]]}


class StepFailed(RuntimeError):
    """A step cannot do its work (missing input, failing tests): exit 1 with this message."""


def workspace() -> Path:
    """The run's shared folder: ``<root>/<workflow>/<run id>`` (names made file-safe)."""
    root = os.environ.get("IFLOW_WORKSPACE_ROOT") or str(
        Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow") / "iflow-workspaces")
    safe = [re.sub(r"[^A-Za-z0-9_.-]", "_", os.environ.get(k) or "manual")
            for k in ("IFLOW_WORKFLOW", "IFLOW_RUN_ID")]
    folder = Path(root, *safe)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _need(ws: Path, name: str, step: str) -> str:
    path = ws / name
    if not path.is_file():
        raise StepFailed(f"{step}: {name} is missing in {ws}; the step that writes it must run first")
    return path.read_text(encoding="utf-8")


def analysis(ws: Path, prompt: str) -> str:
    reqs = ["list the to-do items", "add a to-do item with a title",
            "reject an item without a title", "report the service's health"]
    body = "\n".join(f"- R{i}: {r}" for i, r in enumerate(reqs, 1))
    _write(ws / "requirements.md", f"# Requirements\n\nAsked for: {prompt.strip()}\n\n{body}\n")
    return f"requirements.md: {len(reqs)} requirements"


def design(ws: Path, prompt: str) -> str:
    reqs = [line for line in _need(ws, "requirements.md", "design").splitlines() if line.startswith("- R")]
    _write(ws / "api.json", json.dumps(API, indent=2) + "\n")
    routes = "\n".join(f"- `{m} {p}`" for m, p in API["routes"])
    _write(ws / "design.md", "# Design\n\nbackend/service.py: an in-memory store behind `handle(method, path, "
           f"body)`\nfrontend/view.py: renders the list as HTML\napp.py: wires them\n\n{routes}\n\n"
           f"Covers {len(reqs)} requirements.\n")
    return f"design.md, api.json: {len(API['routes'])} routes for {len(reqs)} requirements"


BACKEND = '''"""The backend: an in-memory to-do store behind one request handler (written by the demo agent)."""
ITEMS = []


def handle(method, path, body=None):
    """(status, JSON-ready answer) for one request."""
    if (method, path) == ("GET", "/health"):
        return 200, {"status": "ok"}
    if (method, path) == ("GET", "/todos"):
        return 200, list(ITEMS)
    if (method, path) == ("POST", "/todos"):
        title = (body or {}).get("title", "").strip()
        if not title:
            return 400, {"error": "title is required"}
        item = {"id": len(ITEMS) + 1, "title": title}
        ITEMS.append(item)
        return 201, item
    return 404, {"error": f"no route {method} {path}"}
'''

FRONTEND = '''"""The frontend: renders the backend's to-do list as HTML (written by the demo agent)."""
from html import escape

ROUTES = {routes}


def render(items):
    rows = "".join(f"<li>{{escape(item['title'])}}</li>" for item in items)
    return f"<ul id='todos'>{{rows}}</ul>"
'''


def development(ws: Path, prompt: str) -> str:
    api = json.loads(_need(ws, "api.json", "development"))
    part = _part(prompt)
    if part == "backend":
        path = _write(ws / "backend" / "service.py", BACKEND)
    else:
        path = _write(ws / "frontend" / "view.py", FRONTEND.format(routes=repr([tuple(r) for r in api["routes"]])))
    _write(path.parent / "__init__.py", "")
    return f"{part}: {path.relative_to(ws)} ({len(path.read_text().splitlines())} lines)"


def _part(prompt: str) -> str:
    """frontend or backend: from the task id (one task type builds both), else from the prompt."""
    for text in (os.environ.get("IFLOW_TASK_ID", ""), prompt):
        for part in ("backend", "frontend"):
            if part in text.lower():
                return part
    return "backend"


APP = '''"""The integrated application: the frontend's page from the backend's answers (written by the demo agent)."""
from backend.service import handle
from frontend.view import ROUTES, render


def page():
    status, items = handle("GET", "/todos")
    assert status == 200, status
    return render(items)
'''


def integration(ws: Path, prompt: str) -> str:
    for name in ("backend/service.py", "frontend/view.py"):
        _need(ws, name, "integration")
    _write(ws / "app.py", APP)
    return "app.py: frontend/view.py wired to backend/service.py"


TESTS = '''"""System tests of the to-do application (written by the demo agent, run by it too)."""
import unittest

import app
from backend import service
from frontend.view import ROUTES


class SystemTest(unittest.TestCase):
    def setUp(self):
        service.ITEMS.clear()

    def test_health(self):
        self.assertEqual(service.handle("GET", "/health"), (200, {{"status": "ok"}}))

    def test_add_then_the_page_shows_it(self):
        self.assertEqual(service.handle("POST", "/todos", {{"title": "ship <it>"}})[0], 201)
        self.assertIn("<li>ship &lt;it&gt;</li>", app.page())

    def test_title_required(self):
        self.assertEqual(service.handle("POST", "/todos", {{"title": " "}})[0], 400)

    def test_every_designed_route_is_served(self):
        for method, path in ROUTES:
            self.assertNotEqual(service.handle(method, path, {{"title": "x"}})[0], 404, (method, path))

    def test_every_requirement_is_listed(self):
        self.assertEqual({count}, 4, "requirements.md lists four requirements")
'''


def testing(ws: Path, prompt: str) -> str:
    _need(ws, "app.py", "testing")
    count = sum(1 for line in _need(ws, "requirements.md", "testing").splitlines() if line.startswith("- R"))
    _write(ws / "tests" / "test_app.py", TESTS.format(count=count))
    _write(ws / "tests" / "__init__.py", "")
    run = subprocess.run([sys.executable, "-m", "unittest", "-v", "tests.test_app"], cwd=ws,
                         capture_output=True, text=True, timeout=120)
    print(run.stderr, file=sys.stderr, end="")
    ran = re.search(r"Ran (\d+) test", run.stderr)
    if run.returncode != 0 or not ran:
        raise StepFailed(f"testing: the tests in {ws / 'tests'} failed (exit {run.returncode})")
    return f"tests: {ran.group(1)} passed (tests/test_app.py)"


#: Prompt keyword -> step; the first keyword found in the prompt (in this order) wins.
STEPS = (("test", testing), ("integrat", integration), ("implement", development),
         ("design", design), ("architect", design), ("requirement", analysis), ("analy", analysis))


def _after() -> str:
    """`` after a, b``: the upstream tasks whose answers reached this one (``IFLOW_RESULT_<task>``)."""
    upstream = sorted(k[len("IFLOW_RESULT_"):] for k in os.environ if k.startswith("IFLOW_RESULT_"))
    return f" after {', '.join(upstream)}" if upstream else ""


def answer(prompt: str) -> str:
    """Do the step the prompt asks for in the run's workspace; the answer line, ending in the folder."""
    ws = workspace()
    words = prompt.lower()
    for keyword, step in STEPS:
        if keyword in words:
            return f"{DEMO_LABEL} {step(ws, prompt)} in {ws}{_after()}"
    notes = _write(ws / "notes" / f"{os.environ.get('IFLOW_TASK_ID') or 'task'}.md", prompt)
    return f"{DEMO_LABEL} no step matches the prompt; kept it as {notes.relative_to(ws)} in {ws}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: the prompt is the last argument (as ``iflow -p PROMPT`` takes it)."""
    args = sys.argv[1:] if argv is None else argv
    if not args or not args[-1].strip():
        print(f"{DEMO_LABEL} usage: python -m iflow_airflow.examples.demo_agent PROMPT", file=sys.stderr)
        return 2
    print(f"{DEMO_LABEL} offline demo agent (no model): set [iflow] agent_command for a real one",
          file=sys.stderr)
    try:
        print(answer(args[-1]))
    except StepFailed as exc:
        print(f"{DEMO_LABEL} {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
