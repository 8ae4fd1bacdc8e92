"""Data sources of NeoNet: the deterministic synthetic HBP-MRI cohort (:mod:`neonet_ext.data.synthetic`)."""

from __future__ import annotations

import importlib

__all__ = [
    "CaseLatents",
    "SyntheticCase",
    "SyntheticCohortConfig",
    "generate_case",
    "sample_cohort_latents",
    "write_cohort",
]


def __getattr__(name: str):
    # Lazy, so that `python -m neonet_ext.data.synthetic` does not find its own module
    # already imported by the package (runpy warns about that).
    if name in __all__:
        return getattr(importlib.import_module("neonet_ext.data.synthetic"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
