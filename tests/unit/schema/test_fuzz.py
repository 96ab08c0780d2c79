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
from hypothesis import HealthCheck, given, settings, strategies as st

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
