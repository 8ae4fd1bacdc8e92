"""NeoSeg's tumour refiner: the one definition that its training and inference configs build.

A second, small network that looks again at the tumour's neighbourhood on the input's own grid
(:class:`~neonet_ext.transforms.TumourRefine`): it reads the image there and NeoSeg's liver and
tumour probabilities resampled there, and labels background / liver / tumour again.
"""

from __future__ import annotations

from typing import Any

from monai.networks.nets import UNet

from neonet_ext.labels import LABEL_NAMES

__all__ = ["TUMOUR_REFINER", "REFINER_IN_CHANNELS", "tumour_refiner"]

#: Input channels: the image (scaled by its 0.5 / 99.5 percentiles), p(liver), p(tumour).
REFINER_IN_CHANNELS = 3

#: Arguments of MONAI's ``UNet``: four levels of 16-128 channels, instance norm (the input's contrast varies).
TUMOUR_REFINER: dict[str, Any] = {
    "spatial_dims": 3,
    "in_channels": REFINER_IN_CHANNELS,
    "out_channels": len(LABEL_NAMES),
    "channels": (16, 32, 64, 128),
    "strides": (2, 2, 2),
    "num_res_units": 2,
    "norm": "instance",
}


def tumour_refiner(**overrides: Any) -> UNet:
    """The refiner network; ``overrides`` replace entries of :data:`TUMOUR_REFINER`.

    Input (B, 3, X, Y, Z) on a RAS-ordered input grid, each spatial size a multiple of 8; output
    (B, 3, X, Y, Z) class logits.
    """
    return UNet(**{**TUMOUR_REFINER, **overrides})
