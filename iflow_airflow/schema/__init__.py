"""Stage 2, validate: the file format as pydantic models and located validation problems.

The models are the single source of truth for the format (JSON Schema, README table).
Pure Python: nothing here imports Airflow at module level.
"""
