"""Writing test YAML into a temp tree: one helper for conftest and the tests that build folders."""

from __future__ import annotations

import textwrap
from pathlib import Path


def put(root: Path, rel: str, text: str | bytes) -> Path:
    """Write ``text`` (dedented; bytes as they are) to ``root/rel``, creating folders."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path
