"""Each touchpoint of ``iflow_airflow/version_compat.py`` against the real, installed Airflow.

Pinned to the versions the module was read against: on an Airflow whose minor
version is not in ``CHECKED_AGAINST`` the first test fails and says to read the
module again; each other test exercises one function in a real Airflow process
(a DagBag import, a dag.test() task), so a moved or renamed internal fails here
first, naming the function.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

pytestmark = pytest.mark.airflow


def _probe(airflow_env, code: str) -> dict:
    script = airflow_env.home / "compat_probe.py"
    script.write_text(textwrap.dedent(code))
    proc = airflow_env.run([sys.executable, str(script)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_installed_airflow_is_one_the_module_was_checked_against(airflow_env):
    out = _probe(airflow_env, """
        import json
        from iflow_airflow import version_compat
        print(json.dumps({"version": version_compat.airflow_version(), "checked": version_compat.CHECKED_AGAINST}))
    """)
    minor = ".".join(out["version"].split(".")[:2])
    assert minor in out["checked"], (
        f"Airflow {out['version']} is not among the versions version_compat.py was checked against "
        f"{out['checked']}: read the module against this Airflow and extend CHECKED_AGAINST")


def test_running_import_finds_airflows_import_result(airflow_env, tmp_path):
    folder = tmp_path / "bag"
    folder.mkdir()
    (folder / "probe_dag.py").write_text(textwrap.dedent("""
        # airflow dag
        import json, os
        from iflow_airflow import version_compat
        result, bundle = version_compat.running_import()
        with open(os.environ["PROBE_OUT"], "w") as f:
            json.dump({"result": type(result).__name__, "has_errors": isinstance(getattr(result, "errors", None), list)}, f)
    """))
    out_file = tmp_path / "running_import.json"
    out = _probe(airflow_env, f"""
        import json, os
        os.environ["PROBE_OUT"] = {str(out_file)!r}
        from airflow.dag_processing.dagbag import DagBag
        from iflow_airflow import version_compat
        outside = version_compat.running_import()
        DagBag(dag_folder={str(folder)!r})
        print(json.dumps({{"outside": [outside[0], outside[1]], "inside": json.load(open({str(out_file)!r}))}}))
    """)
    assert out["outside"] == [None, None]
    assert out["inside"] == {"result": "DagImportResult", "has_errors": True}


def test_ignore_rules_are_airflows_and_honoured(airflow_env, tmp_path):
    root = tmp_path / "tree"
    (root / "skip").mkdir(parents=True)
    (root / "a.yaml").write_text("x: 1\n")
    (root / "skip" / "b.yaml").write_text("x: 1\n")
    (root / ".airflowignore").write_text("skip/\n")
    out = _probe(airflow_env, f"""
        import json, os
        from pathlib import Path
        from iflow_airflow import version_compat
        from iflow_airflow.compiler import iter_yaml_files
        kinds = [version_compat.ignore_rule_type(s).__name__ for s in ("glob", "regexp")]
        methods = all(hasattr(version_compat.ignore_rule_type("glob"), m) for m in ("compile", "match"))
        found = sorted(os.path.relpath(p, {str(root)!r}) for p in iter_yaml_files(Path({str(root)!r})))
        print(json.dumps({{"kinds": kinds, "methods": methods, "found": found}}))
    """)
    assert out["kinds"] == ["_GlobIgnoreRule", "_RegexpIgnoreRule"] and out["methods"]
    assert out["found"] == ["a.yaml"]


def test_redact_secrets_uses_airflows_masker(airflow_env):
    out = _probe(airflow_env, """
        import json
        from airflow.sdk._shared.secrets_masker import mask_secret
        from iflow_airflow import version_compat
        mask_secret("hunter2-sekrit")
        print(json.dumps(version_compat.redact_secrets("the password is hunter2-sekrit")))
    """)
    assert "hunter2-sekrit" not in out and "***" in out


def test_stats_module_is_initialised_and_emits(airflow_env):
    out = _probe(airflow_env, """
        import json
        from iflow_airflow import version_compat
        stats = version_compat.stats_module()
        stats.incr("iflow.compat_probe")
        print(json.dumps({"name": stats.__name__, "incr": callable(getattr(stats, "incr", None)),
                          "same": version_compat.stats_module() is stats}))
    """)
    assert out["incr"] and out["same"]
    assert out["name"].endswith("observability.metrics.stats")


def test_supervisor_touchpoints_work_inside_a_task(airflow_env):
    source = textwrap.dedent("""
        from airflow.sdk import DAG, get_current_context
        from airflow.providers.standard.operators.python import PythonOperator


        def first():
            return "done"


        def probe():
            from iflow_airflow import version_compat
            ctx = get_current_context()
            run = version_compat.get_dag_run(ctx["dag"].dag_id, ctx["run_id"])
            count = version_compat.count_task_instances(ctx["dag"].dag_id, ["first"], ["success"])
            return {"run_id": run.run_id, "first_succeeded": count}


        with DAG("compat_supervisor_probe", schedule=None):
            PythonOperator(task_id="first", python_callable=first) >> PythonOperator(task_id="probe", python_callable=probe)
    """)
    result = airflow_env.run_dag_file(source, "compat_supervisor_probe")
    assert result["state"] == "success", result.get("error")
    probe = result["xcom"]["probe"]
    assert probe["first_succeeded"] >= 1
    assert probe["run_id"]
