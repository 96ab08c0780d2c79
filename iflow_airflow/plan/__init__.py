"""Stage 3, plan: a validated file -> the plan IR (``ir.py``), by named passes.

Priorities, queues, conflicts, schedules and the plan cache live here. Pure Python:
nothing here imports Airflow at module level, so ``validate``/``explain`` and the
plan cache never pay for Airflow.
"""
