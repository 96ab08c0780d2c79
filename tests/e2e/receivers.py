"""Local endpoints the monitoring tests send to: a webhook receiver and a StatsD collector.

Real servers on 127.0.0.1 (``http.server`` and a UDP socket, each in a thread), shared
by the unit, dag.test() and end-to-end monitoring tests (``tests/e2e`` is on their path).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    """Records every POST; answers with ``statuses`` in turn (then 200), or hangs when ``hang``."""

    def __init__(self, statuses: tuple[int, ...] | list[int] = (), hang: bool = False) -> None:
        self.statuses = list(statuses)
        self.hang = hang
        self.requests: list[dict] = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": json.loads(body), "t": time.monotonic()})
                if outer.hang:
                    outer.release.wait(30)
                    return
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StatsdCollector:
    """Keeps the lines of every StatsD packet (only those containing ``contains``, if given)."""

    def __init__(self, contains: str | None = None) -> None:
        self.contains = contains
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            self.lines.extend(ln for ln in data.decode("utf-8", "replace").splitlines()
                              if self.contains is None or self.contains in ln)

    def close(self) -> list[str]:
        """Stop (after the packets already sent have arrived); returns every kept line."""
        time.sleep(0.3)
        self._stop.set()
        self.thread.join(2)
        self.sock.close()
        return self.lines


class SmtpReceiver:
    """A real SMTP server on 127.0.0.1 (aiosmtpd in its own thread) that keeps every message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        outer = self
        self.messages: list[dict] = []

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                from email import message_from_bytes, policy

                msg = message_from_bytes(envelope.content, policy=policy.default)
                body = msg.get_body(("html", "plain"))
                outer.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                       "subject": str(msg["Subject"]),
                                       "body": body.get_content() if body is not None else "",
                                       "t": time.monotonic()})
                return "250 OK"

        with socket.socket() as probe:  # aiosmtpd checks readiness by connecting: it needs a real port
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def connection_uri(self, from_email: str = "iflow@example.test") -> str:
        """The Airflow connection (JSON, for AIRFLOW_CONN_*) of this server: plain SMTP, no TLS."""
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                           "extra": {"disable_ssl": True, "disable_tls": True, "from_email": from_email,
                                     "timeout": 5, "retry_limit": 0}})

    def close(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DripReceiver:
    """An HTTP server that answers one byte every ``gap`` seconds: no single read ever times out."""

    def __init__(self, gap: float = 1.0) -> None:
        self.gap = gap
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/alerts"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for b in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 600:
                    if self._stop.wait(self.gap):
                        return
                    conn.sendall(bytes([b]))
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self.sock.close()

    def __enter__(self) -> DripReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
