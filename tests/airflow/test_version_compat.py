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

CHECK = textwrap.dedent('''
    import inspect, json
    import airflow
    from airflow.dag_processing.manager import DagFileProcessorManager as M, DagFileInfo, DagFileStat
    from airflow.models.errors import ParseImportError
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from iflow_airflow import version_compat as vc

    def params(f):
        return sorted(inspect.signature(f).parameters)

    _, error_cls, result_cls = vc.importer_api()
    importer = "airflow.sdk.importers.python_importer" if vc.airflow_version() >= (3, 4) \\
        else "airflow.dag_processing.importers.python_importer"
    py = __import__(importer, fromlist=["PythonDagImporter"]).PythonDagImporter
    entry = py.import_definition if hasattr(py, "import_definition") else py.import_file
    out = {
        "version": airflow.__version__,
        "checked": list(vc.CHECKED_AIRFLOW),
        "clear_orphans": params(M.clear_orphaned_import_errors),
        "persist": params(M.persist_parsing_result),
        "claim": params(M.claim_priority_files),
        "prepare": params(M.prepare_file_queue),
        "manager_attrs": sorted({"_dag_bundles", "_file_stats", "_processors"} & {a.name for a in M.__attrs_attrs__}),
        "stat_fields": sorted(a.name for a in DagFileStat.__attrs_attrs__),
        "absolute_path": isinstance(getattr(DagFileInfo, "absolute_path", None), property),
        "bundles_attr": "_dag_bundles" in {a.name for a in M.__attrs_attrs__},
        "file_info": params(DagFileInfo),
        "import_error_columns": sorted(c.name for c in ParseImportError.__table__.columns),
        "tags_nullable": "tags" in LazyDeserializedDAG.NULLABLE_PROPERTIES,
        "entry_locals": sorted(entry.__code__.co_varnames),
        "entry_name": entry.__name__,
        "error_fields": sorted(error_cls.__dataclass_fields__),
        "result_fields": sorted(result_cls.__dataclass_fields__),
        "installed": vc.install_dag_processor_upkeep(object()),
    }
    print("JSON" + json.dumps(out))
''')


def test_the_internals_iflow_touches_are_as_checked(airflow_env):
    proc = airflow_env.run([sys.executable, "-c", CHECK])
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.split("JSON", 1)[1])
    assert seen["version"] in seen["checked"], f"re-check version_compat.py against Airflow {seen['version']}"
    assert {"self", "bundle_name", "observed_filelocs", "session"} <= set(seen["clear_orphans"])
    assert {"self", "bundle_name", "parsing_result", "relative_fileloc", "session"} <= set(seen["persist"])
    assert seen["claim"] == ["self"]
    assert seen["bundles_attr"] is True
    assert {"rel_path", "bundle_name", "bundle_path"} <= set(seen["file_info"])
    assert {"bundle_name", "filename", "stacktrace"} <= set(seen["import_error_columns"])
    assert seen["tags_nullable"] is True
    assert "result" in seen["entry_locals"] and seen["entry_name"] in ("import_file", "import_definition")
    assert ({"source_reference"} if seen["version"].startswith("3.4") else {"file_path"}) <= set(seen["error_fields"])
    assert {"message", "error_type", "line_number", "column_number", "suggestion"} <= set(seen["error_fields"])
    assert {"dags", "errors"} <= set(seen["result_fields"])
    assert seen["prepare"] == ["known_files", "self"]
    assert seen["manager_attrs"] == ["_dag_bundles", "_file_stats", "_processors"]
    assert "last_finish_time" in seen["stat_fields"] and seen["absolute_path"] is True
    assert seen["installed"] == ["clear_orphaned_import_errors", "persist_parsing_result", "claim_priority_files",
                                 "prepare_file_queue"]



def _probe(airflow_env, code: str) -> dict:
    script = airflow_env.home / "compat_probe.py"
    script.write_text(textwrap.dedent(code))
    proc = airflow_env.run([sys.executable, str(script)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
        from iflow_airflow.source.discovery import iter_yaml_files
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
