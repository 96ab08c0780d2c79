"""Harmless demo callables for example workflows and tests.

Allow them with ``[iflow] allowed_modules = iflow_airflow.examples``.
"""
