"""pydantic errors -> located, human problems (with "did you mean" for typos)."""

from __future__ import annotations

import types
import typing
from typing import Any, Callable, Sequence

from pydantic import BaseModel, ValidationError

from iflow_airflow.errors import MAX_PROBLEMS, PathPart, Problem, WorkflowFileError, closest, more_problems
from iflow_airflow.schema import models

Locator = Callable[[Sequence[PathPart]], "tuple[str, int | None, int | None]"]

_MODEL_NAMES = {
    obj.__name__ for obj in vars(models).values() if isinstance(obj, type) and issubclass(obj, BaseModel)
}
_SCALAR_TAGS = {"str", "int", "float", "bool", "none", "date", "datetime", "literal", "list[any]"}


def _unwrap(tp: Any) -> list[Any]:
    """The model classes reachable from an annotation (through Optional, list, dict, Annotated)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _unwrap(a)]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return []


def _item_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _item_type(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            inner = _item_type(a)
            if inner is not None:
                return inner
        return None
    if origin in (list, tuple):
        return typing.get_args(tp)[0]
    if origin is dict:
        return typing.get_args(tp)[1]
    return None


def model_at(loc: Sequence[PathPart], root: type[BaseModel] = models.WorkflowFile) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (None when it is not a model)."""
    current: Any = root
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        inner = _item_type(current)
        if inner is None:
            return None
        current = inner
    found = _unwrap(current)
    return found[0] if found else None


def suggest(key: str, choices: Sequence[str]) -> str | None:
    """The closest known key (errors.closest: the one "did you mean" rule)."""
    return closest(key, choices)


def _is_tag(part: Any) -> bool:
    return isinstance(part, str) and (part in _MODEL_NAMES or part in _SCALAR_TAGS or part == "[key]"
                                      or part.startswith(("literal[", "function-")))


def _clean(loc: tuple[Any, ...], data: Any) -> tuple[PathPart, ...]:
    """The key path of a pydantic location: union member tags (``EventsSchedule``, ``str``,
    ``[key]``) are dropped, but only where the data has no such key (a param may be named ``date``)."""
    out: list[PathPart] = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif _is_tag(part):
            continue
        else:
            data = None
        out.append(part)
    return tuple(out)


def _value_at(data: Any, loc: Sequence[PathPart]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _pick_union_branches(errors: list[dict[str, Any]], data: Any) -> list[dict[str, Any]]:
    """For a value that failed every branch of a union, keep the branch matching its shape."""
    kept = []
    for err in errors:
        loc = err["loc"]
        tag_at = next((i for i, p in enumerate(loc) if isinstance(p, str) and
                       (p in _MODEL_NAMES or p in _SCALAR_TAGS)), None)
        if tag_at is None:
            kept.append(err)
            continue
        value = _value_at(data, _clean(loc[:tag_at], data))
        tag = loc[tag_at]
        is_mapping_branch = tag in _MODEL_NAMES
        if isinstance(value, dict) == is_mapping_branch:
            kept.append(err)
    # a union where no branch matched the shape (e.g. a list for str|Model): keep one error
    # and one error per path for scalar branches (date | datetime both failing on one text)
    seen, out = set(), []
    for err in kept or errors:
        key = _clean(err["loc"], data)
        scalar_branch = any(isinstance(p, str) and p in _SCALAR_TAGS for p in err["loc"])
        if key in seen and (scalar_branch or err["type"] in ("string_type", "model_type", "dict_type")):
            continue
        seen.add(key)
        out.append(err)
    return out


def _describe(err: dict[str, Any], data: Any) -> tuple[str, str | None, tuple[PathPart, ...], str]:
    """(message, expected, path, code) for one pydantic error."""
    loc = _clean(err["loc"], data)
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        parent = model_at(loc[:-1])
        choices = sorted(parent.model_fields) if parent else []
        key = str(loc[-1])
        near = suggest(key, choices)
        expected = f"did you mean `{near}`?" if near else ("one of: " + ", ".join(choices) if choices else None)
        return f"unknown key `{key}`", expected, loc, "unknown_key"
    if kind == "missing":
        return f"required key `{loc[-1]}` is missing", None, loc, "missing"
    if kind == "literal_error":
        return f"invalid value {got!r}", err.get("ctx", {}).get("expected"), loc, "invalid_choice"
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        expected = ("letters, digits, `_`, `.` and `-` only" if pattern == models.NAME_PATTERN
                    else models.PATTERN_WORDS.get(pattern) or f"a value matching {pattern}")
        return f"invalid value {got!r}", expected, loc, "invalid_format"
    if kind == "string_too_long":
        limit = err.get("ctx", {}).get("max_length")
        return (f"text of {len(got):,} characters is too long", f"at most {limit:,} characters "
                "(what Airflow stores for it)", loc, "too_long")
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    shown = _safe_repr(got)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{msg[0].lower()}{msg[1:]} (got {shown})", None, loc, kind


def _safe_repr(value: Any) -> str:
    """A short repr (containers by type name); an int too long for Python to print is described."""
    if isinstance(value, (dict, list)):
        return type(value).__name__
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        return f"an integer of {value.bit_length():,} bits"
    return repr(value[:200]) if isinstance(value, str) else repr(value)


def _without(data: Any, paths: list[tuple[PathPart, ...]]) -> Any:
    """A deep copy of ``data`` with the mapping keys at ``paths`` removed."""
    import copy

    out = copy.deepcopy(data)
    for path in paths:
        node = out
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    return out


def repaired(data: Any, problems: list[Problem]) -> models.WorkflowFile | None:
    """The file with every invalid *optional* key dropped, if that validates; else None.

    Used only to go on checking the rest of a file after schema errors, so that
    a person sees every problem of a file at once.
    """
    paths = []
    for p in problems:
        path = p.path
        if p.code in ("missing", "truncated") or not path or not isinstance(path[-1], str):
            return None
        parent = _value_at(data, path[:-1])
        if not isinstance(parent, dict) or path[-1] not in parent:
            return None
        paths.append(path)
    try:
        return models.WorkflowFile.model_validate(_without(data, sorted(set(paths), key=len, reverse=True)))
    except (ValidationError, KeyError, TypeError):
        return None


def validate(data: Any, file: str, locate: Locator) -> models.WorkflowFile:
    """Validate merged data; every problem is located through ``locate`` and raised together."""
    try:
        return models.WorkflowFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        errors = _pick_union_branches(exc.errors(include_url=False), data)
        for err in errors[:MAX_PROBLEMS]:  # described and located: the rest are only counted
            message, expected, path, code = _describe(err, data)
            where, line, col = locate(path)
            problems.append(Problem(where, message, path, line, col, expected, code))
        if len(errors) > MAX_PROBLEMS:
            problems.append(more_problems(file, len(errors) - MAX_PROBLEMS))
        raise WorkflowFileError(file, problems) from None
