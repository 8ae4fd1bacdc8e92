"""Cross-validated AUC with a patient bootstrap, and paired bootstrap tests between two cells of the grid.

A cell of the grid is scored on each fold's held-out patients. Its figure is the mean of the
fold AUCs (the seed's protocol). Its 95% interval comes from resampling patients within each
fold (positives and negatives separately, so every resample has both classes) and taking the
percentiles of the mean fold AUC. Two cells scored on the same patients are compared with the
same resamples for both (a paired bootstrap of the difference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from neonet_ext.roc import percentile_interval, resample_cases, roc_auc

__all__ = [
    "FoldScores",
    "bootstrap_mean_aucs",
    "bootstrap_p_value",
    "cross_validated_auc",
    "holm",
    "latent_region_features",
    "latent_region_reader_auc",
    "paired_bootstrap_test",
    "size_rank_correlation",
    "tumour_size_reader_auc",
]

#: One fold's held-out patients: case id -> (label, score).
FoldScores = Mapping[str, tuple[int, float]]


def _scores(fold: FoldScores, cases: Sequence[str]) -> np.ndarray:
    return np.array([fold[c][1] for c in cases], dtype=float)


def bootstrap_mean_aucs(
    folds: Sequence[Sequence[FoldScores]], n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Point estimates (one per cell) and bootstrap samples (cells x resamples) of the mean fold AUC.

    ``folds[f][k]`` is cell k's scores on fold f; all cells of a fold are resampled alike, the
    positives and the negatives each among themselves (so every resample holds both classes).
    """
    n_cells = len(folds[0]) if folds else 0
    point = np.zeros(n_cells)
    samples = np.zeros((n_cells, n_resamples))
    used = 0
    for f, cells in enumerate(folds):
        cases = sorted(cells[0])
        if any(sorted(c) != cases for c in cells[1:]):
            raise ValueError(f"fold {f}: the cells compared were not scored on the same patients")
        labels = np.array([cells[0][c][0] for c in cases], dtype=bool)
        if labels.all() or not labels.any():
            continue  # a fold without both classes has no AUC
        used += 1
        pos_idx, neg_idx = np.flatnonzero(labels), np.flatnonzero(~labels)
        rng = np.random.default_rng([seed, f])
        picks = np.concatenate([pos_idx[resample_cases(rng, len(pos_idx), n_resamples)],
                                neg_idx[resample_cases(rng, len(neg_idx), n_resamples)]], axis=1)
        resampled_labels = np.arange(picks.shape[1]) < len(pos_idx)  # every resample: its positives, then its negatives
        for k, cell in enumerate(cells):
            scores = _scores(cell, cases)
            point[k] += roc_auc(labels, scores)
            samples[k] += roc_auc(resampled_labels, scores[picks])
    if not used:
        raise ValueError("no fold holds both classes")
    return point / used, samples / used


