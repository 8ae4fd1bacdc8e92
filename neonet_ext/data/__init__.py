"""Data sources of NeoNet: the deterministic synthetic HBP-MRI cohort (:mod:`neonet_ext.data.synthetic`),
datalists of user images (:mod:`neonet_ext.data.discovery`), the patch datalists that link
the bundles (:mod:`neonet_ext.data.patches`), their splits for training and cross-validation
(:mod:`neonet_ext.data.splits`) and the frozen-autoencoder latent cache (:mod:`neonet_ext.data.latent_cache`)."""

from __future__ import annotations

import importlib

_DISCOVERY = ("NIFTI_SUFFIXES", "datalist_from", "describe_case_error", "find_cases")
_LATENT_CACHE = ("LatentCache", "autoencoder_fingerprint")
_SPLITS = ("split_cases",)
_PATCHES = (
    "AUTOENCODER_INPUTS",
    "PATH_KEYS",
    "autoencoder_inputs",
    "class_weights",
    "classifier_datalist",
    "load_patch_datalist",
    "mix_synthetic",
    "patches_with_tumour",
    "relative_to_folder",
    "synthetic_needed",
    "write_patch_datalist",
)

__all__ = [
    *_DISCOVERY,
    *_LATENT_CACHE,
    *_PATCHES,
    *_SPLITS,
    "IMAGING_SIGNS",
    "CaseLatents",
    "SyntheticCase",
    "SyntheticCohortConfig",
    "generate_case",
    "sample_cohort_latents",
    "scoring_cohort_config",
    "sign_reader_auc",
    "write_cohort",
    "write_cohort_once",
]


def __getattr__(name: str):
    # Lazy: a name imports its module on first use, so importing the package does not pull in
    # torch and MONAI (latent cache, discovery) or the generator's scipy and nibabel.
    if name in __all__:
        modules = {**dict.fromkeys(_DISCOVERY, "discovery"), **dict.fromkeys(_LATENT_CACHE, "latent_cache"),
                   **dict.fromkeys(_PATCHES, "patches"), **dict.fromkeys(_SPLITS, "splits")}
        module = modules.get(name, "synthetic")
        return getattr(importlib.import_module(f"neonet_ext.data.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
