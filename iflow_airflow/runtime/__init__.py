"""What runs inside Airflow's components after the DAGs exist.

Pools and the resource keeper (scheduler), scaling, listeners, metrics and alerts
(workers and scheduler), the /iflow page's figures and the plugin (api-server).
"""
