"""Safe YAML loading that remembers where every value came from.

Only YAML's safe subset is accepted (python/* tags and unknown tags are errors;
nothing executes). Parsing uses libyaml's C parser when present. Objects are
built from the node tree in one pass that also rejects duplicate keys (a silent
"last one wins" would lose what a person wrote) and bounds alias expansion (a
"billion laughs" file is rejected by counting, not by running out of memory).
Node marks are kept so that any key path can be turned into a line and column.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
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
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_NUMBER_TAGS = (_INT_TAG, "tag:yaml.org,2002:float")
# Longest integer scalar constructed (sign, digits, underscores): far beyond any setting, and far
# below the 4,300 digits past which Python refuses to print an int (error messages print values).
MAX_INT_CHARS = 400
# What PostgreSQL or UTF-8 cannot hold, or no one types: C0 controls but tab/LF/CR, DEL, C1, surrogates.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
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
    _index: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = field(default_factory=dict, repr=False,
                                                                       compare=False)

    def locate(self, path: Sequence[PathPart]) -> tuple[int, int, bool] | None:
        """(line, column, exact) of ``path``, 1-based; the nearest existing parent when it is absent.

        Linear in the path: each mapping's keys are indexed once, on first use (a scan per
        lookup made locating 90,000 unknown keys quadratic: past 300 s).
        """
        node = self.root
        if node is None:
            return None
        mark = node.start_mark
        exact = True
        for part in path:
            child = self._child(node, part)
            if child is None:
                exact = False
                break
            key_node, node = child
            mark = (key_node or node).start_mark
        return mark.line + 1, mark.column + 1, exact

    def _child(self, node: yaml.Node, part: PathPart) -> tuple[yaml.Node | None, yaml.Node] | None:
        if isinstance(node, yaml.MappingNode):
            return self._keys(node).get(str(part))
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            return None, node.value[part]
        return None

    def _keys(self, node: yaml.MappingNode, depth: int = 0) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """key text -> (key node, value node): the first own key, then keys brought in by ``<<``."""
        index = self._index.get(id(node))
        if index is not None:
            return index
        index = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node])
            elif isinstance(key_node, yaml.ScalarNode):
                index.setdefault(key_node.value, (key_node, value_node))
        for source in merged:
            if isinstance(source, yaml.MappingNode) and depth < MAX_DEPTH:
                for k, pair in self._keys(source, depth + 1).items():
                    index.setdefault(k, pair)
        self._index[id(node)] = index
        return index


class _Failed:
    """Marks a scalar whose construction was a located problem (the pair or item is dropped)."""


_FAILED = _Failed()


class _Builder:
    """Turns a composed node tree into Python objects, checking as it goes.

    Merge keys (``<<``) are resolved here, on built dicts, instead of by PyYAML's
    ``flatten_mapping`` (which copies node lists and, before PyYAML 6.0.4, grew
    exponentially with nested merges): a merged mapping costs its distinct keys,
    and every copied key counts toward ``MAX_EXPANDED_NODES``.
    """

    def __init__(self, loader: Any, file: str):
        self.loader = loader
        self.file = file
        self.memo: dict[int, tuple[Any, int]] = {}
        self.problems: list[Problem] = []
        self.expanded = 0
        self.aliased = False  # whether any alias or merge was used (for the size limit's message)
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
            value = self._scalar_at(node, depth, path)
            return None if value is _FAILED else value
        key = id(node)
        if key in self.memo:  # an alias: shared, but it counts as often as it is used
            value, size = self.memo[key]
            self.aliased = True
            self._count(size, node, path)
            return value
        if depth > MAX_DEPTH:
            raise _TooBig(node, f"nesting deeper than {MAX_DEPTH} levels")
        start = self.expanded
        if isinstance(node, yaml.SequenceNode):
            value: Any = self._sequence(node, path, depth)
        elif isinstance(node, yaml.MappingNode):
            value = self._mapping(node, path, depth)
        else:  # pragma: no cover - yaml only has three node kinds
            raise TypeError(node)
        self.memo[key] = (value, self.expanded - start + 1)
        self._count(1, node, path)
        return value

    def _sequence(self, node: yaml.SequenceNode, path: tuple[PathPart, ...], depth: int) -> list[Any]:
        if node.tag != "tag:yaml.org,2002:seq":
            self.loader.construct_object(node)  # raises for unknown tags
        return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]

    def _mapping(self, node: yaml.MappingNode, path: tuple[PathPart, ...], depth: int) -> dict[Any, Any]:
        """A mapping's own keys over its merged ones; keys equal by value (``yes``/``on``,
        ``1``/``0x1``, ``~``/``null``) are duplicates too, since the dict would keep only one."""
        if node.tag != "tag:yaml.org,2002:map":
            self.loader.construct_object(node)
        own: dict[Any, Any] = {}
        first: dict[Any, yaml.Node] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            k = self._key(key_node, path, depth)
            if k is _FAILED:
                continue
            if k in first:
                was = first[k]
                same = "" if was.value == key_node.value else f", which YAML reads as the same key as {was.value!r}"
                self.problem(key_node, f"duplicate key {key_node.value!r}{same} (first given on line "
                             f"{was.start_mark.line + 1})", path + (_part(k),), "each key once per mapping",
                             code="duplicate_key")
                continue
            first[k] = key_node
            own[k] = self.build(value_node, path + (_part(k),), depth + 1)
        if not merges:
            return own
        merged = self._merged(merges, path, depth)
        merged.update(own)
        return merged

    def _key(self, key_node: yaml.Node, path: tuple[PathPart, ...], depth: int) -> Any:
        if not isinstance(key_node, yaml.ScalarNode):
            self.build(key_node, path, depth + 1)
            self.problem(key_node, "a key must be a plain value", path, "a name such as `tasks`")
            return _FAILED
        return self._scalar_at(key_node, depth + 1, path)

    def _merged(self, merges: list[yaml.Node], path: tuple[PathPart, ...], depth: int) -> dict[Any, Any]:
        """The keys ``<<`` brings in: of several mappings, the first given wins (YAML's merge type)."""
        self.aliased = True
        sources: list[dict[Any, Any]] = []
        for value_node in merges:
            items = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for item in items:
                if not isinstance(item, yaml.MappingNode):
                    self.problem(item, "`<<` merges a mapping (or a list of mappings) into this one", path,
                                 "`<<: *anchor` where the anchor names a mapping", code="yaml_merge")
                    continue
                sources.append(self.build(item, path, depth + 1))
        merged: dict[Any, Any] = {}
        for source in reversed(sources):
            self._count(len(source), merges[0], path)  # copying keys is expansion too
            merged.update(source)
        return merged

    def _scalar_at(self, node: yaml.ScalarNode, depth: int, path: tuple[PathPart, ...]) -> Any:
        """``_scalar``, with a value that cannot be made (a date 2026-13-01, an integer of 500
        digits, text with a control character) turned into a located problem and ``_FAILED``."""
        try:
            return self._scalar(node, depth)
        except _BadScalar as bad:
            self.problem(node, bad.message, path, bad.expected, code=bad.code)
        except (ValueError, OverflowError) as exc:
            self.problem(node, f"invalid value {_shown(node.value)}: {exc}", path,
                         "a real date (YYYY-MM-DD), or quote the value to make it text", code="yaml_value")
        return _FAILED

    def _scalar(self, node: yaml.ScalarNode, depth: int) -> Any:
        """One scalar's value, memoized and counted like any node.

        Two YAML 1.1 number forms are not constructed: base 60 (``1:30:00``, which PyYAML
        builds in quadratic time) stays text, as in YAML 1.2; an integer longer than
        ``MAX_INT_CHARS`` is an error (Python refuses to print one of over 4,300 digits).
        """
        key = id(node)
        hit = self.memo.get(key)
        if hit is not None:  # an alias: counts as often as it is used
            self.aliased = True
            self._count(hit[1], node, ())
            return hit[0]
        if depth > MAX_DEPTH:
            raise _TooBig(node, f"nesting deeper than {MAX_DEPTH} levels")
        tag, text = node.tag, node.value
        if tag == _STR_TAG or (tag in _NUMBER_TAGS and ":" in text):
            value = _checked_text(text)
        elif tag == _INT_TAG and len(text) > MAX_INT_CHARS:
            raise _BadScalar(f"an integer of {len(text):,} characters", "an integer of at most "
                             f"{MAX_INT_CHARS} digits, or quote the value to make it text", "yaml_value")
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
            how = " through anchors and aliases" if self.aliased else ""
            raise _TooBig(node, f"the document expands to more than {MAX_EXPANDED_NODES:,} values{how}")


def _checked_text(text: str) -> str:
    """``text`` unchanged, or ``_BadScalar`` when it holds a character Airflow cannot store.

    PostgreSQL refuses NUL in text, and a lone surrogate (``"\\ud800"``) cannot be
    encoded at all; either would fail the dag-processor's write. The other control
    characters (all but tab, line feed and carriage return) only come from escapes and
    break logs, URLs and environment variables, so they are refused as well.
    """
    bad = _UNSTORABLE.search(text)
    if bad is None:
        return text
    char = bad.group()
    raise _BadScalar(f"text contains the control character U+{ord(char):04X} at position {bad.start() + 1}",
                     "printable text: NUL, other control characters and lone surrogates cannot be stored "
                     "by Airflow's database", "control_char")


def _part(key: Any) -> PathPart:
    return key if isinstance(key, (str, int)) else str(key)


def _shown(text: str, limit: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


class _BadScalar(Exception):
    def __init__(self, message: str, expected: str, code: str):
        self.message, self.expected, self.code = message, expected, code


class _TooBig(Exception):
    def __init__(self, node: yaml.Node, what: str):
        self.node = node
        self.what = what


def decode(file: str, raw: bytes, max_bytes: int) -> str:
    """Bytes -> text, or a clear error for files that are too big, binary, or not UTF-8."""
    if len(raw) > max_bytes:
        raise _too_large(file, len(raw), max_bytes)
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
                "a smaller file, without deep nesting or exponentially repeated aliases", "too_large")]) from None
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


