"""Stage 4, build: the plan IR -> one ``airflow.sdk`` DAG per file, and the loader.

``dag.py`` turns a plan into a DAG, ``loader.py`` is what the dag-processor runs
(``iflow_airflow.importer.load_workflows`` is its stored path), ``folder.py`` walks the
dags folder, ``last_good.py`` keeps the last version of a file that compiled, ``budget.py``
bounds one file's cost and ``registry.py`` maps DAG ids to their plans for the runtime.
Of the compiler's stages, only this one imports ``airflow.sdk``.
"""
