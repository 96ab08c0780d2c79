"""A throw-away Airflow installation for ``dag.test()`` runs, shared by the whole session.

Airflow reads its configuration when it is first imported, so every piece of
Airflow work happens in a fresh ``python`` subprocess whose environment points
at a temporary AIRFLOW_HOME, dags folder and SQLite database (migrated once).
The pytest process itself never imports Airflow's configuration.

Use the ``airflow_env`` fixture::

    def test_x(airflow_env):
        airflow_env.write_file("my_dag.py", source)          # into the dags folder
        result = airflow_env.run_dag_test("my_dag", conf={"p": 1})
        assert result["state"] == "success"
        assert result["tasks"]["t1"]["state"] == "success"
        assert result["xcom"]["t1"] == "hello"

``run_dag_file(source, dag_id)`` does both steps. ``extra_env`` adds variables
(e.g. ``AIRFLOW__IFLOW__ALLOWED_MODULES``) to the subprocess only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# Runs in the subprocess: parse the dags folder, dag.test() each requested run,
# write states, tries, XCom return values and import errors as JSON.
RUNNER = textwrap.dedent(
    '''
    from __future__ import annotations

    import json
    import os
    import sys
    import traceback


    def main() -> None:
        spec = json.loads(sys.argv[1])
        out_path = sys.argv[2]

        from airflow.dag_processing.dagbag import DagBag
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
        bag = DagBag(dag_folder=folder)
        result = {
            "dag_ids": sorted(bag.dag_ids),
            "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
            "runs": [],
        }
        for item in spec["runs"]:
            dag_id = item["dag_id"]
            run = {"dag_id": dag_id, "state": None, "tasks": {}, "xcom": {}, "error": None}
            dag = bag.dags.get(dag_id)
            if dag is None:
                run["error"] = f"DAG {dag_id!r} not found in {folder}; import errors: {result['import_errors']}"
                result["runs"].append(run)
                continue
            try:
                kwargs = {"run_conf": item.get("conf")}
                if item.get("logical_date_none"):
                    kwargs["logical_date"] = None
                dr = dag.test(**kwargs)
            except Exception:
                run["error"] = traceback.format_exc()
                result["runs"].append(run)
                continue
            run["run_id"] = dr.run_id
            run["state"] = str(getattr(dr.state, "value", dr.state))
            with create_session() as session:
                for ti in dr.get_task_instances(session=session):  # a mapped instance: "task[i]"
                    key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
                    run["tasks"][key] = {
                        "state": None if ti.state is None else str(getattr(ti.state, "value", ti.state)),
                        "try_number": ti.try_number,
                    }
                rows = session.scalars(
                    XComModel.get_many(run_id=dr.run_id, dag_ids=dag_id, key="return_value")
                ).all()
                for row in rows:
                    key = row.task_id if row.map_index < 0 else f"{row.task_id}[{row.map_index}]"
                    run["xcom"][key] = XComModel.deserialize_value(row)
            result["runs"].append(run)
        with open(out_path, "w", encoding="utf-8") as fh:
            json.dump(result, fh, default=str)


    if __name__ == "__main__":
        main()
    '''
)


class AirflowSubprocessError(AssertionError):
    pass


@dataclass
class AirflowEnv:
    """A migrated Airflow home; every method runs Airflow in a subprocess."""

    home: Path
    dags_folder: Path
    env: dict[str, str] = field(repr=False)
    runs: int = 0

    def subprocess_env(self, extra_env: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(self.env)
        env.update(extra_env or {})
        return env

    def write_file(self, relpath: str, text: str) -> Path:
        """Write ``text`` to ``relpath`` inside the dags folder (folders created as needed)."""
        path = self.dags_folder / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def run(self, argv: list[str], extra_env: dict[str, str] | None = None, timeout: float = 300):
        """Run a command with this Airflow environment; CompletedProcess with text output."""
        return subprocess.run(
            argv,
            env=self.subprocess_env(extra_env),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run_dag_tests(
        self,
        runs: list[dict[str, Any]],
        extra_env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> dict[str, Any]:
        """Several ``dag.test()`` runs in ONE subprocess (saves the Airflow import per run).

        ``runs``: ``[{"dag_id": ..., "conf": {...} | None, "logical_date_none": bool}]``,
        run in order. Returns ``{"dag_ids", "import_errors", "runs": [per-run dicts], "output"}``.
        """
        self.runs += 1
        out = self.home / f"result-{self.runs}.json"
        proc = self.run(
            [sys.executable, str(self.home / "dag_test_runner.py"), json.dumps({"runs": runs}), str(out)],
            extra_env=extra_env,
            timeout=timeout,
        )
        output = proc.stdout + proc.stderr
        if proc.returncode != 0 or not out.exists():
            raise AirflowSubprocessError(f"dag.test runner failed (exit {proc.returncode}):\n{output[-8000:]}")
        result = json.loads(out.read_text(encoding="utf-8"))
        result["output"] = output
        return result

    def run_dag_test(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: float = 300,
        logical_date_none: bool = False,
    ) -> dict[str, Any]:
        """``dag.test()`` of ``dag_id`` from the dags folder.

        Returns ``{"state", "run_id", "tasks": {task_id: {"state", "try_number"}},
        "xcom": {task_id: return_value}, "error", "import_errors", "output"}`` (a mapped task's
        instances and results are keyed ``task_id[map_index]``);
        ``output`` holds the subprocess's stdout+stderr (task logs included).
        """
        result = self.run_dag_tests(
            [{"dag_id": dag_id, "conf": conf, "logical_date_none": logical_date_none}],
            extra_env=extra_env,
            timeout=timeout,
        )
        run = result["runs"][0]
        run["import_errors"] = result["import_errors"]
        run["dag_ids"] = result["dag_ids"]
        run["output"] = result["output"]
        if run["error"]:
            raise AirflowSubprocessError(f"{run['error']}\n--- output ---\n{result['output'][-8000:]}")
        return run

    def run_dag_file(
        self,
        source_code: str,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> dict[str, Any]:
        """Write ``<dag_id>.py`` with ``source_code`` into the dags folder and ``dag.test()`` it."""
        self.write_file(f"{dag_id}.py", source_code)
        return self.run_dag_test(dag_id, conf=conf, extra_env=extra_env, timeout=timeout)


def _clean_environ() -> dict[str, str]:
    """The pytest process's environment without any Airflow settings that could leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    # No repo root on PYTHONPATH: the package is installed (editable), and the source tree's
    # iflow_airflow.egg-info would be a second copy of the plugin's entry point.
    return env


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> AirflowEnv:
    """Temp AIRFLOW_HOME + dags folder + SQLite DB, migrated once per session."""
    home = tmp_path_factory.mktemp("airflow_home")
    dags = home / "dags"
    dags.mkdir()
    env = _clean_environ()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )
    (home / "dag_test_runner.py").write_text(RUNNER, encoding="utf-8")
    airflow = AirflowEnv(home=home, dags_folder=dags, env=env)
    proc = airflow.run([sys.executable, "-m", "airflow", "db", "migrate"], timeout=600)
    if proc.returncode != 0:
        raise AirflowSubprocessError(f"airflow db migrate failed:\n{(proc.stdout + proc.stderr)[-8000:]}")
    return airflow
