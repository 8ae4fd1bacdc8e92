"""Training and validation splits of a datalist."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["split_cases"]


def split_cases(datalist: Sequence[dict], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Shuffle ``datalist`` with ``seed`` and split it into (train, validation).

    The validation part holds ``round(val_fraction * n)`` cases, at least one and at
    most ``n - 1`` when there are two or more.
    """
    items = list(datalist)
    if len(items) < 2:
        raise ValueError(f"need at least two cases to split into training and validation, got {len(items)}.")
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = min(max(1, round(val_fraction * len(items))), len(items) - 1)
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]
