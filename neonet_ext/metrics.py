"""Metrics in physical units for the bundles' evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric, HausdorffDistanceMetric
from monai.utils import MetricReduction

__all__ = [
    "HausdorffDistanceMM",
    "HausdorffDistanceMMMetric",
    "TumourDetection",
    "TumourDetectionMetric",
    "attention_share",
    "expected_calibration_error",
    "label_volume_ml",
    "mask_dice",
    "select_channel",
]


def _spacing(image: MetaTensor) -> list[float]:
    affine = image.affine
    affine = affine[0] if affine.ndim == 3 else affine
    return torch.linalg.norm(affine[:3, :3].float(), dim=0).tolist()


def mask_dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks of one shape; NaN when both are empty (nothing to score)."""
    total = int(prediction.sum()) + int(truth.sum())
    return float("nan") if total == 0 else 2.0 * float(np.logical_and(prediction, truth).sum()) / total


def label_volume_ml(label: torch.Tensor, value: int) -> float:
    """Volume in millilitres of the voxels equal to ``value`` in a label map.

    Args:
        label: (1, X, Y, Z) label map; a MetaTensor gives the voxel size from its affine,
            anything else counts 1 mm^3 per voxel.
        value: the label to measure, e.g. ``neonet_ext.labels.TUMOUR``.
    """
    voxel_mm3 = float(np.prod(_spacing(label))) if isinstance(label, MetaTensor) else 1.0
    count = int((torch.as_tensor(label) == value).sum())
    return count * voxel_mm3 / 1000.0


def attention_share(
    attention: np.ndarray | torch.Tensor, tumour: np.ndarray | torch.Tensor, spacing: Sequence[float], rim_mm: float = 10.0
) -> tuple[float, float]:
    """Where an attention map puts its mass: the share inside the tumour and a rim around it, next to
    the share of the patch that region takes (what a map spread evenly would score).

    Args:
        attention: (X, Y, Z) non-negative map on the patch grid (negative values count as 0).
        tumour: (X, Y, Z) tumour mask on the same grid.
        spacing: voxel size in mm (3,).
        rim_mm: the rim's width in mm (its voxels lie within ``rim_mm`` of a tumour voxel).

    Returns:
        ``(attention mass in the region / all attention mass, region voxels / patch voxels)``; the first is
        NaN for a map with no mass, both NaN without a tumour.
    """
    from scipy.ndimage import distance_transform_edt

    tumour = np.asarray(tumour) > 0
    if not tumour.any():
        return float("nan"), float("nan")
    region = distance_transform_edt(~tumour, sampling=[float(s) for s in spacing]) <= rim_mm
    mass = np.clip(np.asarray(attention, dtype=np.float64), 0, None)
    total = float(mass.sum())
    return (float(mass[region].sum()) / total if total > 0 else float("nan")), float(region.mean())


class HausdorffDistanceMMMetric(HausdorffDistanceMetric):
    """Hausdorff distance in millimetres: the voxel spacing comes from the prediction's
    affine (a MetaTensor) unless ``spacing`` is passed explicitly."""

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:  # type: ignore[override]
        if kwargs.get("spacing") is None and isinstance(y_pred, MetaTensor):
            kwargs["spacing"] = _spacing(y_pred)
        return super()._compute_tensor(y_pred, y, **kwargs)

    def aggregate(self, reduction: MetricReduction | str | None = None):  # type: ignore[override]
        """As MONAI's, except that when no case has a distance (e.g. the class was never
        predicted) the result is NaN, not MONAI's 0, which would read as a perfect score."""
        result = super().aggregate(reduction)
        data = self.get_buffer()
        if isinstance(data, torch.Tensor) and data.numel() and torch.isnan(data).all():
            nan = torch.full_like(result[0] if isinstance(result, (tuple, list)) else result, float("nan"))
            return (nan, *result[1:]) if isinstance(result, (tuple, list)) else nan
        return result


class HausdorffDistanceMM(IgniteMetricHandler):
    """Ignite handler of :class:`HausdorffDistanceMMMetric` (MONAI's ``HausdorffDistance``
    handler cannot pass the spacing, so it reports voxels)."""

    def __init__(
        self,
        include_background: bool = False,
        percentile: float | None = 95,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = HausdorffDistanceMMMetric(
            include_background=include_background, percentile=percentile, reduction=reduction
        )
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class TumourDetectionMetric(CumulativeIterationMetric):
    """Detection rate of a class: the share of the cases whose ground truth holds the class where the prediction
    overlaps it. A prediction with none of the class, or with it only elsewhere, is a missed case; a case
    without the class in its ground truth is not counted (NaN in the buffer).

    Inputs are one-hot (B, C, X, Y, Z) prediction and ground truth, as MONAI's ``DiceMetric`` takes them.

    Args:
        channel: the class's channel, e.g. ``neonet_ext.labels.TUMOUR``.
    """

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.channel = channel

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        truth = torch.as_tensor(y)[:, self.channel].flatten(1) > 0
        predicted = torch.as_tensor(y_pred)[:, self.channel].flatten(1) > 0
        hit = (truth & predicted).any(1).float()
        hit[~truth.any(1)] = float("nan")
        return hit[:, None]

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """The detection rate over the cases with the class (NaN when there is none)."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            return torch.tensor(float("nan"))
        return torch.nanmean(data.float())


class TumourDetection(IgniteMetricHandler):
    """Ignite handler of :class:`TumourDetectionMetric`; with ``save_details`` MetricsSaver writes each case's
    1 (found) / 0 (missed) / NaN (no tumour in the ground truth)."""

    def __init__(self, channel: int, output_transform: Callable = lambda x: x, save_details: bool = True) -> None:
        super().__init__(metric_fn=TumourDetectionMetric(channel), output_transform=output_transform,
                         save_details=save_details)


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, n_bins: int = 10) -> float:
    """ECE of positive-class probabilities: the case-weighted mean |observed rate - mean probability|
    over ``n_bins`` equal-width bins of [0, 1]."""
    labels, probabilities = np.asarray(labels, dtype=float), np.asarray(probabilities, dtype=float)
    bins = np.clip((probabilities * n_bins).astype(int), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        members = bins == b
        if members.any():
            ece += members.mean() * abs(labels[members].mean() - probabilities[members].mean())
    return float(ece)


def select_channel(batch: tuple[Sequence, Sequence], channel: int) -> tuple[list, list]:
    """Keep the background and one class of one-hot ``(preds, labels)`` (each C, X, Y, Z),
    so that a Dice metric with ``include_background=False`` scores that class alone."""
    keep = [0, channel]
    return [p[keep] for p in batch[0]], [y[keep] for y in batch[1]]
