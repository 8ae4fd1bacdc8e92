"""Engines that drive the bundles beyond what MONAI's own provide."""

from neonet_ext.engines.case_runner import CaseRunner

__all__ = ["CaseRunner"]
