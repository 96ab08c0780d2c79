"""Unit tests of operator kinds: built-ins, aliases, entry-point kinds, lazy exports; run without an Airflow database."""

from __future__ import annotations

import sys

import pytest
from op_helpers import EXAMPLES, HOSTILE, FakeTI, ctx, marker_values  # noqa: F401

from iflow_airflow.allowlist import ModuleNotAllowedError
from iflow_airflow.settings import IflowSettings

# --------------------------------------------------------------------------- registry


def test_package_exports_resolve_lazily():
    """Names and submodules of ``iflow_airflow.operators`` resolve on first use (the DAG builder relies on it)."""
    import subprocess

    code = (
        "import sys, iflow_airflow.operators as ops\n"
        "assert 'airflow.sdk' not in sys.modules\n"
        "assert ops.kinds.builtin_kind_for('bash') == 'command'\n"
        "assert ops.check_callable_target('os:system', __import__('iflow_airflow.settings').settings.IflowSettings())\n"
        "assert 'airflow.sdk' not in sys.modules\n"
        "assert ops.IflowWaitOperator.__name__ == 'IflowWaitOperator'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_builtin_kinds_and_aliases():
    from iflow_airflow.operators.kinds import builtin_kind_for, builtin_operator_class

    assert [builtin_kind_for(n) for n in ("bash", "python", "agent", "command", "wait", "checkpoint")] == [
        "command",
        "callable",
        "prompt",
        "command",
        "wait",
        "checkpoint",
    ]
    assert builtin_kind_for("sql") is None
    assert builtin_operator_class("bash").__name__ == "IflowCommandOperator"
    assert builtin_operator_class("agent").__name__ == "IflowAgentOperator"


@pytest.fixture
def custom_kinds(tmp_path, monkeypatch):
    """A fake installed distribution that registers two custom kinds via entry points."""
    pkg = "iflow_custom_ops_pkg"
    (tmp_path / f"{pkg}.py").write_text(
        "from airflow.sdk import BaseOperator\n"
        f"open({str(tmp_path / 'imported')!r}, 'w').write('y')\n"
        "class Shout(BaseOperator):\n"
        "    def execute(self, context):\n        return 'HEY'\n"
        "NOT_AN_OPERATOR = 1\n",
        encoding="utf-8",
    )
    dist = tmp_path / "iflow_custom_ops-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: iflow-custom-ops\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[iflow_airflow.operators]\n"
        f"shout = {pkg}:Shout\n"
        f"broken = {pkg}:NOT_AN_OPERATOR\n"
        f"bash = {pkg}:Shout\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(pkg, None)
    yield pkg, tmp_path / "imported"
    sys.modules.pop(pkg, None)


def test_custom_kinds_are_listed_and_loaded(custom_kinds):
    """Entry points add kinds; built-in names cannot be hijacked by a plugin."""
    from iflow_airflow.operators.kinds import available_kinds, load_custom_operator

    pkg, _ = custom_kinds
    kinds = available_kinds()
    assert "shout" in kinds and "broken" in kinds and kinds.count("bash") == 1
    cls = load_custom_operator("shout", IflowSettings(allowed_modules=(pkg,)))
    assert cls.__name__ == "Shout"
    assert load_custom_operator("bash", IflowSettings(allowed_modules=(pkg,))).__name__ == "IflowCommandOperator"
    with pytest.raises(TypeError, match="not a subclass"):
        load_custom_operator("broken", IflowSettings(allowed_modules=(pkg,)))


def test_custom_kind_from_disallowed_module_is_not_imported(custom_kinds):
    from iflow_airflow.operators.kinds import load_custom_operator

    pkg, imported = custom_kinds
    with pytest.raises(ModuleNotAllowedError) as err:
        load_custom_operator("shout", EXAMPLES)
    assert pkg in str(err.value) and "AIRFLOW__IFLOW__ALLOWED_MODULES" in str(err.value)
    assert isinstance(err.value, ValueError)
    assert not imported.exists()


def test_unknown_kind_lists_known_kinds(custom_kinds):
    from iflow_airflow.operators.kinds import load_custom_operator

    with pytest.raises(LookupError) as err:
        load_custom_operator("sql", EXAMPLES)
    assert "'sql'" in str(err.value) and "shout" in str(err.value) and "command" in str(err.value)
