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

from monai.networks.nets import AutoencoderKL, ControlNet, DiffusionModelUNet

from .neogen_autoencoder import autoencoder_downsampling

__all__ = ["NEOGEN_DIFFUSION_UNET", "controlnet_condition_channels", "neogen_controlnet", "neogen_diffusion_unet"]

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


def neogen_diffusion_unet(latent_channels: int, num_classes: int, **overrides: Any) -> DiffusionModelUNet:
    """NeoGen's class-conditioned diffusion UNet (:data:`NEOGEN_DIFFUSION_UNET`) on latents of
    ``latent_channels`` channels, conditioned on a one-hot class of ``num_classes`` by cross-attention.

    Args:
        latent_channels: channels of the autoencoder's latent (the UNet's input and output).
        num_classes: length of the class context (B, 1, num_classes) it attends to.
        overrides: ``DiffusionModelUNet`` arguments replacing NeoGen's, e.g. ``channels=(16, 16, 32)``.
    """
    arguments = {**NEOGEN_DIFFUSION_UNET, **overrides, "in_channels": latent_channels,
                 "cross_attention_dim": num_classes}
    unet = DiffusionModelUNet(out_channels=latent_channels, **arguments)
    unet.neogen_arguments = arguments  # what neogen_controlnet mirrors
    return unet


def neogen_controlnet(diffusion_unet: DiffusionModelUNet, autoencoder: AutoencoderKL,
                      condition_channels: int = 2) -> ControlNet:
    """A ControlNet with the encoder of ``diffusion_unet`` (same levels, widths, attention and
    conditioning, so that the UNet's weights initialise it), embedding ``condition_channels`` masks
    on the patch grid down to ``autoencoder``'s latent grid (:func:`controlnet_condition_channels`).

    Raises:
        TypeError: ``diffusion_unet`` was not built by :func:`neogen_diffusion_unet`.
    """
    arguments = getattr(diffusion_unet, "neogen_arguments", None)
    if arguments is None:
        raise TypeError("neogen_controlnet mirrors a UNet built by neonet_ext.networks.neogen_diffusion_unet, "
                        f"got a {type(diffusion_unet).__name__} built otherwise.")
    return ControlNet(**arguments, conditioning_embedding_in_channels=condition_channels,
                      conditioning_embedding_num_channels=controlnet_condition_channels(autoencoder))


def controlnet_condition_channels(autoencoder: AutoencoderKL, first: int = 8) -> list[int]:
    """Widths of a ControlNet's mask embedding for latents of ``autoencoder``, doubling from ``first``: one
    stage more than the halvings from the patch grid to the latent grid (:func:`autoencoder_downsampling`),
    the embedding halving the size between stages, so that the masks reach the latent grid as the image does."""
    halvings = math.log2(autoencoder_downsampling(autoencoder))
    if not halvings.is_integer():
        raise ValueError(f"the autoencoder's latent grid must be a power-of-two smaller than its input, got "
                         f"{autoencoder_downsampling(autoencoder)}x.")
    return [first * 2**stage for stage in range(int(halvings) + 1)]
