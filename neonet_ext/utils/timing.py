"""Timing that a shared, noisy machine does not skew: every step measured in turn, medians reported."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["median_table", "median_times_in_turn"]


def median_times_in_turn(steps: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each step: one warm-up call each, then ``rounds`` rounds that call every step in turn,
    so a shared machine's drifts hit all steps alike."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}.")
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def median_table(medians: dict[str, float], step_header: str, value_header: str = "seconds", digits: int = 2) -> str:
    """:func:`median_times_in_turn`'s medians as a markdown table, one row a step in the order timed."""
    rows = [f"| {step_header} | {value_header} |", "| --- | --- |"]
    rows += [f"| {name} | {seconds:.{digits}f} |" for name, seconds in medians.items()]
    return "\n".join(rows)
