"""NeoGen: latent diffusion with a mask-conditioned ControlNet (training pieces, sampling, patch synthesis)."""

from neonet_ext.generative.autoencoder import AutoencoderGANTrainer, ReconstructionInferer, kl_divergence
from neonet_ext.generative.diffusion import (
    ControlNetTrainingInferer,
    LatentDiffusionPrepareBatch,
    LatentScale,
    estimate_latent_scale,
    load_diffusion_checkpoint,
)
from neonet_ext.generative.losses import EdgeWeightedL1Loss, zero_edge
from neonet_ext.generative.sampling import MaskConditionedSampler, masked_patch
from neonet_ext.generative.synthesize import PatchSynthesizer, check_condition_masks

__all__ = [
    "AutoencoderGANTrainer",
    "ControlNetTrainingInferer",
    "EdgeWeightedL1Loss",
    "LatentDiffusionPrepareBatch",
    "LatentScale",
    "MaskConditionedSampler",
    "PatchSynthesizer",
    "ReconstructionInferer",
    "check_condition_masks",
    "estimate_latent_scale",
    "kl_divergence",
    "load_diffusion_checkpoint",
    "masked_patch",
    "zero_edge",
]
