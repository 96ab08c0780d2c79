"""Safe YAML: marks, limits, tags, duplicates, encodings (yaml_source + compile_file)."""

from __future__ import annotations

import pytest

from iflow_airflow.errors import WorkflowFileError, format_path
from iflow_airflow.settings import IflowSettings
from iflow_airflow.source import reader as yaml_source

GOOD = "workflow:\n  name: ok\n  tasks: [{id: a}]\n"


def _parse_error(text: str) -> WorkflowFileError:
    with pytest.raises(WorkflowFileError) as exc:
        yaml_source.parse("f.yaml", text)
    return exc.value


def test_locate_key_paths_to_line_and_column():
    doc = yaml_source.parse("f.yaml", "a:\n  b:\n    - x\n    - {c: 1, d: 2}\n")
    assert doc.locate(("a",)) == (1, 1, True)
    assert doc.locate(("a", "b")) == (2, 3, True)
    assert doc.locate(("a", "b", 0)) == (3, 7, True)
    assert doc.locate(("a", "b", 1, "d")) == (4, 14, True)
    assert doc.locate(("a", "b", 1, "zz")) == (4, 7, False)  # nearest existing parent
    assert doc.locate(("a", "b", 9)) == (2, 3, False)


def test_columns_count_characters_not_bytes():
    doc = yaml_source.parse("f.yaml", "workflow: {description: 完整的, name: x}\n")
    assert doc.locate(("workflow", "name")) == (1, 30, True)


def test_format_path():
    assert format_path(("workflow", "tasks", 3, "dependencies", 0)) == "workflow.tasks[3].dependencies[0]"
    assert format_path(()) == "(top level)"


@pytest.mark.parametrize("text", [
    "workflow: !!python/object/apply:os.system ['touch {m}']\n",
    "workflow: !!python/object/new:os.system ['touch {m}']\n",
    "workflow: !!python/name:os.system\n",
    "workflow: {x: !!python/object/apply:subprocess.call [[touch, '{m}']]}\n",
    "workflow: !custom thing\n",
    "workflow: !!binary aGVsbG8=\n",  # a safe tag, but bytes are no workflow value: accepted by YAML
])
def test_python_tags_never_execute(tmp_path, text):
    marker = tmp_path / "executed"
    text = text.replace("{m}", str(marker))
    try:
        yaml_source.parse("f.yaml", text)
    except WorkflowFileError as err:
        (p,) = err.problems
        assert (p.code, p.line) == ("yaml_tag", 1)
        assert "never executed" in p.expected
    else:
        assert "!!binary" in text
    assert not marker.exists()


def test_python_tag_location():
    err = _parse_error("workflow:\n  name: x\n  tasks: [{id: a, command: !!python/object/apply:os.system [x]}]\n")
    (p,) = err.problems
    assert (p.key_path, p.line, p.column, p.code) == ("(top level)", 3, 28, "yaml_tag")


def test_billion_laughs_is_rejected_by_counting():
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("workflow: {name: x, tasks: [{id: a}]}")
    err = _parse_error("\n".join(lines) + "\n")
    (p,) = err.problems
    assert p.code == "too_large" and "anchors and aliases" in p.message
    assert p.line is not None and p.line <= 7


def test_a_few_aliases_are_fine():
    doc = yaml_source.parse("f.yaml", "base: &b {retries: 1}\nx: [*b, *b]\ny:\n  <<: *b\n  z: 2\n")
    assert doc.data == {"base": {"retries": 1}, "x": [{"retries": 1}, {"retries": 1}], "y": {"retries": 1, "z": 2}}


def test_deep_nesting_is_rejected():
    err = _parse_error("workflow: " + "[" * 100 + "]" * 100 + "\n")
    (p,) = err.problems
    assert p.code == "too_large" and "nesting deeper than" in p.message


