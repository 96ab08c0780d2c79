"""Shared by every test folder: ``scripts/`` is importable (compose_settings.py, the settings
of docker-compose.yaml that make run and the end-to-end harnesses use)."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
