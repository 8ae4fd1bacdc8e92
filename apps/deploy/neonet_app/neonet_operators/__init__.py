"""Operators and helpers of the NeoNet PNI application (MONAI Deploy App SDK 4.0)."""

from .chain import BUNDLES_ENV, CaseResult, NeoNetChain, find_bundles_dir
from .inference import NeoNetPNIOperator
from .inputs import InputError, InputSpec, resolve_input
from .loaders import DEFAULT_SELECTION_RULES, MRSeriesSelectorOperator, NiftiInputOperator
from .writers import (
    APP_NAME,
    APP_VERSION,
    REPORT_FILE,
    RESULT_FILE,
    SEG_FILE,
    DICOMSegWriterOperator,
    PNIResultWriterOperator,
)

__all__ = [
    "APP_NAME",
    "APP_VERSION",
    "BUNDLES_ENV",
    "CaseResult",
    "DEFAULT_SELECTION_RULES",
    "DICOMSegWriterOperator",
    "InputError",
    "InputSpec",
    "MRSeriesSelectorOperator",
    "NeoNetChain",
    "NeoNetPNIOperator",
    "NiftiInputOperator",
    "PNIResultWriterOperator",
    "REPORT_FILE",
    "RESULT_FILE",
    "SEG_FILE",
    "find_bundles_dir",
    "resolve_input",
]
