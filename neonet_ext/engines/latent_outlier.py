"""An out-of-distribution score of a TLCR patch: how unlike the training patches it looks in PattenNet's latent space.

The input gate's other checks (modality, liver volume, tumour size and place) ask whether NeoSeg
found a plausible liver tumour. They cannot tell a liver scan of another kind: another contrast
phase or sequence, where the tumour is bright and the liver dark, still segments into a liver
with a tumour inside. PattenNet reads every patch through its frozen NeoGen encoder, so what
that encoder makes of the tissue is a description of what the classifier sees.

:func:`latent_features` summarises a patch by the mean and spread of each latent channel over the
liver (input channel 0) and over the tumour (input channel 1), weighted by how much of each latent
voxel the mask covers: a description of how the tissue looks, not how large it is.
:func:`fit_latent_reference` fits the mean and covariance of those features on training patches and
sets the accepted distance from held-back ones; :class:`LatentOutlierScore` gives a new patch's
Mahalanobis distance. The reference is tied to the encoder weights it was fitted with (their sha1):
with other weights it is refused, never silently used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.utils import convert_to_tensor

from neonet_ext.data.latent_cache import autoencoder_fingerprint
from neonet_ext.utils.io import atomic_write

__all__ = ["LatentOutlierScore", "LatentReference", "fit_latent_reference", "latent_features"]

#: What a patch channel stands for, in the order of :func:`latent_features`.
REGIONS = ("liver", "tumour")


def latent_features(encoder: nn.Module, patch: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray | None:
    """Mean and standard deviation of each latent channel over each region of a patch.

    Args:
        encoder: maps (N, 1, X, Y, Z) images to latents (N, L, x, y, z), e.g. PattenNet's ``latent_encoder``.
        patch: (2, X, Y, Z) TLCR patch: the image inside liver + tumour, the image inside the tumour.
        masks: (2, X, Y, Z) their masks; without them, the patch's non-zero voxels.

    Returns:
        (2 * 2 * L,) features: for each region, the L latent means then the L standard deviations,
        each weighted by the share of the latent voxel its mask covers; None when a region is empty.
    """
    x = convert_to_tensor(patch, dtype=torch.float32, track_meta=False)
    weights = (x != 0).float() if masks is None else convert_to_tensor(masks, dtype=torch.float32, track_meta=False)
    if not bool((weights > 0).flatten(1).any(1).all()):
        return None  # an empty region has no statistics: no need to encode
    with torch.no_grad():
        latents = encoder(x[:, None].to(next(encoder.parameters()).device)).float().cpu()
    weights = F.adaptive_avg_pool3d((weights > 0).float()[:, None], latents.shape[2:])[:, 0]
    features = []
    for latent, weight in zip(latents, weights):
        total = weight.sum()
        mean = (latent * weight).sum((1, 2, 3)) / total
        variance = ((latent - mean[:, None, None, None]) ** 2 * weight).sum((1, 2, 3)) / total
        features += [mean, variance.sqrt()]
    return torch.cat(features).numpy().astype(np.float64)


def feature_names(latent_channels: int) -> list[str]:
    """Names of :func:`latent_features`' entries, e.g. ``liver_mean_0``, ``tumour_std_3``."""
    return [f"{region}_{stat}_{c}" for region in REGIONS for stat in ("mean", "std") for c in range(latent_channels)]


@dataclass
class LatentReference:
    """Where training patches lie in latent-feature space, and how far from it a patch may be.

    Attributes:
        encoder_sha1: :func:`~neonet_ext.data.latent_cache.autoencoder_fingerprint` of the encoder fitted with.
        feature_names: names of the features (see :func:`feature_names`).
        mean: (F,) mean of the fitting patches' features.
        precision: (F, F) inverse of their (slightly shrunk) covariance.
        threshold: the largest accepted distance.
        calibration: how the threshold was set (patch counts, quantile, margin, the quantile's distance).
    """

    encoder_sha1: str
    feature_names: list[str]
    mean: list[float]
    precision: list[list[float]]
    threshold: float
    calibration: dict = field(default_factory=dict)

    def distance(self, features: np.ndarray) -> float:
        """Mahalanobis distance of one feature vector (F,) from the fitting patches' mean."""
        delta = np.asarray(features, dtype=np.float64) - np.asarray(self.mean)
        return float(np.sqrt(max(delta @ np.asarray(self.precision) @ delta, 0.0)))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the reference as JSON, atomically."""
        text = json.dumps(asdict(self), indent=1) + "\n"
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatentReference:
        """Read a reference written by :meth:`save`; a missing or malformed file is named in the error."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"latent reference not found: '{path}'. Fit it on your training patches with "
                "bundles/neocls/scripts/fit_latent_reference.py, or pass --latent_reference null to score "
                "without the out-of-distribution check."
            )
        try:
            reference = cls(**json.loads(path.read_text()))
            size = len(reference.mean)
            if size == 0 or np.asarray(reference.precision).shape != (size, size) or len(reference.feature_names) != size:
                raise ValueError("mean, precision and feature_names do not agree in size")
        except (TypeError, ValueError) as e:
            raise ValueError(f"latent reference '{path}' is not one fit_latent_reference.py writes: {e}") from e
        return reference


