"""Timing that a shared, noisy machine does not skew: every step measured in turn, medians reported."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["median_times_in_turn"]


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
