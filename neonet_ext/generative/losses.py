"""Reconstruction losses for NeoGen's autoencoder."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["EdgeWeightedL1Loss", "zero_edge"]

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def zero_edge(image: torch.Tensor) -> torch.Tensor:
    """Where ``image`` (B, C, *S) changes between zero and non-zero: 1 at each voxel whose 3x3(x3) neighbourhood
    (its own channel) holds both, else 0; same shape and dtype as ``image``. The volume's border is not an edge.

    A TLCR channel is the image inside a mask and zero outside, so this marks the mask's boundary, one voxel
    either side of it."""
    max_pool = _MAX_POOL[image.ndim - 2]
    inside = (image != 0).to(image.dtype)
    any_inside = max_pool(inside, kernel_size=3, stride=1, padding=1)
    any_outside = max_pool(1 - inside, kernel_size=3, stride=1, padding=1)
    return any_inside * any_outside


class EdgeWeightedL1Loss(nn.Module):
    """Mean absolute error in which the voxels of the target's :func:`zero_edge` count ``1 + edge_weight`` times.

    With a uniform L1 the autoencoder blurs a masked channel's step from tissue to zero: the few voxels
    on a mask's boundary weigh little in the mean, yet hold most of the squared error (NeoGen docs). The
    result is normalised by the weights' sum, so it stays on the scale of ``torch.nn.L1Loss`` (which it
    equals at ``edge_weight`` 0 or for targets without an edge).

    Args:
        edge_weight: extra weight of an edge voxel.

    Shapes: input and target (B, C, *S); returns a scalar.
    """

    def __init__(self, edge_weight: float = 4.0) -> None:
        super().__init__()
        if edge_weight < 0:
            raise ValueError(f"edge_weight must be >= 0, got {edge_weight}")
        self.edge_weight = edge_weight

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.shape != target.shape:
            raise ValueError(f"input {tuple(input.shape)} and target {tuple(target.shape)} differ in shape")
        weight = 1 + self.edge_weight * zero_edge(target.detach())
        return (weight * (input - target).abs()).sum() / weight.sum()
