"""NeoGen's latent diffusion UNet and the ControlNet that mirrors it: the one definition that NeoGen's
training stages and its inference config build.

Configs build them with ``{"_target_": "neonet_ext.networks.neogen_diffusion_unet", "latent_channels": ...,
"num_classes": ...}`` and ``{"_target_": "neonet_ext.networks.neogen_controlnet", "diffusion_unet":
"@diffusion_unet_def", "autoencoder": "@autoencoder_def"}``; any UNet argument may be overridden from a
config or the command line (``--diffusion_unet_def#channels "[16, 16, 32]"``) and the ControlNet follows.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from monai.networks.nets import AutoencoderKL, ControlNet, DiffusionModelUNet

from ..blocks.space_to_depth import fold_blocks, unfold_blocks
from .neogen_autoencoder import NEOGEN_BLOCK_SIZE, autoencoder_downsampling

__all__ = [
    "NEOGEN_DIFFUSION_UNET",
    "SpaceToDepthControlNet",
    "SpaceToDepthDiffusionUNet",
    "controlnet_condition_channels",
    "neogen_controlnet",
    "neogen_diffusion_unet",
]

#: Arguments of MONAI's ``DiffusionModelUNet`` for NeoGen's latents, besides the latent and class counts.
NEOGEN_DIFFUSION_UNET: dict[str, Any] = {
    "spatial_dims": 3,
    "channels": (32, 64, 64),
    "attention_levels": (False, True, True),
    "num_head_channels": (0, 32, 32),
    "num_res_blocks": 1,
    "norm_num_groups": 16,
    "with_conditioning": True,
}


def neogen_diffusion_unet(latent_channels: int, num_classes: int, block_size: int = NEOGEN_BLOCK_SIZE, **overrides: Any) -> DiffusionModelUNet:
    """NeoGen's class-conditioned diffusion UNet (:data:`NEOGEN_DIFFUSION_UNET`) on latents of
    ``latent_channels`` channels, conditioned on a one-hot class of ``num_classes`` by cross-attention.

    Args:
        latent_channels: channels of the autoencoder's latent (the UNet's input and output).
        num_classes: length of the class context (B, 1, num_classes) it attends to.
        block_size: above 1, a :class:`SpaceToDepthDiffusionUNet` that runs on the latent with each block of
            this side folded into channels.
        overrides: ``DiffusionModelUNet`` arguments replacing NeoGen's, e.g. ``channels=(16, 16, 32)``.
    """
    arguments = {**NEOGEN_DIFFUSION_UNET, **overrides, "in_channels": latent_channels,
                 "cross_attention_dim": num_classes}
    if block_size > 1:
        unet: DiffusionModelUNet = SpaceToDepthDiffusionUNet(out_channels=latent_channels, block_size=block_size, **arguments)
    else:
        unet = DiffusionModelUNet(out_channels=latent_channels, **arguments)
    unet.neogen_arguments = arguments  # what neogen_controlnet mirrors
    unet.neogen_block_size = block_size
    return unet


def neogen_controlnet(diffusion_unet: DiffusionModelUNet, autoencoder: AutoencoderKL,
                      condition_channels: int = 2) -> ControlNet:
    """A ControlNet with the encoder of ``diffusion_unet`` (same levels, widths, attention, conditioning and
    folded blocks, so that the UNet's weights initialise it), embedding ``condition_channels`` masks on the patch
    grid down to the grid the UNet runs on (:func:`controlnet_condition_channels`).

    Raises:
        TypeError: ``diffusion_unet`` was not built by :func:`neogen_diffusion_unet`.
    """
    arguments = getattr(diffusion_unet, "neogen_arguments", None)
    if arguments is None:
        raise TypeError("neogen_controlnet mirrors a UNet built by neonet_ext.networks.neogen_diffusion_unet, "
                        f"got a {type(diffusion_unet).__name__} built otherwise.")
    block_size = diffusion_unet.neogen_block_size
    embedding = controlnet_condition_channels(autoencoder, block_size=block_size)
    if block_size > 1:
        return SpaceToDepthControlNet(**arguments, block_size=block_size, conditioning_embedding_in_channels=condition_channels,
                                      conditioning_embedding_num_channels=embedding)
    return ControlNet(**arguments, conditioning_embedding_in_channels=condition_channels,
                      conditioning_embedding_num_channels=embedding)


class SpaceToDepthDiffusionUNet(DiffusionModelUNet):
    """``DiffusionModelUNet`` that folds every ``block_size``-sided block of its input into channels (pixel
    unshuffle), runs on that coarser grid and unfolds its output, so that a latent of one value per input voxel
    costs the UNet what a latent ``block_size`` times coarser would (NeoGen docs, "the diffusion UNet").

    Shapes: ``x`` (B, ``in_channels``, *S), each side of S divisible by ``block_size`` times the UNet's
    down-sampling; output as ``x``. ControlNet residuals, if given, are on the folded grid (a
    :class:`SpaceToDepthControlNet` of the same ``block_size`` makes them).

    Args:
        spatial_dims, in_channels, out_channels: as ``DiffusionModelUNet``'s, for the unfolded latent.
        block_size: side of the folded blocks.
        kwargs: the rest of ``DiffusionModelUNet``'s arguments, for the network on the folded grid.
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, block_size: int = 2, **kwargs: Any) -> None:
        fold = block_size**spatial_dims
        super().__init__(spatial_dims=spatial_dims, in_channels=in_channels * fold, out_channels=out_channels * fold, **kwargs)
        self.spatial_dims, self.block_size = spatial_dims, block_size

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None,
                class_labels: torch.Tensor | None = None,
                down_block_additional_residuals: tuple[torch.Tensor] | None = None,
                mid_block_additional_residual: torch.Tensor | None = None) -> torch.Tensor:
        folded = fold_blocks(x, self.spatial_dims, self.block_size)
        output = super().forward(folded, timesteps, context, class_labels, down_block_additional_residuals,
                                 mid_block_additional_residual)
        return unfold_blocks(output, self.spatial_dims, self.block_size)


