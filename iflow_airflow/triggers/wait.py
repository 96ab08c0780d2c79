"""The async trigger behind deferred ``wait:`` tasks (``coordination.sync_mode: asynchronous``).

A deferred task gives its worker slot back; the triggerer runs this trigger
until the condition holds or the wait's own deadline (``communication_timeout``)
passes, then the task resumes in ``execute_complete`` on a worker.

Conditions: a file exists (``os.path.exists`` in a thread), a URL answers 2xx
(``httpx.AsyncClient``), a point in time has come, or, for another workflow's
task when that workflow had no run yet when the wait started, the task has
succeeded in some run (counted through the task SDK, which the triggerer
serves like a worker). The deadline is an absolute epoch time so it survives
the trip through the triggerer; the operator also sets the deferral timeout as
a backstop.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

KINDS = ("file", "url", "until", "external_task")
HTTP_ATTEMPT_TIMEOUT = 10.0


def parse_until(value: datetime | str) -> datetime:
    """An aware datetime from a datetime or ISO-8601 string; naive values are taken as UTC."""
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(dt, datetime):
        raise TypeError(f"until must be a datetime or an ISO-8601 string, not {type(value).__name__}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def describe(
    kind: str,
    *,
    file: str | None = None,
    url: str | None = None,
    until: datetime | str | None = None,
    external_dag_id: str | None = None,
    external_task_id: str | None = None,
) -> str:
    """Human words for what is awaited, used in logs and timeout errors."""
    if kind == "file":
        return f"file {file}"
    if kind == "url":
        return f"url {url}"
    if kind == "until":
        return f"time {parse_until(until).isoformat()}" if until is not None else "time"
    if kind == "external_task":
        return f"task {external_task_id} of workflow {external_dag_id}"
    raise ValueError(f"unknown wait kind {kind!r}; expected one of {', '.join(KINDS)}")


def is_2xx(status_code: int) -> bool:
    return 200 <= status_code < 300


class IflowWaitTrigger(BaseTrigger):
    """Fire ``{"status": "ok"}`` when the condition holds, ``{"status": "timeout"}`` at ``deadline``.

    ``deadline`` is seconds since the epoch (``time.time()``), None for no limit.
    """

    def __init__(
        self,
        kind: str,
        *,
        file: str | None = None,
        url: str | None = None,
        until: str | None = None,
        external_dag_id: str | None = None,
        external_task_id: str | None = None,
        poke_interval: float = 5.0,
        deadline: float | None = None,
        timeout_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"unknown wait kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.file = file
        self.url = url
        self.until = parse_until(until).isoformat() if until is not None else None
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.poke_interval = max(float(poke_interval), 0.05)
        self.deadline = deadline
        self.timeout_seconds = timeout_seconds
        self.what = describe(
            kind,
            file=file,
            url=url,
            until=self.until,
            external_dag_id=external_dag_id,
            external_task_id=external_task_id,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kind": self.kind,
                "file": self.file,
                "url": self.url,
                "until": self.until,
                "external_dag_id": self.external_dag_id,
                "external_task_id": self.external_task_id,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
                "timeout_seconds": self.timeout_seconds,
            },
        )

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    async def _holds(self, client: Any) -> bool:
        if self.kind == "file":
            return await asyncio.to_thread(os.path.exists, self.file)
        if self.kind == "url":
            from iflow_airflow.http_policy import probe_url

            remaining = self._remaining()
            limit = HTTP_ATTEMPT_TIMEOUT if remaining is None else min(HTTP_ATTEMPT_TIMEOUT, max(remaining, 0.05))
            status, detail = await probe_url(self.url, limit, client)
            self.log.info("wait for %s: %s", self.what, detail)
            return status is not None and is_2xx(status)
        if self.kind == "until":
            return datetime.now(timezone.utc) >= parse_until(self.until)
        return await self._external_succeeded()

    async def _external_succeeded(self) -> bool:
        from asgiref.sync import sync_to_async

        from iflow_airflow import version_compat

        count = await sync_to_async(version_compat.count_task_instances)(
            dag_id=self.external_dag_id,
            task_ids=[self.external_task_id],
            states=["success"],
        )
        return count > 0

    def _sleep_for(self) -> float:
        step = self.poke_interval
        if self.kind == "until":
            step = max((parse_until(self.until) - datetime.now(timezone.utc)).total_seconds(), 0.0)
        remaining = self._remaining()
        if remaining is not None:
            step = min(step, max(remaining, 0.0))
        return step

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        self.log.info("waiting for %s", self.what)
        started = time.time()
        async with httpx.AsyncClient(follow_redirects=False, timeout=HTTP_ATTEMPT_TIMEOUT) as client:
            while True:
                if await self._holds(client):
                    self.log.info("wait for %s: condition met", self.what)
                    yield TriggerEvent({"status": "ok", "what": self.what, "waited": time.time() - started})
                    return
                remaining = self._remaining()
                if remaining is not None and remaining <= 0:
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "what": self.what,
                            "timeout_seconds": self.timeout_seconds,
                            "waited": time.time() - started,
                        }
                    )
                    return
                await asyncio.sleep(self._sleep_for())
