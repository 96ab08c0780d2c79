"""Saturation and auto-scaling of one resource pool: a pure decision per keeper tick.

The resource keeper (scheduler) calls :func:`decide` once per pool and tick with
what the database says right now, and applies the answer. Definitions:

* **busy** - occupied slots of the pool (running and queued task instances,
  weighted by their ``pool_slots``); **busy share** = busy / current pool size.
* **waiting** - task instances of the pool in state ``scheduled``: ready to run,
  held back by the scheduler (for a full pool, that is where they wait).
* **hot** - ``waiting > 0`` and ``busy share > load_threshold``.
* **saturated** - hot for :data:`CONFIRM_TICKS` (2) ticks in a row. The first
  saturated tick of an *episode* raises the ``resource_saturated`` alert; the
  episode lasts until no task waits any more (a tick with free slots while tasks
  still wait, e.g. right after a growth step, neither ends it nor alerts again).
* **grow** - with ``auto_scaling`` and a ``max_slots``: one slot per saturated
  tick, up to ``max_slots``.
* **shrink** - when idle (nothing waits and busy share < threshold): one slot
  per tick back toward the declared ``slots``, never below what is busy.
* the size never leaves ``[declared, max(declared, max_slots)]``; without
  auto-scaling a grown pool goes straight back to ``declared``.
"""

from __future__ import annotations

from dataclasses import dataclass

CONFIRM_TICKS = 2


@dataclass(frozen=True)
class PoolState:
    """What the keeper remembers about a pool between ticks."""

    hot_ticks: int = 0  # consecutive hot ticks so far
    in_episode: bool = False  # a saturation episode is going on (its alert was raised)


@dataclass(frozen=True)
class ScalingDecision:
    size: int  # the pool size to have after this tick
    state: PoolState
    busy_share: float
    hot: bool
    saturated: bool  # saturated on this tick
    alert: bool  # raise resource_saturated now (first saturated tick of an episode)
    action: str  # "grow" | "shrink" | "hold"
    reason: str


def busy_share(busy: int, size: int) -> float:
    """Occupied slots / pool size (a pool of 0 slots with anything busy counts as full)."""
    if size <= 0:
        return 1.0 if busy > 0 else 0.0
    return busy / size


def decide(*, declared: int, max_slots: int | None, current: int, busy: int, waiting: int,
           threshold: float, auto_scaling: bool, state: PoolState = PoolState(),
           confirm_ticks: int = CONFIRM_TICKS) -> ScalingDecision:
    """The next size and state of one pool (see the module docs for every rule)."""
    share = busy_share(busy, current)
    hot = waiting > 0 and share > threshold
    hot_ticks = state.hot_ticks + 1 if hot else 0
    saturated = hot_ticks >= confirm_ticks
    if saturated:
        in_episode = True
    elif waiting == 0:
        in_episode = False
    else:
        in_episode = state.in_episode
    alert = saturated and not state.in_episode

    scalable = auto_scaling and max_slots is not None and max_slots > declared
    upper = max(declared, max_slots) if scalable else declared  # type: ignore[type-var]
    size, action, reason = current, "hold", "steady"
    if current > upper:
        size, action = upper, "shrink"
        reason = "above max_slots" if scalable else "auto-scaling is off"
    elif current < declared:
        size, action, reason = declared, "grow", "below the declared slots"
    elif saturated and scalable and current < upper:
        size, action, reason = current + 1, "grow", f"saturated for {hot_ticks} ticks"
    elif saturated:
        reason = f"saturated for {hot_ticks} ticks" + (" at max_slots" if scalable else ", no auto-scaling")
    elif waiting == 0 and share < threshold and current > declared:
        target = max(declared, busy, current - 1)
        if target < current:
            size, action, reason = target, "shrink", "idle"
        else:
            reason = "idle but busy slots hold the size"
    elif hot:
        reason = f"hot for {hot_ticks} tick(s)"
    return ScalingDecision(size=size, state=PoolState(hot_ticks, in_episode), busy_share=share, hot=hot,
                           saturated=saturated, alert=alert, action=action, reason=reason)
