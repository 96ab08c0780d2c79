"""The embedded engine's pure parts: the definition's version tag, redacted database URLs, the
private Airflow's environment (no Airflow runs here; tests/client has the real ones)."""

from __future__ import annotations

from pathlib import Path

from iflow_airflow.client.embedded import INTERVALS, MARKER_KEY, TAG_PREFIX, embedded_env, tag_definition
from iflow_airflow.client.engine import workflow_document
from iflow_airflow.client.supervisor import redact


def test_the_tag_follows_the_content_not_the_key_order():
    one = workflow_document("w", {"description": "d", "tasks": [{"id": "a", "command": "echo 1"}]})
    same = workflow_document("w", {"tasks": [{"command": "echo 1", "id": "a"}], "description": "d"})
    other = workflow_document("w", {"description": "d", "tasks": [{"id": "a", "command": "echo 2"}]})
    (doc, tag), (_, tag_same), (_, tag_other) = map(tag_definition, (one, same, other))
    assert tag.startswith(TAG_PREFIX) and tag == tag_same and tag != tag_other
    assert doc["workflow"]["tags"] == [tag]


def test_the_tag_keeps_the_users_tags_and_replaces_an_old_engine_tag():
    doc, tag = tag_definition({"workflow": {"name": "w", "tags": ["team", f"{TAG_PREFIX}stale"], "tasks": []}})
    assert doc["workflow"]["tags"] == ["team", tag]
    bad, _ = tag_definition({"workflow": {"name": "w", "tags": "not-a-list", "tasks": []}})
    assert bad["workflow"]["tags"] == "not-a-list"  # left for validation to report


def test_passwords_never_reach_error_messages():
    assert redact("postgresql+psycopg2://u:s3cret@db:5432/af") == "postgresql+psycopg2://u:***@db:5432/af"
    assert redact("sqlite:////tmp/x/airflow.db") == "sqlite:////tmp/x/airflow.db"
    assert redact(None) == "(default)"


def test_the_private_airflow_listens_on_loopback_with_its_own_secrets(tmp_path: Path):
    env = embedded_env({"PATH": "/bin"}, tmp_path, 8123, None, "m1")
    again = embedded_env({"PATH": "/bin"}, tmp_path, 8123, "postgresql://h/db", "m2")
    assert (env["AIRFLOW__API__HOST"], env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]) == (
        "127.0.0.1", "http://127.0.0.1:8123/execution/")
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] != again["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env  # the engine's SQLite default stays
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] == "iflow_airflow.client.sqlite_args.SYNC"
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in again  # a given database keeps its own
    assert again["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql://h/db"
    assert (env[MARKER_KEY], env["PATH"]) == ("m1", "/bin")
    assert all(env[k] == v for k, v in INTERVALS.items())
