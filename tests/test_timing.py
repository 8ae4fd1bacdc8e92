"""Steps timed in turn: each step's own median, after one warm-up call each."""

from __future__ import annotations

import pytest

from neonet_ext.utils import timing


def test_median_of_each_step_after_a_warm_up(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    calls = {"fast": [], "slow": []}
    costs = {"fast": iter([100.0, 1.0, 3.0, 2.0]), "slow": iter([100.0, 10.0, 30.0, 20.0])}

    def step(name):
        def run():
            calls[name].append(clock[0])
            clock[0] += next(costs[name])
        return run

    medians = timing.median_times_in_turn({"fast": step("fast"), "slow": step("slow")}, rounds=3)
    assert medians == {"fast": 2.0, "slow": 20.0}  # the 100 s warm-up calls are not counted
    assert len(calls["fast"]) == len(calls["slow"]) == 4
    # in turn: every round calls each step once, so the steps' calls interleave
    assert calls["fast"][1] < calls["slow"][1] < calls["fast"][2] < calls["slow"][2]


def test_rounds_must_be_positive():
    with pytest.raises(ValueError, match="rounds"):
        timing.median_times_in_turn({"step": lambda: None}, rounds=0)


def test_median_table_rows_in_the_order_timed():
    table = timing.median_table({"slow": 2.0, "fast": 0.125}, "step", "seconds per update", digits=3)
    assert table.splitlines() == ["| step | seconds per update |", "| --- | --- |", "| slow | 2.000 |", "| fast | 0.125 |"]
