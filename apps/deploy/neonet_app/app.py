"""NeoNet PNI: a MONAI Deploy application from an HBP MRI to a DICOM SEG and a PNI probability.

    DICOM:  DICOMDataLoader -> MRSeriesSelector -> DICOMSeriesToVolume -> NeoNetPNI -> DICOMSegWriter
                                                                              \\-> PNIResultWriter (JSON, PDF report)
    NIfTI:  NiftiInput -> NeoNetPNI -> PNIResultWriter (JSON)

Run (the stack limit is Holoscan's; ``__main__`` raises it itself when it may):

    python apps/deploy/neonet_app -i <DICOM folder | NIfTI file | folder with one NIfTI> -o <output folder>

Bundles: ``$NEONET_BUNDLES_DIR``, else ``-m`` / ``$HOLOSCAN_MODEL_PATH`` when it holds ``neoseg/`` and
``neocls/`` (a MAP's models folder), else the repository's ``bundles/``. Series selection rules (the
SDK's JSON form) can be replaced with ``$NEONET_SERIES_RULES``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from monai.deploy.conditions import CountCondition
from monai.deploy.core import AppContext, Application
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator

from neonet_operators import (
    DEFAULT_SELECTION_RULES,
    RESULT_FILE,
    DICOMSegWriterOperator,
    InputError,
    MRSeriesSelectorOperator,
    NeoNetPNIOperator,
    NiftiInputOperator,
    PNIResultWriterOperator,
    find_bundles_dir,
    resolve_input,
)

__all__ = ["NeoNetPNIApp", "SERIES_RULES_ENV", "main"]

#: Environment variable with series selection rules in the SDK's JSON form, replacing the MR default.
SERIES_RULES_ENV = "NEONET_SERIES_RULES"


class NeoNetPNIApp(Application):
    """NeoSeg -> TLCR -> NeoCls on one DICOM MR series or one NIfTI volume.

    Outputs in the output folder: ``pni_result.json`` (probability, tumour found, volume, files);
    ``<case>/`` with the bundles' per-case files (label map NIfTI, TLCR patch, attention, report PNG);
    for DICOM input also ``seg.dcm`` (DICOM SEG, liver and tumour, on the series' grid) and
    ``report.dcm`` (the report page as an Encapsulated PDF in the same study).

    Args:
        argv: command line (``-i``, ``-o``, ``-m``, ``-l``); default ``sys.argv``.
        app_context: an already parsed context (``main`` parses once to check the input first).
    """

    def __init__(self, *args, app_context: AppContext | None = None, **kwargs) -> None:
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        self._app_context = app_context
        super().__init__(*args, **kwargs)

    def compose(self) -> None:
        context = self._app_context or Application.init_app_context(self.argv)
        spec = resolve_input(context.input_path)
        output = Path(context.output_path).resolve()
        output.mkdir(parents=True, exist_ok=True)
        bundles = find_bundles_dir(context.model_path)
        self._logger.info("Input %s (%s, case %s); output %s; bundles %s", spec.path, spec.kind, spec.case,
                          output, bundles)
        dicom = spec.kind == "dicom"
        pni = NeoNetPNIOperator(self, bundles_dir=bundles, output_folder=output, case=spec.case, dicom=dicom,
                                source=spec.path, name="neonet_pni")
        results = PNIResultWriterOperator(self, output_folder=output, dicom=dicom, name="pni_result_writer")
        self.add_flow(pni, results, {("result", "result")})
        if not dicom:
            source = NiftiInputOperator(self, CountCondition(self, 1), path=spec.path, name="nifti_input")
            self.add_flow(source, pni, {("image", "image")})
            return
        loader = DICOMDataLoaderOperator(self, CountCondition(self, 1), input_folder=spec.path, name="dicom_loader")
        selector = MRSeriesSelectorOperator(self, input_path=spec.path, name="series_selector",
                                            rules=os.environ.get(SERIES_RULES_ENV) or DEFAULT_SELECTION_RULES)
        to_volume = DICOMSeriesToVolumeOperator(self, name="series_to_volume")
        seg_writer = DICOMSegWriterOperator(self, output_folder=output, name="dicom_seg_writer",
                                            algorithm_version=pni.chain.bundles["neoseg"]["version"])
        series = {("study_selected_series_list", "study_selected_series_list")}
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, to_volume, series)
        self.add_flow(to_volume, pni, {("image", "image")})
        # the selector's series objects are sorted in place by the series-to-volume operator, which runs
        # before these receivers (each also waits for an output of an operator downstream of it)
        self.add_flow(selector, pni, series)
        self.add_flow(pni, seg_writer, {("seg_image", "seg_image")})
        self.add_flow(selector, seg_writer, series)
        self.add_flow(selector, results, series)
        self.add_flow(seg_writer, results, {("seg_file", "seg_file")})


def main(argv: list[str] | None = None) -> int:
    """Check the input and the bundles, run the application, and confirm that it wrote its result.

    Returns:
        0 on success; 2 for a bad input or missing bundles (the message names them); 1 when the graph
        ran but no ``pni_result.json`` was written (an operator failed; its error is logged above).
    """
    argv = list(sys.argv if argv is None else argv)
    start = time.perf_counter()
    try:
        context = Application.init_app_context(argv)
        spec = resolve_input(context.input_path)
        find_bundles_dir(context.model_path)
    except (InputError, FileNotFoundError) as exc:
        print(f"neonet_app: error: {exc}", file=sys.stderr)
        return 2
    result = Path(context.output_path).resolve() / RESULT_FILE
    if result.exists():
        result.unlink()  # a stale result must not pass for this run's
    try:
        NeoNetPNIApp(argv, app_context=context).run()
    except Exception as exc:  # Holoscan re-raises an operator's exception here
        print(f"neonet_app: error: {spec.path}: {exc}", file=sys.stderr)
        return 1
    if not result.is_file():
        print(f"neonet_app: error: {spec.path}: the application finished without writing {result}; "
              "see the errors logged above.", file=sys.stderr)
        return 1
    print(f"neonet_app: {spec.case}: results in {result.parent} ({time.perf_counter() - start:.1f} s)")
    return 0
