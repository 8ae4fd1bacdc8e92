"""Folding blocks of voxels into channels and back, as MONAI's ``pixelunshuffle`` / ``pixelshuffle`` do (same
channel order, so weights trained with either load in the other), written so that TorchScript compiles them: the
networks that fold (NeoGen's autoencoder inside PattenNet) are exported with ``torch.jit.script``."""

from __future__ import annotations

import torch

__all__ = ["fold_blocks", "unfold_blocks"]


def _block_volume(spatial_dims: int, block_size: int) -> int:
    volume = 1  # a loop, not block_size**spatial_dims: TorchScript's int power is a float
    for _ in range(spatial_dims):
        volume *= block_size
    return volume


def fold_blocks(x: torch.Tensor, spatial_dims: int, block_size: int) -> torch.Tensor:
    """Each ``block_size``-sided block of ``x`` folded into channels.

    Shapes: ``x`` (B, C, *S), each side of S divisible by ``block_size``; output (B, C * block_size**spatial_dims,
    *S / block_size). The channel of voxel (i, j, k) of a block in channel c is ``c * b**3 + i * b**2 + j * b + k``.

    Raises:
        ValueError: a side of S is not divisible by ``block_size``.
    """
    shape = x.shape
    sides = [int(d) for d in shape[2:]]
    for side in sides:
        if side % block_size != 0:
            raise ValueError(f"every spatial side must be divisible by the block size {block_size}, got {sides}")
    split: list[int] = [int(shape[0]), int(shape[1])]
    folded: list[int] = [int(shape[0]), int(shape[1]) * _block_volume(spatial_dims, block_size)]
    for side in sides:
        split += [side // block_size, block_size]
        folded.append(side // block_size)
    order: list[int] = [0, 1]
    for i in range(spatial_dims):
        order.append(2 * i + 3)
    for i in range(spatial_dims):
        order.append(2 * i + 2)
    return x.reshape(split).permute(order).reshape(folded)


def unfold_blocks(x: torch.Tensor, spatial_dims: int, block_size: int) -> torch.Tensor:
    """The inverse of :func:`fold_blocks`.

    Shapes: ``x`` (B, C * block_size**spatial_dims, *S); output (B, C, *S * block_size).

    Raises:
        ValueError: the channels are not a multiple of ``block_size**spatial_dims``.
    """
    shape = x.shape
    fold = _block_volume(spatial_dims, block_size)
    if int(shape[1]) % fold != 0:
        raise ValueError(f"the channels ({int(shape[1])}) must be a multiple of {block_size}**{spatial_dims} = {fold}")
    sides = [int(d) for d in shape[2:]]
    split: list[int] = [int(shape[0]), int(shape[1]) // fold]
    unfolded: list[int] = [int(shape[0]), int(shape[1]) // fold]
    for _ in range(spatial_dims):
        split.append(block_size)
    for side in sides:
        split.append(side)
        unfolded.append(side * block_size)
    order: list[int] = [0, 1]
    for i in range(spatial_dims):
        order += [2 + spatial_dims + i, 2 + i]
    return x.reshape(split).permute(order).reshape(unfolded)
