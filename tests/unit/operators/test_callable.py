"""Unit tests of callable targets (allow-list, resolution) and the callable operator; run without an Airflow database."""

from __future__ import annotations

import sys

import pytest
from op_helpers import EXAMPLES, HOSTILE, FakeTI, ctx, marker_values  # noqa: F401

from iflow_airflow.allowlist import CallableTargetError, ModuleNotAllowedError, check_callable_target, resolve_callable
from iflow_airflow.settings import IflowSettings

# --------------------------------------------------------------------------- callable targets


@pytest.fixture
def tripwire_module(tmp_path, monkeypatch):
    """A module that records being imported, to prove disallowed modules are never imported."""
    name = "iflow_tripwire_mod"
    flag = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(flag)!r}, 'w').write('yes')\n\ndef f():\n    return 1\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    yield name, flag
    sys.modules.pop(name, None)


def test_disallowed_callable_is_rejected_without_import(tripwire_module):
    """The allow-list is checked before importing: a disallowed module's code never runs."""
    name, flag = tripwire_module
    msg = check_callable_target(f"{name}:f", EXAMPLES)
    assert msg and name in msg and "[iflow] allowed_modules" in msg and "AIRFLOW__IFLOW__ALLOWED_MODULES" in msg
    assert not flag.exists() and name not in sys.modules
    with pytest.raises(ModuleNotAllowedError):
        resolve_callable(f"{name}:f", EXAMPLES)
    assert not flag.exists()


def test_allowed_callable_is_imported_and_checked(tripwire_module):
    """An allowed target is imported and must exist and be callable."""
    name, flag = tripwire_module
    settings = IflowSettings(allowed_modules=(name,))
    assert check_callable_target(f"{name}:f", settings) is None
    assert flag.exists()
    assert resolve_callable(f"{name}:f", settings)() == 1
    assert "no attribute 'g'" in check_callable_target(f"{name}:g", settings)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("iflow_airflow.examples.callables:Text.upper", None),
        ("iflow_airflow.examples.callables:summarize", None),
        ("iflow_airflow.examples.callables:__name__", "not callable"),
        ("iflow_airflow.examples.callables:Text.nope", "no attribute 'nope'"),
        ("iflow_airflow.examples.nonexistent:f", "cannot import module"),
        ("iflow_airflow.examples.callables", "is not of the form"),
        ("iflow_airflow.examples.callables:f; rm -rf /", "is not of the form"),
        ("os:system", "not in the allowed modules"),
        ("iflow_airflow.examplesX:f", "not in the allowed modules"),
    ],
)
def test_check_callable_target_cases(target, expected):
    """Malformed, missing, non-callable and outside-the-prefix targets each get a clear message."""
    msg = check_callable_target(target, EXAMPLES)
    if expected is None:
        assert msg is None
    else:
        assert msg is not None and expected in msg


def test_resolve_callable_raises_value_errors():
    """Both failure kinds are ValueErrors, so callers can catch one type."""
    with pytest.raises(CallableTargetError):
        resolve_callable("nope", EXAMPLES)
    with pytest.raises(ValueError):
        resolve_callable("os:system", EXAMPLES)


# --------------------------------------------------------------------------- callable operator


def test_callable_gets_args_results_and_params(monkeypatch):
    """Static args/kwargs plus iflow_results/iflow_params when the signature asks for them."""
    from iflow_airflow.operators.callable import IflowCallableOperator

    monkeypatch.setenv("AIRFLOW__IFLOW__ALLOWED_MODULES", "iflow_airflow.examples")
    op = IflowCallableOperator(
        task_id="s",
        target="iflow_airflow.examples.callables:summarize",
        kwargs={"text": "report"},
        result_tasks=["b", "a", "missing"],
    )
    assert op.execute(ctx(xcoms={"a": "1", "b": {"k": 2}})) == "report; a=1; b={'k': 2}"
    greet = IflowCallableOperator(task_id="g", target="iflow_airflow.examples.callables:greet", args=["x"])
    assert greet.execute(ctx(params={"name": "run-param"})) == "hello run-param"
    add = IflowCallableOperator(task_id="add", target="iflow_airflow.examples.callables:add", args=[2, 3])
    assert add.execute(ctx()) == 5


def test_callable_with_var_kwargs_gets_both(tmp_path, monkeypatch):
    """A ``**kwargs`` function receives iflow_results and iflow_params too."""
    from iflow_airflow.operators.callable import IflowCallableOperator

    (tmp_path / "iflow_kw_mod.py").write_text("def f(**kw):\n    return sorted(kw)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("AIRFLOW__IFLOW__ALLOWED_MODULES", "iflow_kw_mod")
    op = IflowCallableOperator(task_id="k", target="iflow_kw_mod:f", kwargs={"x": 1})
    assert op.execute(ctx()) == ["iflow_params", "iflow_results", "x"]


def test_callable_rechecks_allow_list_at_run_time(monkeypatch):
    """A target allowed when parsed but not on the worker fails, without retry, naming the setting."""
    from airflow.sdk.exceptions import AirflowFailException

    from iflow_airflow.operators.callable import IflowCallableOperator

    monkeypatch.setenv("AIRFLOW__IFLOW__ALLOWED_MODULES", "some.other.pkg")
    op = IflowCallableOperator(task_id="s", target="iflow_airflow.examples.callables:add", args=[1, 2])
    with pytest.raises(AirflowFailException) as err:
        op.execute(ctx())
    assert "AIRFLOW__IFLOW__ALLOWED_MODULES" in str(err.value)


def test_callable_rejects_malformed_target_and_reserved_kwargs():
    """Mistakes are caught when the DAG is built, not at run time."""
    from iflow_airflow.operators.callable import IflowCallableOperator

    with pytest.raises(CallableTargetError):
        IflowCallableOperator(task_id="x", target="not a target")
    with pytest.raises(ValueError, match="iflow_results"):
        IflowCallableOperator(task_id="y", target="m:f", kwargs={"iflow_results": {}})


def test_fail_once_fails_then_succeeds(tmp_path):
    """The retry demo fails exactly once per marker file."""
    from iflow_airflow.examples.callables import fail_once

    marker = tmp_path / "m"
    with pytest.raises(RuntimeError):
        fail_once(str(marker))
    assert fail_once(str(marker)) == "succeeded after a failure"


