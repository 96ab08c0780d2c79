"""Property-based fuzzing of the loader with mutated valid files (issue 8, item 2).

Whatever a mutation does to a file, the loader never raises, always names the
file, never hides the valid files beside it, and ``iflow-airflow validate``
agrees with what the DAG loader reports.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="iflow_fuzz_airflow_home_")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from iflow_airflow.client.cli import main as cli_main  # noqa: E402
from iflow_airflow.compiler import compile_file, compile_folder  # noqa: E402
from iflow_airflow.settings import IflowSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
SEEDS = [(REPO / "dags" / name).read_text() for name in
         ("full_stack_development.yaml", "release_pipeline.yaml", "nightly_data_sync.yaml", "warehouse_report.yaml")]
SETTINGS = IflowSettings(allowed_modules=("iflow_airflow.examples",))
GOOD_A = "workflow:\n  name: good_a\n  tasks:\n    - {id: x, command: 'true'}\n"
GOOD_B = "resources: {fuzz_res: 1}\nworkflow:\n  name: good_b\n  tasks:\n    - {id: y, resource: fuzz_res}\n"

ODD_VALUES = ["", "null", "~", "-1", "0", "1e999", "[]", "{}", "[a, [b, {c: d}]]", "'$(touch /tmp/iflow_fuzz_pwned)'",
              "!!python/object/apply:os.system ['touch /tmp/iflow_fuzz_pwned']", "&a [*a]", "*nope", "\"\\x00\"",
              "2026-13-45", "@daily", "{events: [x]}", "\"unterminated", "high", "999999999999999999999", "true",
              "{name: gpu, slots: 0}", "workflow", "- - -", "'\u202e\u0000'"]


@st.composite
def mutated(draw) -> bytes:
    lines = draw(st.sampled_from(SEEDS)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "duplicate", "value", "indent", "truncate", "insert_key", "bytes"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if not lines:
            break
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {draw(st.sampled_from(ODD_VALUES))}"
        elif op == "indent":
            lines[i] = " " * draw(st.integers(0, 9)) + lines[i].lstrip()
        elif op == "truncate":
            lines = lines[: i + 1]
            lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
        elif op == "insert_key":
            indent = len(lines[i]) - len(lines[i].lstrip())
            lines.insert(i, " " * indent + draw(st.sampled_from(["priorty: high", "retrys: 2", "x: 1", "tasks: []",
                                                                  "dependencies: [design_architecture]"])))
        elif op == "bytes":
            raw = "\n".join(lines).encode()
            pos = draw(st.integers(0, len(raw)))
            return raw[:pos] + draw(st.binary(min_size=1, max_size=8)) + raw[pos:]
    return "\n".join(lines).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_mutated_file_never_crashes_and_never_hides_its_neighbours(data: bytes, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "good_a.yaml").write_text(GOOD_A)
        (root / "good_b.yaml").write_text(GOOD_B)
        target = root / "mutant.yaml"
        target.write_bytes(data)

        alone = compile_file(target, root=root, settings=SETTINGS, explicit=True)  # never raises
        assert alone is not None and (alone.plan is not None or alone.error is not None)
        if alone.error is not None:
            assert alone.error.problems, "an error always lists its problems"
            assert all(p.file in ("mutant.yaml",) for p in alone.error.problems)
            assert "mutant.yaml" in alone.error.render()

        results = {c.display: c for c in compile_folder(root, SETTINGS)}
        assert results["good_a.yaml"].plan is not None and results["good_a.yaml"].plan.dag_id == "good_a"
        assert results["good_b.yaml"].plan is not None
        mutant = results.get("mutant.yaml")

        # validate (the CLI) agrees with the loader's view of the folder
        capsys.readouterr()
        code = cli_main(["validate", "-q", str(root)])
        out = capsys.readouterr().out
        failed = {line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("FAIL ")}
        loader_failed = {name for name, c in results.items() if c.error is not None}
        assert failed == loader_failed
        assert code == (1 if loader_failed else 0)
        if mutant is None:  # not an iflow file (no top-level `workflow:` mapping): ignored by both
            assert "mutant.yaml" not in out
    assert not Path("/tmp/iflow_fuzz_pwned").exists()


def test_billion_laughs_is_rejected_quickly_with_bounded_memory(tmp_path: Path):
    import resource
    import time

    levels = "\n".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 10))
    (tmp_path / "lol.yaml").write_text(f"l0: &l0 [lol]\n{levels}\nworkflow: {{name: lol, tasks: [{{id: a}}]}}\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    c = compile_file(tmp_path / "lol.yaml", settings=SETTINGS, explicit=True)
    elapsed = time.perf_counter() - t0
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert c.error is not None and c.error.problems[0].code == "too_large"
    assert "expands to more than 200,000 values" in c.error.problems[0].message
    print(f"\nbillion laughs rejected in {elapsed:.3f}s, max RSS grew {grown_mib:.1f} MiB")
    assert grown_mib < 200  # bounded: the expansion (10^9 values) is counted, never built


@pytest.mark.parametrize("size", [3 * 1024 * 1024])
def test_file_over_the_size_limit_is_a_clear_error(tmp_path: Path, size: int):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"workflow:\n  name: huge\n  tasks:\n" + b"#" * size + b"\n")
    c = compile_file(path, settings=SETTINGS, explicit=True)
    [problem] = c.error.problems
    assert problem.code == "too_large" and f"larger than the limit of {SETTINGS.max_file_bytes:,}" in problem.message


# ---------------------------------------------------------------------- issue 14: the attack classes
# Text the database refuses, size and complexity, symlinks, collisions. See test_hardening_*.py for
# each defect; here the classes are sampled broadly.

def _db_limits() -> dict[str, int]:
    """Column sizes read from the installed Airflow's models (not copied from our code)."""
    from airflow.models.dag import DagModel, DagTag
    from airflow.models.pool import Pool
    from airflow.models.taskinstance import TaskInstance

    return {"owners": DagModel.__table__.c.owners.type.length, "tag": DagTag.__table__.c.name.type.length,
            "dag_id": DagModel.__table__.c.dag_id.type.length, "task_id": TaskInstance.__table__.c.task_id.type.length,
            "pool": Pool.__table__.c.pool.type.length, "queue": TaskInstance.__table__.c.queue.type.length}


