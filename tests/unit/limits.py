"""Compile one file in a child process under resource limits, and report the outcome and its cost.

Size and complexity attacks are judged by outcome (a plan, or a located error)
under ``RLIMIT_CPU`` / ``RLIMIT_AS``, never by a timed assertion; the CPU time and
peak memory are printed (run pytest with ``-s``) for the README's Security model.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# Runs in a child: compile one file, print the outcome as JSON (and the figures).
CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from pathlib import Path
    from iflow_airflow.compiler import compile_file
    from iflow_airflow.settings import IflowSettings
    t0 = time.process_time()
    c = compile_file(Path(sys.argv[1]), settings=IflowSettings(max_file_bytes=int(sys.argv[2])), explicit=True)
    out = {"cpu_s": round(time.process_time() - t0, 3),
           "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "plan": c.plan is not None,
           "total": c.error.total if c.error else 0,
           "problems": [[p.key_path, p.line, p.column, p.code, p.message]
                        for p in (c.error.problems if c.error else [])]}
    print("OUTCOME " + json.dumps(out))
""")


def run_limited(path: Path, *, cpu_s: int = 60, mem_mib: int = 1500, max_bytes: int = 2 * 1024 * 1024) -> dict:
    """Compile ``path`` in a child limited to ``cpu_s`` CPU seconds and ``mem_mib`` of address space."""
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
        resource.setrlimit(resource.RLIMIT_AS, (mem_mib * 2**20, mem_mib * 2**20))

    t0 = time.monotonic()
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), str(max_bytes)], capture_output=True, text=True,
                          preexec_fn=limits, timeout=cpu_s * 6, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("OUTCOME ")), None)
    assert line, f"the child died (rc {proc.returncode}, limits {cpu_s} s CPU, {mem_mib} MiB):\n{proc.stderr[-3000:]}"
    out = json.loads(line[len("OUTCOME "):])
    print(f"\n{path.name}: {path.stat().st_size:,} bytes, {out['cpu_s']} s CPU, "
          f"{time.monotonic() - t0:.1f} s wall (with start-up), max RSS {out['max_rss_mib']} MiB")
    return out
