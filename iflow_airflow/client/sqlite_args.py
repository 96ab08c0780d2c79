"""Connect arguments of the embedded Airflow's SQLite database (``[database] sql_alchemy_connect_args``).

Airflow imports these by dotted path in every component, so this module imports
nothing. Several processes write the one file (scheduler, dag-processor,
triggerer, api-server): a connection waits up to 30 s for a lock instead of the
driver's 5 s before "database is locked" (the supervisor also switches the file
to WAL, where readers never block the writer).
"""

SYNC = {"timeout": 30}
ASYNC = {"timeout": 30}
