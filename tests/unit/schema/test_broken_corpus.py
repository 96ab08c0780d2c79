"""Every file of tests/broken/ is rejected with exactly the problems its `# expect:` lines name.

See tests/broken/README.md for the format. A file that also carries a
`# bug: ...` line documents a package bug: it runs as a strict xfail until fixed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from iflow_airflow.compiler import compile_file, compile_folder
from iflow_airflow.settings import IflowSettings

BROKEN = Path(__file__).resolve().parents[2] / "broken"
SETTINGS = IflowSettings(allowed_modules=("iflow_airflow.examples",), max_file_bytes=8192)
PWNED = Path("/tmp/iflow_broken_corpus_pwned")  # what the hostile files would create if anything ran
EXPECT = re.compile(r"^# expect: (?P<path>.+?) @ (?P<line>\d+|-):(?P<col>\d+|-) (?P<code>[a-z_]+)"
                    r"(?: in (?P<file>\S+))?\s*$")

Expectation = tuple[str, int | None, int | None, str, str]


def corpus_files() -> list[Path]:
    return sorted(p for p in BROKEN.rglob("*") if p.suffix in (".yaml", ".yml") and p.name != "iflow.defaults.yaml")


def expectation_text(path: Path) -> str:
    sidecar = path.with_suffix(".expect")
    source = sidecar if sidecar.exists() else path
    return source.read_bytes().decode("utf-8", errors="replace")


def expectations(path: Path) -> tuple[set[Expectation], str | None]:
    text = expectation_text(path)
    lines = [ln for ln in text.splitlines() if ln.startswith("# expect")]
    out: set[Expectation] = set()
    for ln in lines:
        m = EXPECT.match(ln)
        assert m, f"{path.name}: malformed expectation line {ln!r}"
        out.add((m["path"], None if m["line"] == "-" else int(m["line"]),
                 None if m["col"] == "-" else int(m["col"]), m["code"], m["file"] or path.name))
    assert len(out) == len(lines), f"{path.name}: an expectation is listed twice"
    bug = next((ln[len("# bug:"):].strip() for ln in text.splitlines() if ln.startswith("# bug:")), None)
    return out, bug


def _param(path: Path):
    _, bug = expectations(path)
    marks = [pytest.mark.xfail(strict=True, reason=f"bug: {bug}")] if bug else []
    return pytest.param(path, id=path.relative_to(BROKEN).as_posix(), marks=marks)


def test_corpus_is_big_and_well_formed():
    files = corpus_files()
    assert len(files) >= 40
    for path in files:
        expected, _ = expectations(path)
        assert expected, f"{path.name} has no `# expect:` line"


@pytest.mark.parametrize("path", [_param(p) for p in corpus_files()])
def test_broken_file_reports_exactly_its_problems(path: Path):
    expected, _ = expectations(path)
    PWNED.unlink(missing_ok=True)
    c = compile_file(path, explicit=True, settings=SETTINGS)
    assert not PWNED.exists(), "a workflow file executed code while being compiled"
    assert c is not None and c.plan is None and c.error is not None
    got = set()
    for p in c.error.problems:
        where = Path(p.file)
        rel = where.name if where == path else where.relative_to(path.parent).as_posix()
        got.add((p.key_path, p.line, p.column, p.code, rel))
    assert got == expected, c.error.render()
    rendered = c.error.render()
    assert rendered.startswith(f"{path}: {len(expected)} problem")
    for p in c.error.problems:
        assert f"{p.file}{'' if p.line is None else f':{p.line}'}" in rendered
        assert p.message and p.message in rendered


VALID_ONE = """\
resources: {db: 1}
workflow:
  name: valid_one
  tasks:
    - {id: a, command: "echo one", resource: db}
    - {id: b, dependencies: [a]}
"""
VALID_TWO = """\
workflow:
  name: valid_two
  schedule: "@daily"
  tasks: [{id: only, prompt: "hello"}]
"""
# Files that are not iflow files when found in a folder (no top-level `workflow:` line): skipped, not errors.
NOT_IFLOW_IN_A_FOLDER = {"empty.yaml", "comments_only.yaml", "shape_no_workflow.yaml", "shape_top_level_list.yaml",
                         "shape_workflow_scalar.yaml"}  # SPEC §1: only a `workflow:` mapping is an iflow file


def test_broken_files_never_hide_the_good_ones(tmp_path: Path):
    dest = tmp_path / "dags"
    shutil.copytree(BROKEN, dest)
    buggy = [p for p in dest.rglob("*.yaml") if p.name != "iflow.defaults.yaml" and expectations(p)[1]]
    for p in buggy:  # their own xfail covers them; here they would only blur the count
        p.unlink()
    (dest / "valid_one.yaml").write_text(VALID_ONE)
    (dest / "zz" / "deeper").mkdir(parents=True)
    (dest / "zz" / "deeper" / "valid_two.yml").write_text(VALID_TWO)

    results = compile_folder(dest, SETTINGS)
    ok = {c.display: c.plan.dag_id for c in results if c.ok}
    assert ok == {"valid_one.yaml": "valid_one", "zz/deeper/valid_two.yml": "valid_two"}
    broken = {c.display for c in results if not c.ok}
    expected_broken = {p.relative_to(dest).as_posix() for p in dest.rglob("*.yaml")
                       if p.name != "iflow.defaults.yaml" and p.name not in NOT_IFLOW_IN_A_FOLDER
                       and p.name != "valid_one.yaml"}
    assert broken == expected_broken
    assert all(c.error.problems for c in results if not c.ok)
    assert not PWNED.exists()
