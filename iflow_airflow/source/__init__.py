"""Stage 1, load: workflow files as data (safe YAML with line marks, the defaults chain, file discovery).

Pure Python: nothing here imports Airflow at module level.
"""
