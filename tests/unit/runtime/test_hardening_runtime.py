"""Issue 14 (hardening round 2): run-time defects, reproduced against real loopback servers.

D7 (wait: url bounds), the redirect policy of ``wait: url`` and webhooks, alert
masking, D9 (the /iflow page fails closed), D11 at run time (an undeclared conf key
never shadows a declared param) and D13 (the keeper's scan follows symlinked
folders). Outcomes are asserted, never durations.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest
from compile_helpers import SETTINGS
from tree_files import put


class RawServer:
    """A loopback TCP server that answers every connection with ``respond(conn, peer_requests)``.

    Counts the bytes it managed to send and the requests it saw (first line only).
    """

    def __init__(self, respond, host: str = "127.0.0.1"):
        self.respond = respond
        self.sock = socket.create_server((host, 0))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.sent = 0
        self.requests: list[str] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                head = conn.recv(65536).decode("latin-1")
                self.requests.append(head.split("\r\n", 1)[0])
                self.respond(self, conn)
            except OSError:
                pass

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def servers():
    made: list[RawServer] = []

    def make(respond, host: str = "127.0.0.1") -> RawServer:
        made.append(RawServer(respond, host))
        return made[-1]

    yield make
    for s in made:
        s.close()


def trickle(seconds: float):
    """A 200 whose headers arrive one byte per second for ``seconds`` (each read well inside any timeout)."""
    def respond(server: RawServer, conn: socket.socket) -> None:
        server.send(conn, b"HTTP/1.1 200 OK\r\n")
        for _ in range(int(seconds)):
            server.send(conn, b"X")
            time.sleep(1)
        server.send(conn, b": y\r\nContent-Length: 0\r\n\r\n")
    return respond


def huge_body(size: int):
    def respond(server: RawServer, conn: socket.socket) -> None:
        server.send(conn, f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"\0" * 65536
        for _ in range(size // len(chunk)):
            server.send(conn, chunk)
    return respond


def redirect_to(location: str):
    def respond(server: RawServer, conn: socket.socket) -> None:
        server.send(conn, f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())
    return respond


def ok(server: RawServer, conn: socket.socket) -> None:
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def sync_wait(url: str, timeout: float):
    from iflow_airflow.operators.wait import IflowWaitOperator

    return IflowWaitOperator(task_id="w", url=url, timeout_seconds=timeout, poke_interval=0.2).execute({})


def trigger_event(url: str, timeout: float) -> dict[str, Any]:
    from iflow_airflow.triggers.wait import IflowWaitTrigger

    trig = IflowWaitTrigger("url", url=url, poke_interval=0.2, deadline=time.time() + timeout, timeout_seconds=timeout)

    async def first():
        return await anext(trig.run())

    return asyncio.run(asyncio.wait_for(first(), 120)).payload


# ------------------------------------------------------------------ D7: wait: url bounds


def test_d7_a_trickling_server_cannot_stretch_a_polling_wait(servers):
    from airflow.sdk.exceptions import AirflowException

    slow = servers(trickle(15))
    with pytest.raises(AirflowException, match="timed out after 3 s"):
        sync_wait(slow.url, timeout=3)  # per-read timeouts let it succeed after 15 s


def test_d7_a_trickling_server_cannot_stretch_a_deferred_wait(servers):
    slow = servers(trickle(15))
    assert trigger_event(slow.url, timeout=3)["status"] == "timeout"


@pytest.mark.parametrize("how", ["sync", "deferred"])
def test_d7_a_check_never_reads_the_body(servers, how):
    big = servers(huge_body(256 * 1024**2))
    if how == "sync":
        sync_wait(big.url, timeout=20)
    else:
        assert trigger_event(big.url, timeout=20)["status"] == "ok"
    time.sleep(0.5)
    assert big.sent < 32 * 1024**2, f"the check read {big.sent:,} bytes of the body"


# ------------------------------------------------------------------ redirects (decided: same host only)


def test_wait_url_follows_a_redirect_on_the_same_host_only(servers):
    from airflow.sdk.exceptions import AirflowException

    target = servers(ok, host="127.0.0.2")  # another host (loopback, another address)
    same = servers(ok)
    hop = servers(redirect_to(f"{same.url}/here"))
    sync_wait(hop.url, timeout=5)
    assert same.requests == ["GET /here HTTP/1.1"]
    away = servers(redirect_to(f"{target.url}/there"))
    with pytest.raises(AirflowException, match="timed out"):
        sync_wait(away.url, timeout=1.5)
    assert trigger_event(away.url, timeout=1.5)["status"] == "timeout"
    assert target.requests == []


def test_wait_url_never_follows_a_redirect_to_another_scheme(servers):
    from iflow_airflow.http_policy import probe_url_sync, redirect_allowed

    ftp = servers(redirect_to("ftp://127.0.0.1/file"))
    status, detail = probe_url_sync(ftp.url, 5)
    assert status == 302 and "not followed" in detail
    assert not redirect_allowed("https://a.example/x", "http://a.example/x")  # no downgrade
    assert redirect_allowed("http://a.example/x", "https://A.example/y")


def test_webhook_is_never_redirected(servers):
    from iflow_airflow.runtime.alerts import build_payload, post_json

    receiver = servers(ok, host="127.0.0.2")
    hop = servers(redirect_to(f"{receiver.url}/hook"))
    delivery = post_json(hop.url, build_payload("task_failed", "wf", task="t", error="boom"), tries=1)
    assert not delivery.delivered and delivery.status == 302
    assert receiver.requests == []  # urllib used to re-send it there, as a GET without the payload


def test_alert_error_text_goes_through_airflows_secret_masker():
    from airflow.sdk.log import mask_secret

    from iflow_airflow.runtime.alerts import build_payload

    mask_secret("hunter2-s3cret-value")
    payload = build_payload("task_failed", "wf", task="t", error="connect failed: password=hunter2-s3cret-value")
    assert "hunter2-s3cret-value" not in payload["error"] and "***" in payload["error"]
    assert "hunter2-s3cret-value" not in payload["message"]


# ------------------------------------------------------------------ D9: the /iflow page fails closed


def test_d9_when_the_permission_lookup_raises_no_dag_is_readable():
    from iflow_airflow.runtime.plugin.web import _readable_dag_ids

    # no auth manager initialised in this process: get_auth_manager() raises, as a broken one would
    assert _readable_dag_ids(user=object(), session=None) == set()


# ------------------------------------------------------------------ D11 at run time


def test_d11_an_undeclared_conf_key_never_shadows_a_declared_param():
    from airflow.sdk import DAG, Param

    from iflow_airflow.operators.run_env import build_env

    dag = DAG("wf", params={"a_b": Param("safe", enum=["safe", "also_safe"])}, schedule=None)
    # what process_params hands the task: declared params, then the run's conf on top
    context = {"dag": dag, "params": {"a_b": "also_safe", "a-b": "$(rm -rf ~)"}}
    env = build_env(context, base={}, results={})
    assert env["IFLOW_PARAM_a_b"] == "also_safe"


# ------------------------------------------------------------------ D13: the keeper's scan and symlinks


def test_d13_a_workflow_added_under_a_symlinked_folder_is_seen(tmp_path):
    from iflow_airflow.runtime.pools import FolderScanner, desired_pools

    dags, team = tmp_path / "dags", tmp_path / "team_repo"
    put(dags, "a.yaml", "resources: {db: 1}\nworkflow: {name: a, tasks: [{id: t, resource: db}]}\n")
    team.mkdir()
    (dags / "team").symlink_to(team)
    scanner = FolderScanner(dags, SETTINGS)
    assert set(desired_pools(scanner.scan()[0])) == {"iflow_db"}
    put(team, "b.yaml", "resources: {gpu: 2}\nworkflow: {name: b, tasks: [{id: t, resource: gpu}]}\n")
    results, changed = scanner.scan()
    assert changed and set(desired_pools(results)) == {"iflow_db", "iflow_gpu"}


def test_d13_the_scan_survives_a_symlink_loop(tmp_path):
    from iflow_airflow.runtime.pools import FolderScanner

    put(tmp_path, "a.yaml", "workflow: {name: a, tasks: [{id: t}]}\n")
    (tmp_path / "loop").symlink_to(tmp_path)  # looked at once, not forever (and not an error)
    results, changed = FolderScanner(tmp_path, SETTINGS).scan()
    assert changed and [(c.display, c.ok) for c in results] == [("a.yaml", True)]


def test_the_local_engine_reads_only_the_end_of_a_huge_run_log(tmp_path):
    """The D6 class on the client side: a run that printed 64 MiB is not read whole to show its tail."""
    import tracemalloc

    from iflow_airflow.client.engine import LOG_TAIL, _log_tail

    log = tmp_path / "run.log"
    with log.open("wb") as fh:
        fh.write(b"x" * (64 * 1024**2))
        fh.write("the end: é\n".encode())
    tracemalloc.start()
    tail = _log_tail(log)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(tail) == LOG_TAIL and tail.endswith("the end: é\n")
    assert peak < 1024**2, f"{peak:,} bytes allocated to read the tail"
