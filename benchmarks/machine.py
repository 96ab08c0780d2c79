"""Machine facts printed beside every benchmark table (the figures mean little without them)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def machine_facts() -> dict[str, str]:
    try:
        from importlib.metadata import version

        airflow = version("apache-airflow")
    except Exception:  # noqa: BLE001
        airflow = "?"
    return {"nproc": str(os.cpu_count()), "cpu": cpu_model(), "python": platform.python_version(),
            "airflow": airflow}


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_machine_table(facts: dict[str, str], load_label: str, loads: str, command: str) -> None:
    """The machine table every benchmark prints above its figures."""
    print()
    print("| machine | |")
    print("|---|---|")
    print(f"| nproc | {facts['nproc']} |")
    print(f"| CPU | {facts['cpu']} |")
    print(f"| Python / Airflow | {facts['python']} / {facts['airflow']} |")
    print(f"| load average (1/5/15 min) at {load_label} | {loads} |")
    print(f"| command | `{command}` |")
