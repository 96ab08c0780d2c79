"""Fixtures for end-to-end tests against a real Airflow (see harness.py).

    @pytest.mark.e2e
    def test_x(airflow_deployment, tmp_path):
        dags = tmp_path / "dags"; dags.mkdir()
        (dags / "my_dag.py").write_text(...)
        af = airflow_deployment(dags)                    # started and ready
        run_id = af.client.trigger("my_dag")
        assert af.client.wait_for_run("my_dag", run_id, timeout=120) == "success"

Every deployment the factory started is stopped when the test ends (and the test
fails if a process of it is left behind).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest
from harness import DEFAULT_COMPONENTS, AirflowDeployment, DeploymentError


class DeploymentFactory(Protocol):
    def __call__(
        self,
        dags_folder: Path,
        components: tuple[str, ...] = ...,
        extra_env: Mapping[str, str] | None = ...,
        port: int | None = ...,
        **kwargs: Any,
    ) -> AirflowDeployment: ...


@pytest.fixture
def airflow_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeploymentFactory]:
    """Factory: ``airflow_deployment(dags_folder, components=..., extra_env=..., port=...)``
    starts an :class:`AirflowDeployment` with a fresh AIRFLOW_HOME and returns it ready."""
    started: list[AirflowDeployment] = []

    def make(
        dags_folder: Path,
        components: tuple[str, ...] = DEFAULT_COMPONENTS,
        extra_env: Mapping[str, str] | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> AirflowDeployment:
        home = tmp_path_factory.mktemp("airflow_home")
        dep = AirflowDeployment(home, dags_folder, components, extra_env, port, **kwargs)
        started.append(dep)
        return dep.start()

    yield make

    problems = []
    for dep in reversed(started):
        try:
            dep.stop()
        except DeploymentError as e:
            problems.append(str(e))
        print(f"\n[e2e] {dep.home}: timings {({k: round(v, 1) for k, v in dep.timings.items()})}")
    if problems:
        pytest.fail("\n".join(problems))
