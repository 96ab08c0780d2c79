"""Every touchpoint with Airflow internals, one small function each, with the version checked."""

from __future__ import annotations

from typing import Any


def redact_secrets(value: Any) -> Any:
    """``value`` with the secrets Airflow's masker knows replaced by ``***`` (unchanged if it cannot).

    Checked against Airflow 3.3: the task process registers connection passwords and
    sensitive variables with ``airflow.sdk._shared.secrets_masker``; scheduler-side code
    uses ``airflow._shared.secrets_masker``. Both expose ``redact(value)``.
    """
    for module in ("airflow.sdk._shared.secrets_masker", "airflow._shared.secrets_masker"):
        try:
            redact = __import__(module, fromlist=["redact"]).redact
        except (ImportError, AttributeError):
            continue
        try:
            return redact(value)
        except Exception:  # a masker problem must never lose the alert
            return value
    return value


def ignore_rule_type(syntax: str) -> Any:
    """Airflow's ``.airflowignore`` rule class for ``[core] dag_ignore_file_syntax`` (glob or regexp).

    Checked against Airflow 3.3 (``airflow._shared.module_loading.file_discovery``): each
    class has ``compile(pattern, base_dir, definition_file)`` and ``match(path, rules)``.
    Raises ImportError when Airflow is not installed.
    """
    from airflow._shared.module_loading import file_discovery as fd

    if syntax in ("glob", "", None):
        return fd._GlobIgnoreRule
    if syntax == "regexp":
        return fd._RegexpIgnoreRule
    raise ValueError(f"Unsupported ignore_file_syntax: {syntax}")
