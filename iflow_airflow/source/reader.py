"""Safe YAML loading that remembers where every value came from.

Only YAML's safe subset is accepted (python/* tags and unknown tags are errors;
nothing executes). Parsing uses libyaml's C parser when present. Objects are
built from the node tree in one pass that also rejects duplicate keys (a silent
"last one wins" would lose what a person wrote) and bounds alias expansion (a
"billion laughs" file is rejected by counting, not by running out of memory).
Node marks are kept so that any key path can be turned into a line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from iflow_airflow.errors import PathPart, Problem, WorkflowFileError

try:
    _Loader: type = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

# The largest number of values a document may expand to through aliases.
MAX_EXPANDED_NODES = 200_000
MAX_DEPTH = 64
_STR_TAG = "tag:yaml.org,2002:str"
# Scalar tags whose SafeConstructor method returns the value directly (no generator, no recursion).
_PLAIN_SCALAR_CONSTRUCTORS = {
    "tag:yaml.org,2002:null": "construct_yaml_null",
    "tag:yaml.org,2002:bool": "construct_yaml_bool",
    "tag:yaml.org,2002:int": "construct_yaml_int",
    "tag:yaml.org,2002:float": "construct_yaml_float",
    "tag:yaml.org,2002:binary": "construct_yaml_binary",
    "tag:yaml.org,2002:timestamp": "construct_yaml_timestamp",
}
_WORKFLOW_KEY = re.compile(rb"(?m)^[\"']?workflow[\"']?[ \t]*:")


def looks_like_workflow(raw: bytes) -> bool:
    """Cheap test on the raw bytes: does a line start with a top-level ``workflow:`` key?"""
    return _WORKFLOW_KEY.search(raw) is not None


@dataclass
class YamlDocument:
    """A parsed file: its data plus the node tree that locates key paths."""

    file: str
    text: str
    data: Any
    root: yaml.Node | None

    def locate(self, path: Sequence[PathPart]) -> tuple[int, int, bool] | None:
        """(line, column, exact) of ``path``, 1-based; the nearest existing parent when it is absent."""
        node = self.root
        if node is None:
            return None
        mark = node.start_mark
        exact = True
        for part in path:
            child = _child(node, part)
            if child is None:
                exact = False
                break
            key_node, node = child
            mark = (key_node or node).start_mark
        return mark.line + 1, mark.column + 1, exact


def _child(node: yaml.Node, part: PathPart) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                return key_node, value_node
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None


class _Builder:
    """Turns a composed node tree into Python objects, checking as it goes."""

    def __init__(self, loader: Any, file: str):
        self.loader = loader
        self.file = file
        self.memo: dict[int, tuple[Any, int]] = {}
        self.problems: list[Problem] = []
        self.expanded = 0
        # Scalars skip ``construct_object``'s generic dispatch, but only for the tags whose
        # constructor is still PyYAML's own plain (non-generator) safe one: the same call, fewer steps.
        ctors = loader.yaml_constructors
        self.plain_str = ctors.get(_STR_TAG) is yaml.constructor.SafeConstructor.construct_yaml_str
        self.scalar_constructors = {tag: ctors[tag] for tag, name in _PLAIN_SCALAR_CONSTRUCTORS.items()
                                    if ctors.get(tag) is getattr(yaml.constructor.SafeConstructor, name)}

    def problem(self, node: yaml.Node, message: str, path: tuple[PathPart, ...], expected: str | None = None,
                code: str = "yaml") -> None:
        m = node.start_mark
        self.problems.append(Problem(self.file, message, path, m.line + 1, m.column + 1, expected, code))

    def build(self, node: yaml.Node, path: tuple[PathPart, ...] = (), depth: int = 0) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, depth)
        key = id(node)
        if key in self.memo:  # an alias: shared, but it counts as often as it is used
            value, size = self.memo[key]
            self._count(size, node, path)
            return value
        if depth > MAX_DEPTH:
            raise _TooBig(node, f"nesting deeper than {MAX_DEPTH} levels")
        scalar = yaml.ScalarNode
        if isinstance(node, yaml.SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                self.loader.construct_object(node)  # raises for unknown tags
            value = []
            start = self.expanded
            for i, item in enumerate(node.value):
                value.append(self._scalar_at(item, depth + 1, path + (i,)) if isinstance(item, scalar)
                             else self.build(item, path + (i,), depth + 1))
            size = self.expanded - start + 1
        elif isinstance(node, yaml.MappingNode):
            if node.tag not in ("tag:yaml.org,2002:map",):
                self.loader.construct_object(node)
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, scalar) and key_node.value != "<<":
                    if key_node.value in seen:
                        prev = seen[key_node.value].start_mark.line + 1
                        self.problem(key_node, f"duplicate key {key_node.value!r} (first given on line {prev})",
                                     path + (key_node.value,), "each key once per mapping", code="duplicate_key")
                    seen[key_node.value] = key_node
            self.loader.flatten_mapping(node)  # resolves "<<" merge keys in place
            value = {}
            start = self.expanded
            for key_node, value_node in node.value:
                k = (self._scalar(key_node, depth + 1) if isinstance(key_node, scalar)
                     else self.build(key_node, path, depth + 1))
                if isinstance(k, (list, dict)):
                    self.problem(key_node, "a key must be a plain value", path, "a name such as `tasks`")
                    continue
                value[k] = (self._scalar_at(value_node, depth + 1, path + (k if isinstance(k, (str, int)) else str(k),))
                            if isinstance(value_node, scalar)
                            else self.build(value_node, path + (k if isinstance(k, (str, int)) else str(k),),
                                            depth + 1))
            size = self.expanded - start + 1
        else:  # pragma: no cover - yaml only has three node kinds
            raise TypeError(node)
        self.memo[key] = (value, size)
        self._count(1, node, path)
        return value

    def _scalar_at(self, node: yaml.ScalarNode, depth: int, path: tuple[PathPart, ...]) -> Any:
        """``_scalar`` for a value: one that looks like a date but is none (2026-13-01) is a located problem."""
        try:
            return self._scalar(node, depth)
        except (ValueError, OverflowError) as exc:
            self.problem(node, f"invalid value {node.value!r}: {exc}", path,
                         "a real date (YYYY-MM-DD), or quote the value to make it text", code="yaml_value")
            return None

    def _scalar(self, node: yaml.ScalarNode, depth: int) -> Any:
        """``build`` for a scalar (which needs no key path): the same value, checks and counting."""
        key = id(node)
        hit = self.memo.get(key)
        if hit is not None:  # an alias: counts as often as it is used
            self._count(hit[1], node, ())
            return hit[0]
        if depth > MAX_DEPTH:
            raise _TooBig(node, f"nesting deeper than {MAX_DEPTH} levels")
        tag = node.tag
        if tag == _STR_TAG and self.plain_str:
            value = node.value  # what SafeConstructor.construct_yaml_str returns for a scalar node
        else:
            ctor = self.scalar_constructors.get(tag)
            value = ctor(self.loader, node) if ctor is not None else self.loader.construct_object(node)
        self.memo[key] = (value, 1)
        self.expanded += 1
        if self.expanded > MAX_EXPANDED_NODES:
            self._count(0, node, ())  # raises
        return value

    def _count(self, size: int, node: yaml.Node, path: tuple[PathPart, ...]) -> None:
        self.expanded += size
        if self.expanded > MAX_EXPANDED_NODES:
            raise _TooBig(node, f"the document expands to more than {MAX_EXPANDED_NODES:,} values "
                                "through anchors and aliases")


class _TooBig(Exception):
    def __init__(self, node: yaml.Node, what: str):
        self.node = node
        self.what = what


def decode(file: str, raw: bytes, max_bytes: int) -> str:
    """Bytes -> text, or a clear error for files that are too big, binary, or not UTF-8."""
    if len(raw) > max_bytes:
        raise WorkflowFileError(file, [Problem(
            file, f"file is {len(raw):,} bytes, larger than the limit of {max_bytes:,}", (), None, None,
            "a smaller file, or raise [iflow] max_file_bytes", "too_large")])
    if b"\x00" in raw:
        raise WorkflowFileError(file, [Problem(
            file, "file contains NUL bytes: it is binary, not YAML", (), None, None, "a UTF-8 text file",
            "binary")])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise WorkflowFileError(file, [Problem(
            file, f"byte 0x{raw[exc.start]:02x} at offset {exc.start} is not valid UTF-8", (), line, None,
            "a UTF-8 encoded file", "encoding")]) from None


def parse(file: str, text: str) -> YamlDocument:
    """Parse one YAML document safely. Raises ``WorkflowFileError`` with every problem found."""
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            msg = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise WorkflowFileError(file, [Problem(
                file, f"YAML syntax error: {msg}", (), mark.line + 1 if mark else None,
                mark.column + 1 if mark else None, "valid YAML (check indentation, colons and quotes)",
                "yaml_syntax")]) from None
        except yaml.YAMLError as exc:
            raise WorkflowFileError(file, [Problem(file, f"YAML error: {exc}", (), None, None, None,
                                                   "yaml_syntax")]) from None
        if root is None:
            return YamlDocument(file, text, None, None)
        builder = _Builder(loader, file)
        try:
            data = builder.build(root)
        except _TooBig as big:
            m = big.node.start_mark
            raise WorkflowFileError(file, [Problem(
                file, f"rejected: {big.what}", (), m.line + 1, m.column + 1,
                "a file without deeply nested or exponentially repeated aliases", "too_large")]) from None
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark
            raise WorkflowFileError(file, [Problem(
                file, f"unsupported YAML: {exc.problem}", (), mark.line + 1 if mark else None,
                mark.column + 1 if mark else None,
                "plain YAML values only (tags such as !!python/... are never executed)", "yaml_tag")]) from None
        if builder.problems:
            raise WorkflowFileError(file, builder.problems)
        return YamlDocument(file, text, data, root)
    finally:
        loader.dispose()


def load_file(path: Path | str, max_bytes: int, display: str | None = None) -> YamlDocument:
    """Read and parse ``path``; ``display`` is the name used in errors (e.g. relative to the dags folder)."""
    name = display or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise WorkflowFileError(name, [Problem(name, f"cannot read file: {exc.strerror}", (), None, None, None,
                                               "io")]) from None
    return parse(name, decode(name, raw, max_bytes))