def _too_large(file: str, size: int, max_bytes: int) -> WorkflowFileError:
    return WorkflowFileError(file, [Problem(
        file, f"file is {size:,} bytes, larger than the limit of {max_bytes:,}", (), None, None,
        "a smaller file, or raise [iflow] max_file_bytes", "too_large")])


def read_limited(path: Path | str, max_bytes: int, display: str | None = None) -> bytes:
    """The bytes of ``path``, never more than ``max_bytes`` of them in memory.

    The size is checked before reading (a 2 GiB file once cost 2.2 GB of memory), and at
    most ``max_bytes + 1`` bytes are read, so a file that grows meanwhile is still refused.
    Raises ``WorkflowFileError`` (code ``too_large`` or ``io``).
    """
    name = display or str(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise _too_large(name, size, max_bytes)
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise WorkflowFileError(name, [Problem(name, f"cannot read file: {exc.strerror}", (), None, None, None,
                                               "io")]) from None
    if len(raw) > max_bytes:
        raise _too_large(name, len(raw), max_bytes)
    return raw


def read_head(path: Path | str, max_bytes: int) -> bytes:
    """At most the first ``max_bytes`` bytes of ``path`` (b"" when it cannot be read): enough to
    tell an oversized iflow file (a top-level ``workflow:`` line near its top) from other YAML."""
    try:
        with open(path, "rb") as fh:
            return fh.read(max_bytes)
    except OSError:
        return b""


def load_file(path: Path | str, max_bytes: int, display: str | None = None) -> YamlDocument:
    """Read and parse ``path``; ``display`` is the name used in errors (e.g. relative to the dags folder)."""
    name = display or str(path)
    return parse(name, decode(name, read_limited(path, max_bytes, name), max_bytes))
