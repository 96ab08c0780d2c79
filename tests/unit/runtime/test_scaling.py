"""scaling.decide on fixed sequences of keeper ticks."""

from __future__ import annotations

from iflow_airflow.runtime.scaling import PoolState, decide


def run(ticks, *, declared=2, max_slots=4, threshold=0.8, auto=True):
    """Feed (busy, waiting) per tick, the pool following each decision; return the decisions."""
    state, size, out = PoolState(), declared, []
    for busy, waiting in ticks:
        d = decide(declared=declared, max_slots=max_slots, current=size, busy=busy, waiting=waiting,
                   threshold=threshold, auto_scaling=auto, state=state)
        out.append((size, d.size, d.action, d.saturated, d.alert))
        state, size = d.state, d.size
    return out


def test_grow_under_load_then_shrink_back():
    assert run([(2, 3), (2, 3), (3, 2), (4, 1), (4, 1), (2, 0), (1, 0), (0, 0)]) == [
        # (size before, size after, action, saturated, alert)
        (2, 2, "hold", False, False),  # hot once: not yet saturated
        (2, 3, "grow", True, True),  # second hot tick: saturated, alert, +1
        (3, 4, "grow", True, False),  # still saturated: +1, no second alert
        (4, 4, "hold", True, False),  # at max_slots
        (4, 4, "hold", True, False),
        (4, 3, "shrink", False, False),  # idle: share 0.5, nothing waits: -1
        (3, 2, "shrink", False, False),
        (2, 2, "hold", False, False),  # back at the declared size
    ]


def test_one_alert_per_episode_and_a_new_episode_alerts_again():
    ticks = [(2, 3), (2, 3), (2, 1), (1, 1), (2, 1), (2, 1), (2, 0), (2, 2), (2, 2)]
    out = run(ticks, max_slots=None)
    # 1: hot once; 2: saturated -> alert; 3: still saturated; 4: a free slot while a task waits
    # (not hot, episode goes on); 5-6: saturated again inside the same episode: no alert;
    # 7: nobody waits: episode over; 8-9: hot twice -> a new episode alerts
    assert [o[3] for o in out] == [False, True, True, False, False, True, False, False, True]
    assert [o[4] for o in out] == [False, True, False, False, False, False, False, False, True]


def test_free_slots_while_tasks_wait_keep_the_episode_but_do_not_grow():
    d1 = decide(declared=2, max_slots=4, current=3, busy=2, waiting=1, threshold=0.8, auto_scaling=True,
                state=PoolState(hot_ticks=3, in_episode=True))
    assert (d1.size, d1.hot, d1.saturated, d1.alert, d1.state) == (3, False, False, False, PoolState(0, True))
    assert d1.busy_share == 2 / 3
    d2 = decide(declared=2, max_slots=4, current=3, busy=3, waiting=1, threshold=0.8, auto_scaling=True,
                state=d1.state)
    d3 = decide(declared=2, max_slots=4, current=3, busy=3, waiting=1, threshold=0.8, auto_scaling=True,
                state=d2.state)
    assert (d2.size, d3.size, d3.saturated, d3.alert) == (3, 4, True, False)


def test_without_auto_scaling_or_max_slots_the_size_stays_declared():
    assert run([(2, 3), (2, 3), (2, 3)], auto=False) == [
        (2, 2, "hold", False, False), (2, 2, "hold", True, True), (2, 2, "hold", True, False)]
    assert run([(2, 3), (2, 3)], max_slots=None)[1] == (2, 2, "hold", True, True)
    # a pool grown earlier goes straight back when auto-scaling is switched off
    d = decide(declared=2, max_slots=4, current=4, busy=4, waiting=3, threshold=0.8, auto_scaling=False)
    assert (d.size, d.action) == (2, "shrink")


def test_bounds():
    # above a lowered max_slots: straight down to it
    d = decide(declared=2, max_slots=3, current=5, busy=5, waiting=5, threshold=0.8, auto_scaling=True)
    assert (d.size, d.action) == (3, "shrink")
    # below the declared size (changed by hand): back up
    d = decide(declared=2, max_slots=3, current=1, busy=0, waiting=0, threshold=0.8, auto_scaling=True)
    assert (d.size, d.action) == (2, "grow")
    # shrinking never goes below the busy slots: 4 slots, 3 busy (0.75 < 0.8), nothing waits
    d = decide(declared=1, max_slots=6, current=5, busy=3, waiting=0, threshold=0.8, auto_scaling=True)
    assert (d.size, d.action) == (4, "shrink")
    d = decide(declared=1, max_slots=6, current=4, busy=3, waiting=0, threshold=0.8, auto_scaling=True)
    assert (d.size, d.action) == (3, "shrink")
    d = decide(declared=1, max_slots=6, current=3, busy=3, waiting=0, threshold=0.8, auto_scaling=True)
    assert (d.size, d.action) == (3, "hold")  # 3/3 busy is not idle
    # threshold exactly met is not "above"
    d = decide(declared=2, max_slots=4, current=5, busy=4, waiting=1, threshold=0.8, auto_scaling=True,
               state=PoolState(5, True))
    assert (d.hot, d.size) == (False, 4)  # 4/5 = 0.8: not hot; above max -> 4
