"""Metrics in physical units for the bundles' evaluation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.data import MetaTensor
from monai.handlers import IgniteMetricHandler
from monai.metrics import HausdorffDistanceMetric
from monai.utils import MetricReduction

__all__ = ["HausdorffDistanceMM", "HausdorffDistanceMMMetric"]


def _spacing(image: MetaTensor) -> list[float]:
    affine = image.affine
    affine = affine[0] if affine.ndim == 3 else affine
    return torch.linalg.norm(affine[:3, :3].float(), dim=0).tolist()


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
