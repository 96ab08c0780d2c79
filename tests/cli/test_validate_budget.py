"""`validate` and the loader's per-file time budget (issue 14, D10): a file over it fails, a file near it warns."""

from __future__ import annotations

from iflow_airflow.build import folder as loader
from iflow_airflow.client.cli import main


def _chain(n: int) -> str:
    lines = ["workflow:\n  name: big\n  tasks:\n    - {id: t0, command: 'true'}"]
    lines += [f"    - {{id: t{i}, dependencies: [t{i - 1}], command: 'true'}}" for i in range(1, n)]
    return "\n".join(lines) + "\n"


def test_a_file_over_the_budget_fails_as_the_loader_would_fail_it(tmp_path, capsys, monkeypatch):
    (tmp_path / "big.yaml").write_text(_chain(400))
    monkeypatch.setenv("AIRFLOW__IFLOW__FILE_PARSE_BUDGET", "0.001")
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "big.yaml: (top level): compiling this file took longer than its budget of 0.0 s" in out
    assert "FAIL big.yaml: 1 problem" in out


def test_a_file_near_the_budget_is_ok_with_a_warning_for_compile_and_build(tmp_path, capsys, monkeypatch):
    (tmp_path / "big.yaml").write_text(_chain(loader.BUILD_CHECK_TASKS))
    (tmp_path / "small.yaml").write_text(_chain(3).replace("name: big", "name: small"))
    monkeypatch.setattr(loader, "NEAR_BUDGET", 0.0)  # every measured stage counts as near
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    big = out.index("OK   big.yaml: workflow big, 200 tasks, 0 resources, 0 conflicts")
    assert out[big - 2].startswith("  warning: compiling it took ") and "near its budget of 5 s" in out[big - 2]
    assert out[big - 1].startswith("  warning: building its DAG took ")  # large enough to be built and timed
    small = out.index("OK   small.yaml: workflow small, 3 tasks, 0 resources, 0 conflicts")
    assert [line for line in out[big + 1:small] if "building" in line] == []


def test_no_warning_far_from_the_budget(tmp_path, capsys):
    (tmp_path / "small.yaml").write_text(_chain(3))
    assert main(["validate", str(tmp_path)]) == 0
    assert "warning" not in capsys.readouterr().out
