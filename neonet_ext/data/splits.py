"""Splits of a datalist: training and validation, or cross-validation folds, optionally stratified by class.

Every bundle and the study split with :func:`split_cases`, so that one seed means the same split
wherever it is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["split_cases"]


def split_cases(
    items: Sequence[dict],
    val_fraction: float = 0.2,
    seed: int = 0,
    stratify_by: str | None = None,
    n_folds: int | None = None,
) -> tuple[list[dict], list[dict]] | list[list[dict]]:
    """Split real cases into (train, validation), or into ``n_folds`` cross-validation folds.

    The cases are shuffled with ``seed``: all together, or, with ``stratify_by`` (e.g. ``"pni"``),
    class by class in increasing class order, each class keeping its proportion in every part.

    * Without ``n_folds``: ``round(val_fraction * n)`` cases of each class (at least one and at
      most ``n - 1`` of a class of two or more; none of a class of one) go to validation.
    * With ``n_folds``: the shuffled cases are dealt to the folds in turn, each class starting
      where the previous one stopped, so fold sizes differ by at most one (per class and in all).
      Folds are patient-level: every item needs its own ``case_id``.

    Synthetic items (``synthetic: true``) are refused: they belong to training only
    (see :func:`neonet_ext.data.patches.mix_synthetic`).

    Returns:
        ``(train, validation)``, or the list of folds when ``n_folds`` is given.

    Raises:
        ValueError: synthetic items; a part left empty (too few cases); for folds, duplicate
            case ids or a class with fewer cases than folds (a fold without both classes has no AUC).
    """
    items = list(items)
    if any(item.get("synthetic") for item in items):
        raise ValueError("synthetic items must not be split into validation or test parts: split the real cases, "
                         "then mix the synthetic ones into training (neonet_ext.data.mix_synthetic)")
    groups = _shuffled_groups(items, seed, stratify_by)
    if n_folds is not None:
        return _deal_folds(items, groups, n_folds)
    return _hold_out(groups, val_fraction)


def _shuffled_groups(items: list[dict], seed: int, stratify_by: str | None) -> dict[int | None, list[dict]]:
    """The items in one group (key None), or one group per class of ``stratify_by`` in increasing order,
    each group shuffled in turn by one generator seeded with ``seed``."""
    if stratify_by is None:
        groups: dict[int | None, list[dict]] = {None: items}
    else:
        classes = sorted({int(item[stratify_by]) for item in items})
        groups = {c: [item for item in items if int(item[stratify_by]) == c] for c in classes}
    rng = np.random.default_rng(seed)
    return {c: [members[i] for i in rng.permutation(len(members))] for c, members in groups.items()}


def _hold_out(groups: dict[int | None, list[dict]], val_fraction: float) -> tuple[list[dict], list[dict]]:
    """(train, validation): the first ``round(val_fraction * n)`` of each shuffled group go to validation."""
    train: list[dict] = []
    val: list[dict] = []
    for members in groups.values():
        n_val = min(max(1, round(val_fraction * len(members))), len(members) - 1) if len(members) > 1 else 0
        val += members[:n_val]
        train += members[n_val:]
    if not train or not val:
        n = len(train) + len(val)
        raise ValueError(f"need at least two cases (of a class, when stratified) to split into training and "
                         f"validation, got {n}.")
    return train, val


def _deal_folds(items: list[dict], groups: dict[int | None, list[dict]], n_folds: int) -> list[list[dict]]:
    """The shuffled groups dealt to ``n_folds`` folds in turn, each group starting where the last one stopped."""
    ids = [item.get("case_id") for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError("folds are patient-level: every item needs its own case_id")
    folds: list[list[dict]] = [[] for _ in range(n_folds)]
    offset = 0
    for cls, members in groups.items():
        if len(members) < n_folds:
            which = "the cases" if cls is None else f"class {cls}"
            raise ValueError(f"{which} has {len(members)} patients, fewer than the {n_folds} folds")
        for rank, item in enumerate(members):
            folds[(offset + rank) % n_folds].append(item)
        offset += len(members)  # the next class starts where this one stopped, evening out fold sizes
    return folds
