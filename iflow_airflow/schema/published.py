"""The JSON Schemas of the two file kinds, as published: in the package, by the CLI, by the plugin.

* ``workflow``: a workflow file (``workflow.name`` and ``workflow.tasks`` required);
* ``defaults``: an ``iflow.defaults.yaml`` (every block optional; ``workflow`` may give
  defaults but never ``name`` or ``tasks``, which the compiler rejects in a defaults file).

Both are derived from the pydantic models (the single source of truth) and shipped as
package data next to this module (``workflow.schema.json``, ``defaults.schema.json``;
``make schema`` rewrites them, a test checks they are current). The api-server serves
them at ``/iflow/schema/<name>.json`` for editors (yaml-language-server), without login:
they describe the file format, nothing of the deployment.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

#: Keys a defaults file must not set under ``workflow`` (see compiler._check_defaults).
NOT_IN_DEFAULTS = ("name", "tasks")
NAMES = ("workflow", "defaults")


def defaults_schema(workflow_schema: dict[str, Any]) -> dict[str, Any]:
    """The defaults-file schema: the workflow schema with every block optional and a
    ``workflow`` block that may not name the workflow or list tasks."""
    schema = copy.deepcopy(workflow_schema)
    schema["title"] = "iflow defaults file (iflow.defaults.yaml)"
    schema["$id"] = "urn:iflow-airflow:schema:defaults"
    schema["required"] = [k for k in schema.get("required", []) if k != "workflow"]
    if not schema["required"]:
        schema.pop("required")
    defs = schema["$defs"]
    ref = schema["properties"]["workflow"]["$ref"].rsplit("/", 1)[1]
    block = copy.deepcopy(defs[ref])
    for key in NOT_IN_DEFAULTS:
        block["properties"].pop(key, None)
    block["required"] = [k for k in block.get("required", []) if k not in NOT_IN_DEFAULTS]
    if not block["required"]:
        block.pop("required")
    block["title"] = "Workflow defaults"
    defs["WorkflowDefaults"] = block
    schema["properties"]["workflow"] = {"$ref": "#/$defs/WorkflowDefaults"}
    return schema


def build(name: str) -> dict[str, Any]:
    """The schema ``name`` (``workflow`` or ``defaults``), built from the models now."""
    from iflow_airflow.schema.models import json_schema

    if name not in NAMES:
        raise KeyError(f"no schema {name!r}; known: {', '.join(NAMES)}")
    schema = json_schema()
    return schema if name == "workflow" else defaults_schema(schema)


def file_name(name: str) -> str:
    return f"{name}.schema.json"


def packaged_path(name: str) -> Path:
    """Where the installed package keeps schema ``name`` (a real file: package data)."""
    return Path(str(resources.files("iflow_airflow") / "schema" / file_name(name)))


def packaged_text(name: str) -> str:
    """The shipped schema file's text (what the plugin serves)."""
    return packaged_path(name).read_text(encoding="utf-8")


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_all(folder: Path | None = None) -> list[Path]:
    """Rewrite the shipped files from the models (``make schema``)."""
    folder = folder or packaged_path("workflow").parent
    written = []
    for name in NAMES:
        path = folder / file_name(name)
        path.write_text(render(build(name)), encoding="utf-8")
        written.append(path)
    return written
