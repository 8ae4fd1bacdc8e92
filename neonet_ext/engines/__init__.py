"""Engines and engine handlers that drive the bundles beyond what MONAI's own provide."""

from neonet_ext.engines.case_runner import CaseRunner
from neonet_ext.engines.classification_report import ClassificationReport
from neonet_ext.engines.time_limit import TimeLimitHandler

__all__ = ["CaseRunner", "ClassificationReport", "TimeLimitHandler"]
