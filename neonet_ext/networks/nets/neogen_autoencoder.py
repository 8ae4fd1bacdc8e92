"""NeoGen's AutoencoderKL: the one definition that NeoGen's stages and NeoCls's PattenNet build.

Every bundle config builds it with ``{"_target_": "neonet_ext.networks.neogen_autoencoder"}``; a
change of widths is made here once. Any argument may still be overridden from a config or the
command line (``--autoencoder_def#channels "[16, 32, 32]"``), as the study's profiles and the tests do.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import AutoencoderKL
from torch import nn

from ..blocks.space_to_depth import fold_blocks, unfold_blocks

__all__ = ["NEOGEN_AUTOENCODER", "NEOGEN_BLOCK_SIZE", "SpaceToDepthAutoencoderKL", "autoencoder_downsampling", "neogen_autoencoder"]

#: Arguments of MONAI's ``AutoencoderKL`` for NeoGen: 1-channel TLCR crops, one level of 64 channels on the grid of
#: 2x2x2 blocks (:data:`NEOGEN_BLOCK_SIZE`) down to an 8-channel latent, one value per block.
NEOGEN_AUTOENCODER: dict[str, Any] = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 1,
    "channels": (64,),
    "latent_channels": 8,
    "num_res_blocks": 1,
    "norm_num_groups": 16,
    "attention_levels": (False,),
    "with_encoder_nonlocal_attn": False,
    "with_decoder_nonlocal_attn": False,
}


#: Side of the voxel blocks NeoGen's autoencoder folds into channels before its first convolution (NeoGen docs,
#: "blocks folded into channels"); the diffusion UNet folds its latent's blocks by the same side.
NEOGEN_BLOCK_SIZE = 2


def neogen_autoencoder(block_size: int = NEOGEN_BLOCK_SIZE, **overrides: Any) -> AutoencoderKL:
    """NeoGen's ``AutoencoderKL`` (:data:`NEOGEN_AUTOENCODER`), with any of its arguments overridden.

    Args:
        block_size: above 1, a :class:`SpaceToDepthAutoencoderKL` that folds blocks of this side into
            channels before its first convolution; 1, a plain ``AutoencoderKL``.
        overrides: ``AutoencoderKL`` arguments replacing NeoGen's, e.g. ``channels=(8, 8, 8), norm_num_groups=4``.
            ``attention_levels`` follows the number of levels unless given.
    """
    arguments = {**NEOGEN_AUTOENCODER, **overrides}
    if "channels" in overrides and "attention_levels" not in overrides:
        arguments["attention_levels"] = (False,) * len(arguments["channels"])
    if block_size > 1:
        return SpaceToDepthAutoencoderKL(block_size=block_size, **arguments)
    return AutoencoderKL(**arguments)


class _SpaceToDepthEncoder(nn.Module):
    """An ``AutoencoderKL`` encoder run on ``x`` with each ``block_size``-sided block folded into channels."""

    def __init__(self, encoder: nn.Module, spatial_dims: int, in_channels: int, block_size: int) -> None:
        super().__init__()
        self.blocks = encoder
        self.spatial_dims, self.in_channels, self.block_size = spatial_dims, in_channels, block_size
        self.channels = encoder.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(fold_blocks(x, self.spatial_dims, self.block_size))


class _DepthToSpaceDecoder(nn.Module):
    """An ``AutoencoderKL`` decoder whose output channels are unfolded into ``block_size``-sided blocks."""

    def __init__(self, decoder: nn.Module, spatial_dims: int, block_size: int) -> None:
        super().__init__()
        self.blocks = decoder
        self.spatial_dims, self.block_size = spatial_dims, block_size

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return unfold_blocks(self.blocks(z), self.spatial_dims, self.block_size)


class SpaceToDepthAutoencoderKL(AutoencoderKL):
    """``AutoencoderKL`` that first folds every ``block_size``-sided block of voxels into channels (pixel
    unshuffle) and whose decoder ends by unfolding them (pixel shuffle), so that every convolution runs on the
    block grid: a block-size-2 network with one level has the latent grid of a 2-level ``AutoencoderKL``
    (each latent voxel describes a 2x2x2 block) at a fraction of its cost, none of its convolutions being at
    the input's resolution.

    Shapes: input (B, ``in_channels``, *S), each side of S divisible by :func:`autoencoder_downsampling`;
    latent (B, ``latent_channels``, *S / that factor); output as the input.

    Args:
        spatial_dims, in_channels, out_channels: as ``AutoencoderKL``'s, for the unfolded image.
        block_size: side of the folded blocks.
        kwargs: the rest of ``AutoencoderKL``'s arguments, for the network on the block grid.
    """

    def __init__(self, spatial_dims: int, in_channels: int = 1, out_channels: int = 1, block_size: int = 2,
                 **kwargs: Any) -> None:
        fold = block_size**spatial_dims
        super().__init__(spatial_dims=spatial_dims, in_channels=in_channels * fold, out_channels=out_channels * fold, **kwargs)
        self.block_size = block_size
        self.encoder = _SpaceToDepthEncoder(self.encoder, spatial_dims, in_channels, block_size)
        self.decoder = _DepthToSpaceDecoder(self.decoder, spatial_dims, block_size)


def autoencoder_downsampling(autoencoder: AutoencoderKL) -> int:
    """How many times smaller along each side the latent grid of ``autoencoder`` is than its input: 2 per level
    after the first, times the folded block's side of a :class:`SpaceToDepthAutoencoderKL`."""
    levels = len(autoencoder.encoder.channels)
    return getattr(autoencoder, "block_size", 1) * 2 ** (levels - 1)