def fit_latent_reference(
    encoder: nn.Module,
    patches: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    held_back: float = 0.2,
    quantile: float = 0.99,
    margin: float = 1.5,
    shrinkage: float = 1e-3,
    seed: int = 0,
) -> LatentReference:
    """Fit a :class:`LatentReference` on training patches.

    The mean and covariance are fitted on all but a ``held_back`` share of the patches (chosen with
    ``seed``); the threshold is ``margin`` times the ``quantile`` of the held-back patches' distances,
    so that it describes patches the fit has not seen, as new cases are.

    Args:
        encoder: PattenNet's frozen encoder (``network.latent_encoder``).
        patches: (patch, masks or None) pairs, each (2, X, Y, Z); patches with an empty region are skipped.
        held_back: share of the patches that set the threshold.
        quantile: quantile of their distances the threshold starts from.
        margin: factor on that distance.
        shrinkage: share of the mean variance added to the covariance's diagonal, for a stable inverse.
        seed: seed of the split.
    """
    rows = [f for f in (latent_features(encoder, p, m) for p, m in patches) if f is not None]
    if len(rows) < 10:
        raise ValueError(f"a latent reference needs at least 10 patches with a liver and a tumour, got {len(rows)}.")
    features = np.stack(rows)
    order = np.random.default_rng(seed).permutation(len(features))
    n_held_back = max(1, round(held_back * len(features)))
    fit, check = features[order[n_held_back:]], features[order[:n_held_back]]
    covariance = np.cov(fit.T)
    covariance += shrinkage * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    reference = LatentReference(
        encoder_sha1=autoencoder_fingerprint(encoder),
        feature_names=feature_names(features.shape[1] // (2 * len(REGIONS))),
        mean=fit.mean(0).tolist(),
        precision=np.linalg.inv(covariance).tolist(),
        threshold=0.0,
    )
    distances = np.array([reference.distance(f) for f in check])
    quantile_distance = float(np.quantile(distances, quantile))
    reference.threshold = margin * quantile_distance
    reference.calibration = {
        "fitted_patches": len(fit), "held_back_patches": len(check), "quantile": quantile, "margin": margin,
        "held_back_quantile_distance": quantile_distance, "held_back_max_distance": float(distances.max()),
        "seed": seed,
    }
    return reference


class LatentOutlierScore:
    """Distance of a patch from the training patches in PattenNet's latent space, against a fitted threshold.

    Args:
        network: PattenNet (its ``latent_encoder`` is used), weights loaded.
        reference_file: a :class:`LatentReference` JSON fitted with the same encoder weights.

    Raises:
        FileNotFoundError / ValueError: a missing or malformed reference file (named).
        ValueError: a network without ``latent_encoder``, or a reference fitted with other encoder weights.
    """

    def __init__(self, network: nn.Module, reference_file: str | os.PathLike) -> None:
        self.encoder = getattr(network, "latent_encoder", None)
        if self.encoder is None:
            raise ValueError(
                f"the out-of-distribution check reads PattenNet's frozen encoder, which this {type(network).__name__} "
                "does not have: pass --latent_reference null to score without it."
            )
        self.reference_file = Path(reference_file)
        self.reference = LatentReference.load(self.reference_file)
        sha1 = autoencoder_fingerprint(self.encoder)
        if sha1 != self.reference.encoder_sha1:
            raise ValueError(
                f"latent reference '{self.reference_file}' was fitted with other encoder weights "
                f"({self.reference.encoder_sha1[:12]}, these are {sha1[:12]}): fit it again with "
                "bundles/neocls/scripts/fit_latent_reference.py for these weights."
            )

    @property
    def threshold(self) -> float:
        return self.reference.threshold

    def __call__(self, patch: torch.Tensor, masks: torch.Tensor | None = None) -> float | None:
        """Distance of a (2, X, Y, Z) patch (masks as :func:`latent_features`); None when a region is empty."""
        features = latent_features(self.encoder, patch, masks)
        return None if features is None else self.reference.distance(features)

    def __repr__(self) -> str:
        # what a re-run compares (CaseRunner settings): the reference's fit, not the object's address
        return f"LatentOutlierScore(encoder_sha1={self.reference.encoder_sha1[:12]}, threshold={self.threshold:.4g})"

