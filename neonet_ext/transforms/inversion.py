"""The label map on the input grid: class probabilities resampled linearly there, then the argmax, computed only
where it can differ from background.

``Invertd`` on the probabilities followed by an argmax gives the same labels, but resamples every class over
the whole input grid; on a scanner-size matrix that made the label map cost more than the nearest-neighbour
inversion of the network grid's argmax that it replaced (``benchmarks/bench_neoseg_inversion.py``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, SpatialResample, Transform
from monai.utils import GridSamplePadMode

__all__ = ["InputGridArgmax", "InputGridArgmaxd", "grown_box", "voxel_shift", "with_input_meta"]


class InputGridArgmax(Transform):
    """Class probabilities on the network grid -> the argmax of their linear resampling onto the input grid.

    Background is class 0. Wherever the network grid's argmax is background, linear interpolation mixes only
    background-winning probability vectors, whose mixture still has background winning; so only the input
    voxels whose interpolation reaches the bounding box of the non-background argmax (grown by one network
    voxel) are resampled, the rest are background. Border padding keeps the labels that ``Invertd`` (with
    ``Spacingd``'s default border padding) would give outside the network grid.

    Args:
        align_corners: as the ``Spacingd`` that made the network grid (its default, ``False``).
    """

    def __init__(self, align_corners: bool = False) -> None:
        self.resample = SpatialResample(mode="bilinear", padding_mode=GridSamplePadMode.BORDER,
                                        align_corners=align_corners, dtype=torch.float32)

    def __call__(self, probabilities: MetaTensor, input_affine: Any, input_shape: Sequence[int]) -> MetaTensor:
        """
        Args:
            probabilities: (C, x, y, z) class probabilities (or any scores that a convex mixture keeps ordered,
                e.g. softmax output) with the network grid's affine.
            input_affine: (4, 4) affine of the input grid, in the same world coordinates as ``probabilities``.
            input_shape: the input grid's spatial shape (X, Y, Z).

        Returns:
            (1, X, Y, Z) uint8 labels with ``input_affine``.
        """
        if not isinstance(probabilities, MetaTensor):
            raise TypeError(f"probabilities must be a MetaTensor with the network grid's affine, got {type(probabilities).__name__}.")
        input_shape = tuple(int(s) for s in input_shape)
        input_affine = torch.as_tensor(np.asarray(input_affine), dtype=torch.float64)
        labels = torch.zeros((1, *input_shape), dtype=torch.uint8, device=probabilities.device)
        foreground = _channel_argmax(probabilities.as_tensor()) > 0
        if foreground.any():
            network_box = grown_box(foreground, margin=1)
            source = probabilities[(slice(None), *(slice(lo, hi) for lo, hi in network_box))]
            source = MetaTensor(source.as_tensor(), affine=probabilities.affine @ voxel_shift([lo for lo, _ in network_box]))
            input_box = _input_box(source.affine, source.shape[1:], input_affine, input_shape)
            if input_box is not None:
                origin = [lo for lo, _ in input_box]
                sampled = self.resample(source, dst_affine=input_affine @ voxel_shift(origin),
                                        spatial_size=[hi - lo for lo, hi in input_box])
                labels[(slice(None), *(slice(lo, hi) for lo, hi in input_box))] = _channel_argmax(sampled.as_tensor())
        return MetaTensor(labels, affine=input_affine)


def _channel_argmax(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(0)`` as uint8 (the first of equal maxima wins, as there): a pass per channel, several times
    faster on CPU than torch's reduction across the channel dimension."""
    labels = torch.zeros(scores.shape[1:], dtype=torch.uint8, device=scores.device)
    best = scores[0].clone()
    for channel in range(1, scores.shape[0]):
        better = scores[channel] > best
        labels[better] = channel
        torch.maximum(best, scores[channel], out=best)
    return labels


def voxel_shift(offset: Sequence[float]) -> torch.Tensor:
    """(4, 4) float64 translation by ``offset`` voxels: ``affine @ voxel_shift(lo)`` is the affine of a block from ``lo``."""
    shift = torch.eye(4, dtype=torch.float64)
    shift[:3, 3] = torch.as_tensor([float(o) for o in offset], dtype=torch.float64)
    return shift


def grown_box(mask: torch.Tensor, margin: int | Sequence[int]) -> list[tuple[int, int]]:
    """[lo, hi) per axis of the mask's bounding box grown by ``margin`` voxels (one for all axes, or one per axis),
    clipped to the array."""
    margins = [margin] * mask.ndim if isinstance(margin, int) else [int(m) for m in margin]
    box = []
    for axis, grow in enumerate(margins):
        present = mask.any(dim=tuple(a for a in range(mask.ndim) if a != axis)).nonzero()
        box.append((max(int(present[0]) - grow, 0), min(int(present[-1]) + 1 + grow, mask.shape[axis])))
    return box


def _input_box(source_affine: torch.Tensor, source_shape: Sequence[int], input_affine: torch.Tensor,
               input_shape: Sequence[int]) -> list[tuple[int, int]] | None:
    """[lo, hi) per axis of the input voxels whose interpolation can reach the source block: the bounding box of
    the block's corners, one voxel beyond each (an input voxel less than one source voxel outside the block
    still mixes its values), mapped to input voxels; ``None`` when it misses the input grid."""
    corners = torch.cartesian_prod(*[torch.tensor([-1.0, float(s)], dtype=torch.float64) for s in source_shape])
    corners = torch.cat([corners, torch.ones(len(corners), 1, dtype=torch.float64)], 1)
    in_input = (torch.linalg.inv(input_affine) @ source_affine @ corners.T)[:3]
    box = []
    for axis, size in enumerate(input_shape):
        lo = max(int(np.floor(float(in_input[axis].min()))), 0)
        hi = min(int(np.ceil(float(in_input[axis].max()))) + 1, size)
        if lo >= hi:
            return None
        box.append((lo, hi))
    return box


class InputGridArgmaxd(MapTransform):
    """Dictionary version of :class:`InputGridArgmax`: replaces ``keys`` (class probabilities on the network grid)
    by their label map on the grid ``orig_key`` was read on (its ``original_affine`` and ``spatial_shape``), with
    the rest of ``orig_key``'s metadata, so ``SaveImaged`` writes it beside the input."""

    def __init__(self, keys: KeysCollection, orig_key: str = "image", align_corners: bool = False,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.orig_key = orig_key
        self.argmax = InputGridArgmax(align_corners)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        meta = d[self.orig_key].meta
        for key in self.key_iterator(d):
            d[key] = with_input_meta(self.argmax(d[key], meta["original_affine"], meta["spatial_shape"]), meta)
        return d


def with_input_meta(labels: MetaTensor, meta: Mapping[str, Any]) -> MetaTensor:
    """``labels`` on the input grid with the rest of the input's metadata (file name...), so ``SaveImaged`` writes
    them beside the input."""
    return MetaTensor(labels.as_tensor(), meta={**meta, "affine": labels.affine})
