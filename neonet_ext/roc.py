"""ROC AUC and its case bootstrap: the one AUC and the one resampling of cases every NeoNet figure uses.

NumPy and SciPy only, so that the synthetic cohort and the study can score without torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

__all__ = ["bootstrap_auc", "percentile_interval", "resample_cases", "roc_auc"]


def roc_auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float | np.ndarray:
    """ROC AUC of ``scores`` for binary ``labels``, from ranks (the Mann-Whitney U over ``n_pos * n_neg``).

    Tied scores share their mean rank, so a positive and a negative with the same score count one half.

    Args:
        labels: (N,) class of each case, 1 (or true) positive.
        scores: (N,) one score per case, or (..., N) several sets of scores for the same cases.

    Returns:
        the AUC (a float for one set of scores, an array over the leading axes for several);
        NaN without both classes.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if not n_pos or not n_neg:
        nan = np.full(scores.shape[:-1], np.nan)
        return float(nan) if nan.ndim == 0 else nan
    ranks = rankdata(scores, axis=-1)
    u = ranks[..., labels].sum(axis=-1) - n_pos * (n_pos + 1) / 2
    auc = u / (n_pos * n_neg)
    return float(auc) if np.ndim(auc) == 0 else auc


def resample_cases(rng: np.random.Generator, n_cases: int, n_resamples: int) -> np.ndarray:
    """Indices of ``n_resamples`` bootstrap resamples of ``n_cases`` cases, drawn with replacement:
    ``(n_resamples, n_cases)``, row after row from ``rng``."""
    return rng.integers(0, n_cases, (n_resamples, n_cases))


def percentile_interval(samples: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap ``samples``: their percentiles at each tail;
    NaNs without samples."""
    if not len(samples):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_auc(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, n_resamples: int = 2000,
    confidence: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:
    """ROC AUC with a percentile bootstrap confidence interval: ``(auc, low, high)``.

    Cases are resampled with replacement ``n_resamples`` times (seeded); resamples holding
    one class only are skipped, as their AUC is undefined. Without resamples the bounds are NaN.

    Raises:
        ValueError: the labels do not hold both classes.
    """
    labels, scores = np.asarray(labels).astype(int), np.asarray(scores, dtype=float)
    if len(set(labels.tolist())) != 2:
        raise ValueError("ROC AUC needs both classes among the labels")
    resamples = resample_cases(np.random.default_rng(seed), len(labels), n_resamples)
    aucs = [roc_auc(labels[idx], scores[idx]) for idx in resamples if labels[idx].min() != labels[idx].max()]
    return (roc_auc(labels, scores), *percentile_interval(aucs, confidence))