def cross_validated_auc(
    folds: Sequence[FoldScores], n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean fold AUC with a patient-bootstrap percentile interval: ``(mean, low, high)``."""
    point, samples = bootstrap_mean_aucs([[fold] for fold in folds], n_resamples, seed)
    return (float(point[0]), *percentile_interval(samples[0], confidence))


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value of bootstrap differences: ``min(1, 2 * min(P(d <= 0), P(d >= 0)))``."""
    d = np.asarray(differences)
    return min(1.0, 2 * min(float((d <= 0).mean()), float((d >= 0).mean())))


def paired_bootstrap_test(
    folds_a: Sequence[FoldScores], folds_b: Sequence[FoldScores], n_resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Paired bootstrap of ``mean AUC(a) - mean AUC(b)`` over the same patients.

    Returns the difference, its 95% percentile interval and the two-sided p-value
    :func:`bootstrap_p_value` over the resamples.
    """
    if len(folds_a) != len(folds_b):
        raise ValueError(f"cells scored on {len(folds_a)} and {len(folds_b)} folds cannot be paired")
    point, samples = bootstrap_mean_aucs([[a, b] for a, b in zip(folds_a, folds_b)], n_resamples, seed)
    d = samples[0] - samples[1]
    low, high = percentile_interval(d, 0.95)
    return {"difference": float(point[0] - point[1]), "ci95_low": float(low), "ci95_high": float(high),
            "p_value": bootstrap_p_value(d)}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), np.nan)
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid])]):
        running = max(running, min(1.0, (len(valid) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def tumour_size_reader_auc(train: Sequence[Mapping], test: Sequence[Mapping]) -> float:
    """ROC AUC on ``test`` of a logistic regression of ``pni`` on the log tumour volume, fit on ``train``.

    Both are patch datalist items with ``pni`` and ``tumour_volume_ml`` (the volume of the segmentation the
    patches were cut from). A reference that needs no synthetic latents, so it exists for any cohort: a model
    that scores near it may have learnt tumour size and nothing else. NaN when either side has one class only
    or an item has no volume.
    """
    from sklearn.linear_model import LogisticRegression

    def arrays(items: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray] | None:
        volumes = [item.get("tumour_volume_ml") for item in items]
        if any(v is None for v in volumes):
            return None
        labels = np.array([int(item["pni"]) for item in items])
        return np.log(np.maximum(np.array(volumes, dtype=float), 1e-3))[:, None], labels

    fit, scored = arrays(train), arrays(test)
    if fit is None or scored is None or len(set(fit[1])) < 2 or len(set(scored[1])) < 2:
        return float("nan")
    reader = LogisticRegression().fit(*fit)
    return roc_auc(scored[1], reader.predict_proba(scored[0])[:, 1])


def latent_region_features(entry_path: str | Path) -> np.ndarray:
    """What PattenNet's region pooling reads off a patch's cached latent, with no trained layer before it.

    Args:
        entry_path: a :class:`neonet_ext.data.LatentCache` entry with ``mu`` (C * L, x, y, z) and ``regions``.

    Returns:
        (5 * C * L + 1,): the latent's means over the tumour, its rim and the far liver, the two contrasts and the log
        tumour size (:func:`neonet_ext.networks.region_means` at its default rim and far distances).

    Raises:
        ValueError: the entry cannot be read or holds no region fractions (written for a PattenNet without
            region pooling); the message names it.
    """
    from neonet_ext.networks import region_means
    from neonet_ext.transforms import LoadLatentd

    entry = LoadLatentd("latent", with_sigma=False, with_regions=True)({"latent": str(entry_path)})
    return region_means(entry["latent_mu"], entry["latent_regions"])[0].numpy()


def latent_region_reader_auc(train: Sequence[Mapping], test: Sequence[Mapping]) -> float:
    """ROC AUC on ``test`` of a logistic regression of ``pni`` on :func:`latent_region_features`, fit on ``train``.

    Items are patch datalist items as a PattenNet training records them: ``pni`` and ``latent``, the paths of
    the patch's cache entries, the patch as it is first. The regression is standardised and its L2 strength
    chosen by a stratified cross-validation of the training items alone. A linear read of the frozen encoder's
    latent, by the regions PattenNet pools: a PattenNet near it has learnt what a linear model finds there; a
    reader near the tumour-size reader says the latent holds little else that a linear model can find. NaN when
    either side has fewer than two cases of a class or an item has no entry with region fractions.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def arrays(items: Sequence[Mapping]) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            features = [latent_region_features(item["latent"][0]) for item in items]
        except (KeyError, IndexError, ValueError):  # no entry listed, or one without region fractions
            return None
        return np.stack(features), np.array([int(item["pni"]) for item in items])

    fit = arrays(train)
    scored = arrays(test) if fit is not None else None
    smaller_class = int(np.bincount(fit[1], minlength=2).min()) if fit is not None else 0
    if scored is None or smaller_class < 2 or len(set(scored[1])) < 2:
        return float("nan")
    folds = StratifiedKFold(min(5, smaller_class))
    reader = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                          {"logisticregression__C": np.logspace(-3, 1, 9)}, cv=folds, scoring="roc_auc")
    reader.fit(*fit)
    return roc_auc(scored[1], reader.predict_proba(scored[0])[:, 1])


def size_rank_correlation(scores: FoldScores, volumes: Mapping[str, float | None]) -> float:
    """Spearman correlation between a cell's held-out scores and its test patients' tumour volumes.

    Near +1 or -1, the cell ranks its patients by tumour size and little else (-1: smaller tumours scored higher);
    beside the tumour-size reader's AUC it shows whether a model learnt size or more. NaN with fewer than 3
    scored cases, a case without a volume, or constant scores.
    """
    from scipy.stats import spearmanr

    cases = sorted(scores)
    if len(cases) < 3 or any(volumes.get(c) is None for c in cases):
        return float("nan")
    predicted = [scores[c][1] for c in cases]
    if len(set(predicted)) < 2:
        return float("nan")
    return float(spearmanr(predicted, [volumes[c] for c in cases]).statistic)
