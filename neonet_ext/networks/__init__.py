"""NeoNet networks, importable by bundle configs, e.g. ``"_target_": "neonet_ext.networks.PattenNet"``.

This package is their one public home: :mod:`.nets` (the classifiers, NeoGen's autoencoder) and
:mod:`.blocks` (their building blocks) hold the modules.
"""

from .blocks.dual_attention import ChannelAttention, DualAttentionBlock, SpatialAttention
from .blocks.space_to_depth import fold_blocks, unfold_blocks
from .nets.baselines import CLASSIFIER_NAMES, SwinClassifier, get_classifier
from .nets.neogen_autoencoder import NEOGEN_AUTOENCODER, NEOGEN_BLOCK_SIZE, SpaceToDepthAutoencoderKL, autoencoder_downsampling, neogen_autoencoder
from .nets.neogen_diffusion import (
    NEOGEN_DIFFUSION_UNET,
    SpaceToDepthControlNet,
    SpaceToDepthDiffusionUNet,
    controlnet_condition_channels,
    neogen_controlnet,
    neogen_diffusion_unet,
)
from .nets.tumour_refiner import REFINER_IN_CHANNELS, TUMOUR_REFINER, tumour_refiner
from .nets.pattennet import (
    FrozenLatentEncoder,
    PattenNet,
    PattenNetFromLatents,
    attention_means,
    region_fractions,
    region_means,
    upsample_attention_map,
)

__all__ = [
    "CLASSIFIER_NAMES",
    "NEOGEN_AUTOENCODER",
    "NEOGEN_BLOCK_SIZE",
    "NEOGEN_DIFFUSION_UNET",
    "REFINER_IN_CHANNELS",
    "TUMOUR_REFINER",
    "ChannelAttention",
    "DualAttentionBlock",
    "FrozenLatentEncoder",
    "PattenNet",
    "PattenNetFromLatents",
    "SpaceToDepthAutoencoderKL",
    "SpaceToDepthControlNet",
    "SpaceToDepthDiffusionUNet",
    "SpatialAttention",
    "SwinClassifier",
    "attention_means",
    "autoencoder_downsampling",
    "controlnet_condition_channels",
    "fold_blocks",
    "get_classifier",
    "neogen_autoencoder",
    "neogen_controlnet",
    "neogen_diffusion_unet",
    "region_fractions",
    "region_means",
    "tumour_refiner",
    "unfold_blocks",
    "upsample_attention_map",
]
