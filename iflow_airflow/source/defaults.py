"""The defaults chain: every ``iflow.defaults.yaml`` from the dags folder down to a file's folder.

Rule (SPEC §1): the nearest file wins key by key, and the workflow file's own
values win over all; mappings merge, anything else replaces. A defaults file
may not set ``workflow.tasks`` or ``workflow.name``. A broken defaults file is
an error of every workflow below it (and never of the others).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iflow_airflow.constants import DEFAULTS_FILE_NAME as DEFAULTS_NAME
from iflow_airflow.errors import Problem, WorkflowFileError
from iflow_airflow.settings import IflowSettings
from iflow_airflow.source import reader as yaml_source


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key (``over`` wins); any other value replaces."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class DefaultsChain:
    """Parsed ``iflow.defaults.yaml`` files, cached per folder for one compile pass.

    Also the one place a compile pass resolves paths: the root once, each file
    once, each folder's chain once (the dag-processor re-parses every file).
    """

    def __init__(self, root: Path | None, settings: IflowSettings):
        self.root = root
        self.settings = settings
        self._root_resolved = root.resolve() if root is not None else None
        self._docs: dict[Path, yaml_source.YamlDocument | WorkflowFileError | None] = {}
        self._chains: dict[Path, list[yaml_source.YamlDocument | WorkflowFileError]] = {}

    def display(self, path: Path) -> str:
        """``path`` relative to the root (how errors and the plan cache name a file)."""
        if self.root is not None:
            for p, root in ((path, self.root), (path.resolve(), self._root_resolved)):
                try:  # as found (a symlinked sub-folder keeps its name), else resolved
                    return str(p.relative_to(root))
                except ValueError:
                    pass
        return str(path)

    def _load(self, folder: Path) -> yaml_source.YamlDocument | WorkflowFileError | None:
        if folder not in self._docs:
            path = folder / DEFAULTS_NAME
            doc: yaml_source.YamlDocument | WorkflowFileError | None = None
            if path.is_file():
                try:
                    doc = yaml_source.load_file(path, self.settings.max_file_bytes, self.display(path))
                    doc = _check_defaults(doc)
                except WorkflowFileError as exc:
                    doc = exc
            self._docs[folder] = doc
        return self._docs[folder]

    def for_file(self, path: Path) -> list[yaml_source.YamlDocument | WorkflowFileError]:
        """Defaults docs for ``path``, farthest first (the nearest wins when merged last)."""
        start = path.parent
        if start not in self._chains:
            folders = []
            folder = start  # walked as written (a symlinked sub-folder stays under the root)
            stop = self._root_resolved or start.resolve()
            while True:
                folders.append(folder)
                if folder.resolve() == stop or folder.parent == folder:
                    break
                folder = folder.parent
            self._chains[start] = [d for d in (self._load(f) for f in reversed(folders)) if d is not None]
        return self._chains[start]


def _check_defaults(doc: yaml_source.YamlDocument) -> yaml_source.YamlDocument:
    problems = []
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        problems.append(Problem(doc.file, "a defaults file must be a mapping", (), 1, 1,
                                "blocks such as `orchestration:` and `resources:`"))
    else:
        wf = doc.data.get("workflow")
        if isinstance(wf, dict):
            for key in ("tasks", "name"):
                if key in wf:
                    line, col, _ = doc.locate(("workflow", key)) or (None, None, False)
                    problems.append(Problem(doc.file, f"`workflow.{key}` cannot be a default", ("workflow", key),
                                            line, col, "set it in each workflow file", "defaults"))
    if problems:
        raise WorkflowFileError(doc.file, problems)
    return doc
