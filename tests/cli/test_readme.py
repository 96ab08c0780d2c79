"""The README's mapping table names every key of the file format (the models are the source of truth)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from iflow_airflow.schema import models
from iflow_airflow.schema.validate import _unwrap, _item_type

README = Path(__file__).resolve().parents[2] / "README.md"
CONTAINERS = {"resources": "resources.<name>", "task_types": "task_types.<type>", "params": "workflow.params.<p>",
              "tasks": "workflow.tasks[]"}


def key_paths(model: type[BaseModel], prefix: str, seen: frozenset = frozenset()) -> list[tuple[str, str]]:
    """(parent path as written in the README, leaf key) for every field, recursively.

    A model met again below itself (a group's ``tasks:`` holds tasks) is not walked twice."""
    out = []
    for name, field in model.model_fields.items():
        out.append((prefix, name))
        path = f"{prefix}.{name}" if prefix else name
        inner = _unwrap(field.annotation) or _unwrap(_item_type(field.annotation) or object)
        if name in CONTAINERS:
            path = CONTAINERS[name]
        if inner and name not in ("task_types", "params") and inner[0] not in seen:
            out.extend(key_paths(inner[0], path, seen | {model}))
    return out


def mapping_rows() -> list[str]:
    text = README.read_text()
    section = text.split("## YAML -> Airflow mapping", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


def test_every_model_key_is_in_the_mapping_table():
    rows = mapping_rows()
    missing = []
    for parent, leaf in key_paths(models.WorkflowFile, ""):
        full = f"{parent}.{leaf}" if parent else leaf
        ok = any(f"`{full}" in row or (parent and f"`{parent}" in row and re.search(rf"\b{leaf}\b", row))
                 for row in rows)
        if not ok:
            missing.append(full)
    assert missing == []


def test_mapping_table_names_no_key_the_models_lack():
    known = {f"{p}.{k}" if p else k for p, k in key_paths(models.WorkflowFile, "")}
    first_cells = [row.split("|")[1] for row in mapping_rows()[2:]]
    named = {m for cell in first_cells for m in re.findall(r"`([a-z_]+(?:\.[a-z_<>\[\]]+)+)", cell)}
    unknown = {n for n in named if n not in known | set(CONTAINERS.values()) and not n.endswith(".*")}
    assert unknown == set()


def test_configuration_table_is_every_iflow_option_with_its_default():
    """The `[iflow]` table lists exactly settings.DEFAULTS, with the shipped defaults."""
    from iflow_airflow.settings import DEFAULTS

    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \|", section, re.M)}
    assert set(rows) == set(DEFAULTS)
    for key, default in DEFAULTS.items():
        cell = rows[key]
        assert (f"`{default}`" in cell) if default else cell.startswith("(empty"), (key, cell)