class SpaceToDepthControlNet(ControlNet):
    """``ControlNet`` for a :class:`SpaceToDepthDiffusionUNet`: the latent folded as the UNet folds it, the masks
    embedded down to that folded grid; its residuals are the folded UNet's.

    Args:
        spatial_dims, in_channels: as ``ControlNet``'s, for the unfolded latent.
        block_size: side of the folded blocks.
        kwargs: the rest of ``ControlNet``'s arguments.
    """

    def __init__(self, spatial_dims: int, in_channels: int, block_size: int = 2, **kwargs: Any) -> None:
        super().__init__(spatial_dims=spatial_dims, in_channels=in_channels * block_size**spatial_dims, **kwargs)
        self.spatial_dims, self.block_size = spatial_dims, block_size

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, controlnet_cond: torch.Tensor,
                conditioning_scale: float = 1.0, context: torch.Tensor | None = None,
                class_labels: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        folded = fold_blocks(x, self.spatial_dims, self.block_size)
        return super().forward(folded, timesteps, controlnet_cond, conditioning_scale, context, class_labels)


def controlnet_condition_channels(autoencoder: AutoencoderKL, first: int = 8, block_size: int = 1) -> list[int]:
    """Widths of a ControlNet's mask embedding for latents of ``autoencoder``, doubling from ``first``: one
    stage more than the halvings from the patch grid to the latent grid (:func:`autoencoder_downsampling`,
    times the ``block_size`` a :class:`SpaceToDepthDiffusionUNet` folds), the embedding halving the size between
    stages, so that the masks reach the UNet's grid as the image does."""
    factor = autoencoder_downsampling(autoencoder) * block_size
    halvings = math.log2(factor)
    if not halvings.is_integer():
        raise ValueError(f"the diffusion UNet's grid must be a power-of-two smaller than the patch, got {factor}x.")
    return [first * 2**stage for stage in range(int(halvings) + 1)]
