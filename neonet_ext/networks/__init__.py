"""NeoNet networks, importable by bundle configs, e.g. ``"_target_": "neonet_ext.networks.PattenNet"``."""

from .blocks import ChannelAttention, DualAttentionBlock, SpatialAttention
from .nets import (
    CLASSIFIER_NAMES,
    FrozenLatentEncoder,
    PattenNet,
    PattenNetFromLatents,
    SwinClassifier,
    get_classifier,
    load_autoencoder_checkpoint,
    upsample_attention_map,
)

__all__ = [
    "CLASSIFIER_NAMES",
    "ChannelAttention",
    "DualAttentionBlock",
    "FrozenLatentEncoder",
    "PattenNet",
    "PattenNetFromLatents",
    "SpatialAttention",
    "SwinClassifier",
    "get_classifier",
    "load_autoencoder_checkpoint",
    "upsample_attention_map",
]