def _strings(value, seen=None):
    """Every str inside a plan (dataclasses, dicts, lists, tuples)."""
    import dataclasses

    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _strings(getattr(value, f.name))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def assert_storable(plan) -> None:
    """What the dag-processor will write fits Airflow's columns and PostgreSQL's text."""
    limits = _db_limits()
    assert len(plan.owner) <= limits["owners"] and len(plan.dag_id) <= limits["dag_id"]
    assert all(len(t) <= limits["tag"] for t in plan.tags)
    for t in plan.tasks:
        assert len(t.task_id) <= limits["task_id"] and len(t.queue or "") <= limits["queue"]
        assert len(t.pool or "") <= limits["pool"]
    for s in _strings(plan):
        assert "\x00" not in s
        s.encode("utf-8")  # no lone surrogate


FIELDS = ["  description: {v}", "  owner: {v}", "  tags: [{v}]", "  timezone: {v}", "  params: {{p: {v}}}",
          "  params: {{{v}: 1}}", "  alerts: {{webhook: {v}}}"]
TASK_FIELDS = ["command: {v}", "prompt: {v}", "description: {v}", "env: {{X: {v}}}", "type: {v}",
               "wait: {{file: {v}}}", "wait: {{url: {v}}}"]
ESCAPES = ["\\0", "\\x01", "\\e", "\\x7f", "\\x85", "\\x9b", "\\ud800", "\\udfff", "\\t", "\\n", "\\r", "\\u2028",
           "\\U0001F600", "\\N", "\\_", "\\L", "\\P", "\\a", "\\v", "\\f"]


