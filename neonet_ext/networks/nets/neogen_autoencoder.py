"""NeoGen's AutoencoderKL: the one definition that NeoGen's stages and NeoCls's PattenNet build.

Every bundle config builds it with ``{"_target_": "neonet_ext.networks.neogen_autoencoder"}``; a
change of widths is made here once. Any argument may still be overridden from a config or the
command line (``--autoencoder_def#channels "[16, 32, 32]"``), as the study's profiles and the tests do.
"""

from __future__ import annotations

from typing import Any

from monai.networks.nets import AutoencoderKL

__all__ = ["NEOGEN_AUTOENCODER", "neogen_autoencoder"]

#: Arguments of MONAI's ``AutoencoderKL`` for NeoGen: 1-channel TLCR crops, 4x down-sampling to a 4-channel latent.
NEOGEN_AUTOENCODER: dict[str, Any] = {
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 1,
    "channels": (32, 64, 64),
    "latent_channels": 4,
    "num_res_blocks": 1,
    "norm_num_groups": 16,
    "attention_levels": (False, False, False),
    "with_encoder_nonlocal_attn": False,
    "with_decoder_nonlocal_attn": False,
}


def neogen_autoencoder(**overrides: Any) -> AutoencoderKL:
    """NeoGen's ``AutoencoderKL`` (:data:`NEOGEN_AUTOENCODER`), with any of its arguments overridden.

    Args:
        overrides: ``AutoencoderKL`` arguments replacing NeoGen's, e.g. ``channels=(8, 8, 8), norm_num_groups=4``.
            ``attention_levels`` follows the number of levels unless given.
    """
    arguments = {**NEOGEN_AUTOENCODER, **overrides}
    if "channels" in overrides and "attention_levels" not in overrides:
        arguments["attention_levels"] = (False,) * len(arguments["channels"])
    return AutoencoderKL(**arguments)

