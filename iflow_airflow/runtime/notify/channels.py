"""The three channels and one bounded delivery each.

* ``webhook``: a JSON POST with httpx (one attempt: connect and read timeout of
  ``attempt_timeout``; up to ``tries`` attempts on a connection error, a timeout,
  HTTP 408, 429 or 5xx, ``backoff`` seconds apart; other answers are final).
  Redirects are not followed (a 3xx is a failed delivery): the file named the
  receiver, and an answer must not send the alert elsewhere.
* ``email``: Airflow's ``SmtpNotifier`` (apache-airflow-providers-smtp) with the
  connection ``[iflow] smtp_conn_id``; the sender is ``[iflow] email_from`` or the
  connection's ``from_email`` extra.
* ``slack``: Airflow's ``SlackWebhookNotifier`` (apache-airflow-providers-slack)
  with the connection ``[iflow] slack_conn_id`` (its password holds the webhook).

The bound is real: every delivery is one coroutine run under
``asyncio.wait_for(.., budget)``, so a receiver that answers slowly, drips bytes
or never answers is cut off at ``budget`` seconds whatever it does (a per-read
socket timeout alone lets a dripping server hold a delivery for minutes: issue
14 D8 measured 64 s). The notifiers' ``async_notify`` is used for that reason,
with finished text (no Jinja rendering of alert content). Nothing here raises:
every failure, a missing provider or connection included, is a
:class:`Delivery` with ``delivered=False`` and the reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from iflow_airflow.runtime.notify import message

ATTEMPT_TIMEOUT = 3.0  # seconds, connect and each read of one webhook attempt
TRIES = 3
BACKOFF = (0.5, 1.0)  # seconds before the 2nd and the 3rd attempt
BUDGET = 6.0  # seconds for one delivery, all attempts together, on every channel
USER_AGENT = "iflow-airflow-alerts/1"


@dataclass(frozen=True)
class Delivery:
    """How one delivery went."""

    delivered: bool
    attempts: int
    status: int | None  # last HTTP status, if any answer came
    error: str | None  # last failure, if any
    elapsed: float  # seconds


@dataclass(frozen=True)
class Receiver:
    """One place alerts go. ``key`` names the server: deliveries to one key share a lane."""

    channel: str  # webhook | email | slack
    target: str  # the URL, or the connection id
    to: tuple[str, ...] = ()  # email addresses
    label: str | None = None  # slack channel, shown in the message
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.target}"


@dataclass
class _Progress:
    attempts: int = 0
    status: int | None = None
    error: str | None = None


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _reason(exc: BaseException) -> str:
    """``Type: first line`` of the error, with the root cause (``ConnectionRefusedError``) when chained."""
    def one(e: BaseException) -> str:
        text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        return f"{type(e).__name__}: {text}" if text else type(e).__name__

    root, seen = exc, 0
    while (root.__cause__ or root.__context__) is not None and seen < 10:
        root, seen = root.__cause__ or root.__context__, seen + 1
    return one(exc) if root is exc else f"{one(exc)} ({one(root)})"


async def _webhook(url: str, body: bytes, prog: _Progress, *, attempt_timeout: float = ATTEMPT_TIMEOUT,
                   tries: int = TRIES, backoff: Iterable[float] = BACKOFF) -> None:
    """POST until an answer is final; raises RuntimeError with the last failure when none succeeded."""
    import httpx

    waits = list(backoff)
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    async with httpx.AsyncClient(timeout=attempt_timeout, follow_redirects=False, trust_env=False) as client:
        for attempt in range(max(1, tries)):
            if attempt:
                await asyncio.sleep(waits[min(attempt - 1, len(waits) - 1)] if waits else 0.0)
            prog.attempts += 1
            try:
                resp = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:  # connection errors, timeouts, resets: worth another try
                prog.status, prog.error = None, _reason(exc)
                continue
            prog.status = resp.status_code
            if resp.status_code < 300:
                prog.error = None
                return
            prog.error = f"HTTP {resp.status_code}"
            if not _retryable(resp.status_code):
                break
    raise RuntimeError(prog.error or "not delivered")


async def _email(rx: Receiver, payload: dict[str, Any], prog: _Progress) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    prog.attempts += 1
    notifier = SmtpNotifier(to=list(rx.to), from_email=rx.options.get("from_email") or None,
                            subject=message.subject(payload), html_content=message.html_body(payload),
                            smtp_conn_id=rx.target)
    await notifier.async_notify({})  # finished text: no template rendering of alert content


async def _slack(rx: Receiver, payload: dict[str, Any], prog: _Progress) -> None:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    prog.attempts += 1
    notifier = SlackWebhookNotifier(slack_webhook_conn_id=rx.target, text=message.plain_text(payload, rx.label),
                                    timeout=int(ATTEMPT_TIMEOUT))
    await notifier.async_notify({})


def _coroutine(rx: Receiver, payload: dict[str, Any], prog: _Progress):
    if rx.channel == "webhook":
        body = json.dumps(payload, default=str, ensure_ascii=False).encode("utf-8")
        return _webhook(rx.target, body, prog, **rx.options)
    if rx.channel == "email":
        return _email(rx, payload, prog)
    if rx.channel == "slack":
        return _slack(rx, payload, prog)
    raise ValueError(f"unknown channel {rx.channel!r}")


def deliver(rx: Receiver, payload: dict[str, Any], budget: float = BUDGET) -> Delivery:
    """Deliver ``payload`` to ``rx`` in at most ``budget`` seconds (its own event loop). Never raises."""
    prog = _Progress()
    start = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(_coroutine(rx, payload, prog), budget))
        return Delivery(True, prog.attempts, prog.status, None, time.monotonic() - start)
    except TimeoutError:
        error = f"no delivery within the {budget:g} s budget" + (f" (last: {prog.error})" if prog.error else "")
    except ImportError as exc:
        error = f"the {rx.channel} channel's provider is not installed ({exc.name}): pip install 'iflow-airflow[notify]'"
    except BaseException as exc:  # noqa: BLE001 - a channel never raises into a task or the scheduler
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        error = prog.error if isinstance(exc, RuntimeError) and prog.error else _reason(exc)
    return Delivery(False, prog.attempts, prog.status, error, time.monotonic() - start)