@st.composite
def hostile_text(draw) -> str:
    """A double-quoted YAML scalar: ordinary text, escapes of control characters, and lengths
    around Airflow's column sizes."""
    parts = draw(st.lists(st.one_of(st.sampled_from(ESCAPES), st.text(
        st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'), max_size=8)), max_size=6))
    pad = draw(st.sampled_from([0, 0, 99, 100, 101, 199, 201, 1999, 2001]))
    return '"' + "x" * pad + "".join(parts) + '"'


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS + [None]), task_field=st.sampled_from(TASK_FIELDS), value=hostile_text())
def test_text_is_either_refused_with_a_location_or_storable(field, task_field, value):
    head = (field.format(v=value) + "\n") if field else ""
    text = (f"workflow:\n  name: fuzz_text\n{head}  tasks:\n    - {{id: a, {task_field.format(v=value)}}}\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wf.yaml"
        path.write_text(text, encoding="utf-8")
        c = compile_file(path, settings=SETTINGS, explicit=True)
    if c.error is not None:
        assert all(p.line is not None for p in c.error.problems), c.error.render()
        rendered = c.error.render()
        assert "\x00" not in rendered
        rendered.encode("utf-8")  # the import error text itself is storable
    if c.plan is not None:
        assert_storable(c.plan)


ID_ALPHABET = st.text(st.sampled_from("ab-_."), min_size=1, max_size=4).filter(lambda s: s[0] not in "-.")


@settings(max_examples=150, deadline=None)
@given(ids=st.lists(ID_ALPHABET, min_size=2, max_size=6, unique=True),
       params=st.lists(ID_ALPHABET, max_size=4, unique=True))
def test_names_never_share_an_environment_variable(ids, params):
    from iflow_airflow.operators.run_env import PARAM_PREFIX, RESULT_PREFIX, env_name

    tasks = "".join(f"    - {{id: '{i}', command: 'true'}}\n" for i in ids)
    decl = ("  params: {" + ", ".join(f"'{p}': 1" for p in params) + "}\n") if params else ""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wf.yaml"
        path.write_text(f"workflow:\n  name: fuzz_names\n{decl}  tasks:\n{tasks}")
        c = compile_file(path, settings=SETTINGS, explicit=True)
    collide = (len({env_name(RESULT_PREFIX, i) for i in ids}) < len(ids)
               or len({env_name(PARAM_PREFIX, p) for p in params}) < len(params))
    if collide:
        assert c.plan is None and "env_collision" in {p.code for p in c.error.problems}
    else:
        assert c.plan is not None, c.error.render()


def _attacks() -> dict[str, bytes]:
    """Size and complexity attacks, each near the 2 MiB default limit or past a counting limit."""
    wf = b"workflow:\n  name: attack\n  tasks: [{id: a}]\n"
    return {
        "many_unknown_keys": wf + b"".join(b"k%d: 1\n" % i for i in range(150_000))[: 2_000_000],
        "long_plain_scalar": wf + b"x: " + b"a" * 2_000_000 + b"\n",
        "long_quoted_escapes": wf + b'x: "' + b"\\x41" * 490_000 + b'"\n',
        "base_60": b"workflow:\n  name: attack\n  tasks: [{id: a, timeout: 1" + b":59" * 650_000 + b"}]\n",
        "long_decimal": wf + b"x: " + b"9" * 1_900_000 + b"\n",
        "long_hex": wf + b"x: 0x" + b"f" * 1_900_000 + b"\n",
        "long_float": wf + b"x: 1." + b"5" * 1_900_000 + b"\n",
        "deep_flow": wf + b"x: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "deep_block": wf + b"".join(b" " * i + b"k:\n" for i in range(2000)),
        "wide_flow": wf + b"x: [" + b"1, " * 600_000 + b"1]\n",
        "alias_fan_out": wf + b"a: &a [" + b"x, " * 1000 + b"x]\nb: [" + b"*a, " * 300 + b"*a]\n",
        "merge_chain": b"\n".join([b"m0: &m0 {k0: v}"] + [b"m%d: &m%d {<<: *m%d, k%d: v}" % (i, i, i - 1, i)
                                                            for i in range(1, 3000)]) + b"\n" + wf,
        "merge_fan": b"b: &b {" + b", ".join(b"k%d: v" % i for i in range(2000)) + b"}\n"
                     + b"".join(b"c%d: {<<: [*b, *b, *b]}\n" % i for i in range(300)) + wf,
        "many_tasks_bad_deps": b"workflow:\n  name: attack\n  tasks:\n" + b"".join(
            b"    - {id: t%d, dependencies: [t%d, nope]}\n" % (i, i + 1) for i in range(40_000)),
        "many_anchors": wf + b"".join(b"a%d: &a%d v\n" % (i, i) for i in range(100_000)),
        "long_line_comment": wf + b"#" + b"x" * 2_000_000 + b"\n",
    }


@pytest.mark.parametrize("name", sorted(_attacks()))
def test_size_and_complexity_attacks_end_in_a_plan_or_a_located_error(tmp_path: Path, name: str):
    """Bounded time and memory (the child's limits), and always an answer about the file."""
    from limits import run_limited

    path = tmp_path / f"{name}.yaml"
    path.write_bytes(_attacks()[name])
    out = run_limited(path, cpu_s=60, mem_mib=1500, max_bytes=2 * 1024 * 1024 + 4096)
    assert out["plan"] or out["problems"]
    for key, line, _col, code, message in out["problems"]:
        assert code != "internal", message
        assert line is not None or code in ("too_large", "truncated", "binary", "encoding"), (key, code, message)


def test_symlinks_never_crash_the_folder_or_hide_its_neighbours(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "broken.yaml").write_text("workflow: {name: b, tasks: []}\n")
    (outside / "sub").mkdir()
    (outside / "sub" / "ok.yaml").write_text("workflow: {name: linked_ok, tasks: [{id: t}]}\n")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "good_a.yaml").write_text(GOOD_A)
    (dags / "to_outside.yaml").symlink_to(outside / "broken.yaml")
    (dags / "folder").symlink_to(outside / "sub")
    (dags / "dangling.yaml").symlink_to(tmp_path / "missing.yaml")
    (dags / "zero.yaml").symlink_to("/dev/zero")  # not a regular file: never read
    (dags / "loop").symlink_to(dags)
    (dags / "self.yaml").symlink_to(dags / "self.yaml")
    os.mkfifo(dags / "fifo.yaml")  # opening it would block: never opened
    results = {c.display: c for c in compile_folder(dags, SETTINGS)}
    assert results["good_a.yaml"].ok and results["folder/ok.yaml"].ok
    assert results["to_outside.yaml"].error is not None
    assert set(results) == {"good_a.yaml", "folder/ok.yaml", "to_outside.yaml"}
