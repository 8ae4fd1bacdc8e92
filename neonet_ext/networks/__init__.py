"""NeoNet networks, importable by bundle configs, e.g. ``"_target_": "neonet_ext.networks.PattenNet"``."""

from .blocks import ChannelAttention, DualAttentionBlock, SpatialAttention
from .nets import (
    CLASSIFIER_NAMES,
    NEOGEN_AUTOENCODER,
    FrozenLatentEncoder,
    PattenNet,
    PattenNetFromLatents,
    SwinClassifier,
    controlnet_condition_channels,
    get_classifier,
    neogen_autoencoder,
    upsample_attention_map,
)

__all__ = [
    "CLASSIFIER_NAMES",
    "NEOGEN_AUTOENCODER",
    "controlnet_condition_channels",
    "neogen_autoencoder",
    "ChannelAttention",
    "DualAttentionBlock",
    "FrozenLatentEncoder",
    "PattenNet",
    "PattenNetFromLatents",
    "SpatialAttention",
    "SwinClassifier",
    "get_classifier",
    "upsample_attention_map",
]
