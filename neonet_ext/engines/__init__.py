"""Engines and engine handlers that drive the bundles beyond what MONAI's own provide."""

from neonet_ext.engines.autocast import AutocastInferer, cpu_has_fast_bfloat16
from neonet_ext.engines.batch_norm import BatchNormRecalibration, drop_single_item_batch
from neonet_ext.engines.case_runner import CaseRunner
from neonet_ext.engines.checkpoints import (
    KeepScheduleHorizon,
    PretrainedWeightsLoader,
    ReseedOnResume,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    resumable_checkpoint_handlers,
)
from neonet_ext.engines.classification_report import ClassificationReport
from neonet_ext.engines.distributed import handlers_for_this_rank
from neonet_ext.engines.input_gate import InputGated, tumour_rim_in_liver
from neonet_ext.engines.latent_outlier import LatentOutlierScore, LatentReference, fit_latent_reference, latent_features
from neonet_ext.engines.pni import (
    ATTENTION_METHODS,
    PNIPredictor,
    PNIPredictord,
    SaveCaseReportd,
    gradcam_target_layer,
    liver_volume_ml,
    tumour_volume_ml,
)
from neonet_ext.engines.time_limit import TimeLimitHandler

__all__ = [
    "ATTENTION_METHODS",
    "AutocastInferer",
    "BatchNormRecalibration",
    "CaseRunner",
    "ClassificationReport",
    "InputGated",
    "KeepScheduleHorizon",
    "LatentOutlierScore",
    "LatentReference",
    "PNIPredictor",
    "PNIPredictord",
    "PretrainedWeightsLoader",
    "ReseedOnResume",
    "SaveCaseReportd",
    "TimeLimitHandler",
    "cpu_has_fast_bfloat16",
    "drop_single_item_batch",
    "fit_latent_reference",
    "gradcam_target_layer",
    "handlers_for_this_rank",
    "latent_features",
    "latest_checkpoint",
    "liver_volume_ml",
    "load_checkpoint",
    "load_weights",
    "resumable_checkpoint_handlers",
    "tumour_rim_in_liver",
    "tumour_volume_ml",
]
