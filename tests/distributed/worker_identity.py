"""``[core] hostname_callable`` of the test Celery workers.

In docker compose every worker is its own container with its own host name, which
Airflow records as the task instance's ``hostname``. Here both workers share one
machine, so each worker process gets ``IFLOW_DIST_WORKER_HOSTNAME`` (``worker-a``,
``worker-b``) and this callable returns it: the REST API then says which worker ran
each try. Only the workers' environment names this module (cluster.py).
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("IFLOW_DIST_WORKER_HOSTNAME") or socket.getfqdn()
