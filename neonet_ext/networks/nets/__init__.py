"""NeoNet classifiers: PattenNet and the seed study's baselines."""

from .baselines import CLASSIFIER_NAMES, SwinClassifier, get_classifier
from .neogen_autoencoder import NEOGEN_AUTOENCODER, controlnet_condition_channels, neogen_autoencoder
from .pattennet import (
    FrozenLatentEncoder,
    PattenNet,
    PattenNetFromLatents,
    upsample_attention_map,
)

__all__ = [
    "CLASSIFIER_NAMES",
    "NEOGEN_AUTOENCODER",
    "controlnet_condition_channels",
    "neogen_autoencoder",
    "FrozenLatentEncoder",
    "PattenNet",
    "PattenNetFromLatents",
    "SwinClassifier",
    "get_classifier",
    "upsample_attention_map",
]
