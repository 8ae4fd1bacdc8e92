"""Where a NeoNet bundle lives, so its configs run from the bundle folder or the repository root."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["bundle_root", "latest_checkpoint", "select_channel", "split_cases"]

_REPO_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def bundle_root(name: str) -> str:
    """The folder of bundle ``name``: the working directory when it is that bundle (the
    model-zoo convention), else ``./bundles/<name>``, else the copy beside this package.
    ``--bundle_root`` on the command line overrides it.
    """
    cwd = Path.cwd()
    for candidate in (cwd, cwd / "bundles" / name, _REPO_BUNDLES / name):
        if (candidate / "configs" / "metadata.json").is_file() and candidate.resolve().name == name:
            return str(candidate.resolve())
    raise FileNotFoundError(
        f"cannot find the '{name}' bundle from {cwd}: run from the bundle folder or the repository root, "
        "or pass --bundle_root."
    )


def latest_checkpoint(folder: str | os.PathLike, pattern: str = "checkpoint*.pt") -> str | None:
    """Newest file matching ``pattern`` in ``folder`` (to resume training), or None."""
    paths = sorted(Path(folder).glob(pattern), key=lambda p: p.stat().st_mtime)
    return str(paths[-1]) if paths else None


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


def select_channel(batch: tuple[Sequence, Sequence], channel: int) -> tuple[list, list]:
    """Keep the background and one class of one-hot ``(preds, labels)`` (each C, X, Y, Z),
    so that a Dice metric with ``include_background=False`` scores that class alone."""
    keep = [0, channel]
    return [p[keep] for p in batch[0]], [y[keep] for y in batch[1]]
