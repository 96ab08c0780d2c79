"""The rules of the code's shape, run by ``make test`` (and so by CI): configuration, not memory.

ruff (lint, import order, complexity cap, no module-level Airflow import before
the build stage) and import-linter (stages point downwards, the kernel imports
no stage) are configured in pyproject.toml; these tests run them. The AST checks
below keep what neither tool measures: function length and the size of the
package's top level. The purity check is the hand-written backstop behind the
ruff rule: it also catches a *transitive* import of Airflow.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "iflow_airflow"
BIN = Path(sys.executable).parent
MAX_FUNCTION_LINES = 60
MAX_TOP_LEVEL_MODULES = 15


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_check_passes():
    out = _run("ruff", "check", "iflow_airflow", "dags", "benchmarks", "scripts/compose_settings.py", "tests")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_import_contracts_are_kept():
    out = _run("lint-imports")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def _long_functions(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_the_cap():
    assert _long_functions(PACKAGE) == []


def test_the_length_check_sees_a_long_function(tmp_path, monkeypatch):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n\n\ndef g():\n    return 1\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert _long_functions(tmp_path) == [f"m.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]


def test_the_top_level_is_a_small_kernel():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


def test_stages_before_build_import_no_airflow():
    """Loading, validating and planning a real file (the CLI's validate path) never imports Airflow."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from iflow_airflow.compiler import compile_file\n"
        "from iflow_airflow.settings import IflowSettings\n"
        f"c = compile_file(Path({str(REPO / 'dags' / 'full_stack_development.yaml')!r}), settings=IflowSettings())\n"
        "assert c.plan is not None, c.error\n"
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PATH": str(BIN), "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"
