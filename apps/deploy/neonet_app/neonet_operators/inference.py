"""The operator that runs NeoSeg -> TLCR -> NeoCls on the input volume."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from monai.deploy.core import ConditionType, Fragment, Image, Operator, OperatorSpec
from monai.deploy.core.domain.dicom_series_selection import StudySelectedSeries

from .chain import CaseResult, NeoNetChain
from .geometry import image_to_metatensor, label_map_to_series, series_geometry, series_meta

__all__ = ["NeoNetPNIOperator"]


class NeoNetPNIOperator(Operator):
    """NeoSeg segmentation, the TLCR patch and the NeoCls PNI probability of one volume.

    The chain is the NeoCls bundle's own (see :class:`~neonet_operators.chain.NeoNetChain`); its
    per-case files (label map, TLCR patch, attention map, report page) are written to
    ``output_folder/<case>/``.

    Named inputs:
        image: for DICOM, the SDK ``Image`` of the selected series ((D, H, W) voxels); for NIfTI, the
            file's path.
        study_selected_series_list: (DICOM only) the selected series, whose geometry defines the grid.

    Named outputs:
        seg_image: (DICOM only) an SDK ``Image`` of the (D, H, W) uint8 label map (0 background,
            1 liver, 2 tumour) in the series' slice order, with ``metadata()["sop_instance_uids"]``.
        result: a dict: ``case``, ``pni_probability`` (None without a tumour or when refused), ``tumour_found``,
            ``tumour_volume_ml``, ``refused`` (the input gate's reasons, "" when scored), ``measurements``, ``files`` (relative to the output folder), ``bundles`` and ``timing_s``.

    Args:
        fragment: the application.
        bundles_dir: folder holding the ``neoseg`` and ``neocls`` bundles.
        output_folder: the application's output folder.
        case: the case name (names the per-case folder).
        dicom: whether the input is a DICOM series (declares the series input and the label-map output).
        source: the input path, for messages and ``filename_or_obj``.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        bundles_dir: Path,
        output_folder: Path,
        case: str,
        dicom: bool,
        source: Path,
        **kwargs,
    ) -> None:
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        self.dicom = dicom
        self.case = case
        self.source = Path(source)
        start = time.perf_counter()
        # built here, not at compute time, so a missing bundle or weights file fails before any data is read
        self.chain = NeoNetChain(bundles_dir, output_folder)
        self.load_s = time.perf_counter() - start
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("image")
        if self.dicom:
            spec.input("study_selected_series_list")
            spec.output("seg_image").condition(ConditionType.NONE)
        spec.output("result")

    def compute(self, op_input, op_output, context) -> None:
        start = time.perf_counter()
        image = op_input.receive("image")
        extra: dict[str, Any] = {}
        if self.dicom:
            selected = op_input.receive("study_selected_series_list")
            if not selected or not isinstance(selected[0], StudySelectedSeries) or not selected[0].selected_series:
                raise ValueError(f"Input {self.source}: no selected DICOM series.")
            series = selected[0].selected_series[0].series
            name = f"{self.source} (series {series.SeriesInstanceUID})"
            if not isinstance(image, Image):
                raise TypeError(f"{name}: expected an SDK Image from the series-to-volume operator, got {type(image)}.")
            geometry = series_geometry(series, name)
            volume = image_to_metatensor(image.asnumpy(), geometry, str(self.source), series_meta(series))
            result = self.chain.run_volume(volume, self.case)
            label = label_map_to_series(result.label, geometry)
            op_output.emit(Image(label, {"sop_instance_uids": geometry.sop_instance_uids,
                                         "affine_ras": geometry.affine_ras}), "seg_image")
            extra = {"study_instance_uid": str(selected[0].study.StudyInstanceUID),
                     "series_instance_uid": str(series.SeriesInstanceUID)}
        else:
            result = self.chain.run_file(image, self.case)
        elapsed = time.perf_counter() - start
        self._logger.info("%s: PNI probability %s, tumour found %s%s (%.1f s)", self.case,
                          "n/a" if result.pni_probability is None else f"{result.pni_probability:.4f}",
                          result.tumour_found, f", refused: {result.refused}" if result.refused else "", elapsed)
        op_output.emit(self._summary(result, extra, elapsed), "result")

    def _summary(self, result: CaseResult, extra: dict[str, Any], elapsed: float) -> dict[str, Any]:
        return {
            "case": result.case,
            "input": str(self.source),
            "input_type": "dicom" if self.dicom else "nifti",
            **extra,
            "pni_probability": result.pni_probability,
            "tumour_found": result.tumour_found,
            "tumour_volume_ml": result.tumour_volume_ml,
            "refused": result.refused,
            "measurements": result.measurements,
            "labels": {str(k): v for k, v in self.chain.label_names().items()},
            "files": dict(result.files),
            "bundles": self.chain.bundles,
            "device": str(self.chain.device),
            "timing_s": {"load_bundles": round(self.load_s, 2), "chain": round(elapsed, 2)},
        }