def test_duplicate_keys_are_all_reported():
    err = _parse_error("workflow:\n  name: x\n  tasks:\n    - id: a\n      priority: high\n      priority: low\n"
                       "  name: y\n")
    assert {(p.key_path, p.line, p.column, p.code) for p in err.problems} == {
        ("workflow.tasks[0].priority", 6, 7, "duplicate_key"), ("workflow.name", 7, 3, "duplicate_key")}
    assert "first given on line 5" in err.problems[0].message


def test_syntax_error_is_located():
    err = _parse_error("workflow:\n  name: x\n  tasks: [{id: a}\n")
    (p,) = err.problems
    assert (p.code, p.line, p.column) == ("yaml_syntax", 4, 1)
    assert p.message.startswith("YAML syntax error:")


def test_tab_indentation_is_a_syntax_error():
    err = _parse_error("workflow:\n\tname: x\n")
    assert err.problems[0].code == "yaml_syntax" and err.problems[0].line == 2


def test_multiple_documents_are_an_error():
    err = _parse_error("workflow: {name: a}\n---\nworkflow: {name: b}\n")
    assert err.problems[0].code == "yaml_syntax" and err.problems[0].line == 2


def test_decode_limits():
    with pytest.raises(WorkflowFileError) as exc:
        yaml_source.decode("f.yaml", b"x" * 11, 10)
    assert [(p.code, p.line) for p in exc.value.problems] == [("too_large", None)]
    assert "11 bytes, larger than the limit of 10" in exc.value.problems[0].message
    with pytest.raises(WorkflowFileError) as exc:
        yaml_source.decode("f.yaml", b"workflow:\n\x00", 100)
    assert exc.value.problems[0].code == "binary"
    with pytest.raises(WorkflowFileError) as exc:
        yaml_source.decode("f.yaml", b"a: 1\nb: 2\nc: \xff\n", 100)
    assert [(p.code, p.line) for p in exc.value.problems] == [("encoding", 3)]
    assert "byte 0xff at offset 13" in exc.value.problems[0].message
    assert yaml_source.decode("f.yaml", "\ufeffa: ü".encode(), 100) == "a: ü"  # a BOM is fine


def test_huge_file_over_the_default_limit_is_rejected_before_parsing(front):
    limit = front.SETTINGS.max_file_bytes
    assert limit == 2 * 1024 * 1024
    body = GOOD + "# " + "x" * (limit + 10) + "\n"
    err = front.error(body)
    assert [(p.key_path, p.line, p.column, p.code) for p in err.problems] == [("(top level)", None, None, "too_large")]
    assert err.file in err.render()


def test_small_max_file_bytes_setting(front):
    c = front.compile(GOOD, settings=IflowSettings(max_file_bytes=10))
    assert [p.code for p in c.error.problems] == ["too_large"]
    assert front.compile(GOOD, settings=IflowSettings(max_file_bytes=len(GOOD))).ok


@pytest.mark.parametrize("raw,expected", [
    (b"workflow:\n  name: x\n", True),
    (b"# c\n'workflow': {}\n", True),
    (b'"workflow" : {}\n', True),
    (b"other: 1\n  workflow: nested\n", False),
    (b"workflows: 1\n", False),
    (b"bar: |\n  text\n", False),
])
def test_looks_like_workflow(raw, expected):
    assert yaml_source.looks_like_workflow(raw) is expected


def test_bom_file_compiles(front):
    plan = front.plan("\ufeff" + GOOD)
    assert plan.dag_id == "ok"


def test_crlf_file_compiles_with_right_lines(front):
    text = "workflow:\r\n  name: x\r\n  tasks:\r\n    - {id: a, priorty: 1}\r\n"
    c = front.compile(text.encode())
    assert {(p.key_path, p.line, p.column) for p in c.error.problems} == {("workflow.tasks[0].priorty", 4, 15)}


def test_keys_must_be_plain_values():
    err = _parse_error("? [a, b]\n: 1\nworkflow: {}\n")
    assert err.problems[0].line == 1 and "a key must be a plain value" in err.problems[0].message
