"""The Airflow internals that make run's loopback log servers and the page's login redirect use
(iflow_airflow/version_compat.py), pinned to the Airflow they were read against (3.3)."""

from __future__ import annotations

import sys
import textwrap

import pytest

from iflow_airflow import version_compat

pytestmark = pytest.mark.airflow

PROBE = textwrap.dedent('''
    import inspect, json, socket, sys, time, multiprocessing
    from airflow.utils.serve_logs import core
    from airflow.cli.commands import standalone_command
    from airflow.api_fastapi.core_api import security
    from iflow_airflow import version_compat

    facts = {
        "serve_logs_all_interfaces": 'host=""' in inspect.getsource(core.serve_logs),
        "subcommand_argv": '["airflow", *self.command]' in inspect.getsource(standalone_command.SubCommand.run),
        "get_user_params": list(inspect.signature(security.get_user).parameters),
    }
    version_compat.serve_logs_on("127.0.0.1")
    port = int(sys.argv[1])
    proc = multiprocessing.Process(target=core.serve_logs, args=(port,))
    proc.start()
    bound = {}
    for _ in range(120):
        import psutil
        others = [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                  if a.family == socket.AF_INET and not a.address.startswith("127.")]
        for host in ("127.0.0.1", *others[:1]):
            with socket.socket() as s:
                s.settimeout(0.5)
                bound[host] = s.connect_ex((host, port)) == 0
        if bound["127.0.0.1"]:
            break
        time.sleep(0.5)
    proc.terminate(); proc.join(10)
    facts["bound"] = bound
    print("JSON" + json.dumps(facts))
''')


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_airflow_internals_and_the_loopback_log_server(airflow_env):
    assert "3.3" in version_compat.CHECKED_AGAINST
    out = airflow_env.run([sys.executable, "-c", PROBE, str(_free_port())], timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    facts = json.loads(out.stdout.split("JSON", 1)[1])
    assert facts["serve_logs_all_interfaces"] and facts["subcommand_argv"]
    assert facts["get_user_params"] == ["request", "_oauth_token", "bearer_credentials"]
    bound = facts["bound"]
    assert bound["127.0.0.1"] is True
    others = [h for h in bound if h != "127.0.0.1"]
    assert others, "no address off loopback to check the log server against"
    assert bound[others[0]] is False, bound  # Airflow's own serve_logs would answer there
