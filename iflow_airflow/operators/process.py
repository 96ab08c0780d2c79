"""Running one child process for a task: argv only, streamed logs, killable as a group.

Shared by the command and agent operators. The child gets its own session
(process group) so a timeout or a kill takes down everything it started, not
just the shell. Output is logged line by line as it arrives; stdout is kept
for the task's result and the last lines of each stream for error messages.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TAIL_LINES = 20
KILL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    stdout: str  # everything the child wrote to stdout ("" unless asked to keep it)
    last_line: str | None  # the last non-empty stdout line, stripped
    stdout_tail: tuple[str, ...]  # last lines of stdout
    stderr_tail: tuple[str, ...]  # last lines of stderr (read in parallel, so kept apart)

    @property
    def tail(self) -> tuple[str, ...]:
        """Last lines for an error message: stdout's, then stderr's, each line labelled."""
        return tuple(f"stdout | {x}" for x in self.stdout_tail) + tuple(f"stderr | {x}" for x in self.stderr_tail)

    def last_stdout_line(self) -> str | None:
        """The last non-empty stdout line, stripped; None when stdout was blank."""
        return self.last_line


class _StdoutCollector:
    """What is kept of stdout: its last lines, its last non-empty line, and all of it if asked."""

    def __init__(self, keep_all: bool) -> None:
        self.keep_all = keep_all
        self.parts: list[str] = []
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.last_line: str | None = None

    def add(self, raw: bytes) -> str:
        """Take one raw line; returns it decoded, without its line end (for the log)."""
        text = raw.decode("utf-8", errors="backslashreplace")
        if self.keep_all:
            self.parts.append(text)
        line = text.rstrip("\r\n")
        if line.strip():
            self.last_line = line.strip()
        self.tail.append(line)
        return line


def _spawn(argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> subprocess.Popen[bytes]:
    """The child in its own session (so a kill reaches everything it starts), no stdin, argv only."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        restore_signals=True,
        close_fds=True,
    )


def _close(*streams) -> None:
    for stream in streams:
        try:
            stream.close()
        except OSError:
            pass


class ChildProcess:
    """One run of ``argv``; ``terminate()`` may be called from another thread or a signal handler."""

    def __init__(self, log: logging.Logger | logging.LoggerAdapter) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None = None,
        keep_stdout: bool = False,
    ) -> ProcessResult:
        """Start ``argv`` (raises FileNotFoundError when the program is missing) and wait for it.

        ``keep_stdout`` keeps all of stdout in the result (an agent's answer); otherwise
        only its last non-empty line is kept, so a chatty command costs no memory.
        """
        self.proc = proc = _spawn(argv, env, cwd)
        assert proc.stdout is not None and proc.stderr is not None
        out = _StdoutCollector(keep_stdout)
        err_tail: deque[str] = deque(maxlen=TAIL_LINES)
        err_thread = threading.Thread(target=self._pump_stderr, args=(proc.stderr, err_tail),
                                      name="iflow-stderr", daemon=True)
        err_thread.start()
        try:
            for raw in iter(proc.stdout.readline, b""):
                self.log.info("%s", out.add(raw))
            proc.wait()
            err_thread.join(timeout=KILL_GRACE_SECONDS)
        except BaseException:
            # AirflowTaskTimeout (a BaseException raised by SIGALRM), KeyboardInterrupt,
            # SIGTERM handling...: never leave the child running behind us.
            self.terminate()
            raise
        finally:
            _close(proc.stdout, proc.stderr)
        return ProcessResult(returncode=proc.returncode, stdout="".join(out.parts), last_line=out.last_line,
                             stdout_tail=tuple(out.tail), stderr_tail=tuple(err_tail))

    def _pump_stderr(self, stream, tail: deque[str]) -> None:
        """Log stderr line by line (read in parallel with stdout, so neither pipe fills up)."""
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
                tail.append(line)
                self.log.info("[stderr] %s", line)
        except (ValueError, OSError):  # stream closed under us after a kill
            pass

    def terminate(self) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it has not gone after a grace period."""
        with self._lock:
            proc = self.proc
            if proc is None or proc.poll() is not None and not _group_alive(proc.pid):
                return
            self.log.info("Terminating process group %s", proc.pid)
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            if _group_alive(proc.pid):
                self.log.warning("Process group %s still alive after SIGTERM; sending SIGKILL", proc.pid)
                _signal_group(proc.pid, signal.SIGKILL)
                try:
                    proc.wait(timeout=KILL_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    pass


def too_big_message(argv: Sequence[str], env: Mapping[str, str], exc: OSError) -> str | None:
    """For E2BIG from exec: which arguments/variables are the large ones (Linux caps each at 128 KiB)."""
    if exc.errno != errno.E2BIG:
        return None
    sizes = [(len(k) + len(v.encode("utf-8", "surrogateescape")) + 2, k) for k, v in env.items()]
    sizes += [(len(a.encode("utf-8", "surrogateescape")) + 1, f"argument {i}") for i, a in enumerate(argv)]
    largest = ", ".join(f"{name} ({size} bytes)" for size, name in sorted(sizes, reverse=True)[:3])
    return (
        "the process could not start: its arguments and environment are too large for the OS "
        f"(one value may be at most 128 KiB on Linux); largest: {largest}. Keep large results in files "
        "and pass their paths instead"
    )


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
