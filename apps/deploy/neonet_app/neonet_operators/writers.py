"""Operators that write the results: the DICOM SEG, the report as an encapsulated PDF, the JSON.

Every file is written to a temporary name beside its target and renamed into place
(``neonet_ext.utils.io.atomic_path``), so a reader (a PACS forwarder watching the output
folder, or the next step of a pipeline) never sees half a file. The JSON is written last and
lists the others: its presence means the run finished.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.deploy.core import Fragment, Image, Operator, OperatorSpec
from monai.deploy.core.domain.dicom_series_selection import StudySelectedSeries

from neonet_ext.labels import LIVER, TUMOUR
from neonet_ext.utils.io import atomic_path

__all__ = [
    "APP_NAME",
    "APP_VERSION",
    "DICOMSegWriterOperator",
    "PNIResultWriterOperator",
    "RESULT_FILE",
    "REPORT_FILE",
    "SEG_FILE",
    "pdf_from_png",
    "segment_descriptions",
]

APP_NAME = "NeoNet PNI"
APP_VERSION = "0.1.0"
SEG_FILE = "seg.dcm"
REPORT_FILE = "report.dcm"
RESULT_FILE = "pni_result.json"
# fixed series numbers, so results sort after the acquired series in a viewer (the SDK picks random ones)
SEG_SERIES_NUMBER = 9901
REPORT_SERIES_NUMBER = 9902
DISCLAIMER = ("Research use only, not for clinical use: NeoNet demo weights were trained on synthetic phantoms "
              "and have never seen a patient scan.")


def _selected_series(selected: Sequence[StudySelectedSeries] | None, what: str):
    if not selected or not isinstance(selected[0], StudySelectedSeries) or not selected[0].selected_series:
        raise ValueError(f"{what}: no selected DICOM series to refer to.")
    return selected[0].selected_series[0].series


def segment_descriptions(algorithm_version: str) -> list:
    """highdicom segment descriptions of the NeoSeg labels, segment number = label value
    (1 liver, 2 tumour), so the label map is written as it is."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name="NeoSeg", family=codes.DCM.ArtificialIntelligence, version=algorithm_version
    )
    liver = hd.seg.SegmentDescription(
        segment_number=LIVER, segment_label="liver", segmented_property_category=codes.SCT.Organ,
        segmented_property_type=codes.SCT.Liver, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm, tracking_id="NeoSeg liver", tracking_uid=hd.UID(),
    )
    tumour = hd.seg.SegmentDescription(
        segment_number=TUMOUR, segment_label="tumour",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm, tracking_id="NeoSeg tumour", tracking_uid=hd.UID(),
        anatomic_regions=[codes.SCT.Liver],
    )
    return [liver, tumour]


class DICOMSegWriterOperator(Operator):
    """Writes the label map as a DICOM Segmentation (binary, one segment per label) of the source series.

    Written with highdicom, which the SDK's own ``DICOMSegmentationWriterOperator`` also uses; this
    operator differs in writing atomically to a fixed name (``seg.dcm``), with a fixed series number,
    and in checking that the frames line up with the series it refers to. Frames without any
    segmented pixel are left out (highdicom's and the SDK's default); each frame keeps the
    position and orientation of its source slice.

    Named inputs:
        seg_image: SDK ``Image``, (D, H, W) uint8 label map in the series' slice order, with
            ``metadata()["sop_instance_uids"]``.
        study_selected_series_list: the selected series it was derived from.

    Named output:
        seg_file: the ``Path`` written.

    Args:
        fragment: the application.
        output_folder: where ``seg.dcm`` goes.
        algorithm_version: NeoSeg bundle version, recorded in each segment's algorithm identification.
    """

    def __init__(self, fragment: Fragment, *args, output_folder: Path, algorithm_version: str, **kwargs) -> None:
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        self.output_folder = Path(output_folder)
        self.algorithm_version = algorithm_version
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("seg_image")
        spec.input("study_selected_series_list")
        spec.output("seg_file")

    def compute(self, op_input, op_output, context) -> None:
        seg_image = op_input.receive("seg_image")
        series = _selected_series(op_input.receive("study_selected_series_list"), "DICOM SEG")
        op_output.emit(self.write(seg_image, series), "seg_file")

    def write(self, seg_image: Image, series) -> Path:
        """Write ``seg.dcm`` for the label map ``seg_image`` of ``series``; return its path."""
        import highdicom as hd

        label = np.asarray(seg_image.asnumpy(), dtype=np.uint8)
        sources = [s.get_native_sop_instance() for s in series.get_sop_instances()]
        uids = tuple(str(ds.SOPInstanceUID) for ds in sources)
        if uids != tuple(seg_image.metadata().get("sop_instance_uids", ())):
            raise ValueError(f"series {series.SeriesInstanceUID}: the label map's slices are not the series' slices.")
        if label.shape != (len(sources), int(sources[0].Rows), int(sources[0].Columns)):
            raise ValueError(f"series {series.SeriesInstanceUID}: label map of shape {label.shape} does not match "
                             f"{len(sources)} slices of {sources[0].Rows}x{sources[0].Columns}.")
        unknown = sorted(set(np.unique(label).tolist()) - {0, LIVER, TUMOUR})
        if unknown:
            raise ValueError(f"label map holds values {unknown}, expected 0 (background), 1 (liver), 2 (tumour).")
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=label,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segment_descriptions(self.algorithm_version),
            series_instance_uid=hd.UID(),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="NeoNet",
            manufacturer_model_name=f"{APP_NAME} (MONAI Deploy App SDK)",
            software_versions=APP_VERSION,
            device_serial_number="0",
            content_label="NEONET_SEG",
            content_description="NeoSeg liver and tumour segmentation",
            series_description="NeoNet liver and tumour (research use only)",
            # an all-background map still gets its frames, so the SEG is valid and says "nothing found"
            omit_empty_frames=bool(label.any()),
        )
        now = datetime.datetime.now()
        seg.SeriesDate, seg.SeriesTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        path = self.output_folder / SEG_FILE
        with atomic_path(path) as tmp:
            seg.save_as(tmp)
        self._logger.info("DICOM SEG written to %s (%d frames)", path, int(seg.NumberOfFrames))
        return path


def report_title(result: dict[str, Any]) -> str:
    """What the report's title says: the probability, or why there is none (in short: a DocumentTitle
    holds 64 characters; the page and the JSON give the input gate's reasons in full)."""
    probability = result.get("pni_probability")
    if probability is not None:
        return f"probability {probability:.3f}"
    return "no tumour found" if not result.get("tumour_found") else "refused by the input gate"


def pdf_from_png(png: Path, title: str) -> bytes:
    """A one-page PDF of the report page ``png`` (PIL's PDF writer, at the page's 100 dpi)."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    with PILImage.open(png) as page:
        page.convert("RGB").save(buffer, format="PDF", resolution=100.0, title=title, author=APP_NAME)
    return buffer.getvalue()


class PNIResultWriterOperator(Operator):
    """Writes the PNI probability: ``pni_result.json``, and for DICOM input the report page as an
    Encapsulated PDF instance (``report.dcm``) in the source study.

    Named inputs:
        result: the dict of :class:`~neonet_operators.inference.NeoNetPNIOperator`.
        study_selected_series_list: (DICOM only) the source series, for the study and patient modules.
        seg_file: (DICOM only) the DICOM SEG written, listed in the JSON.

    Args:
        fragment: the application.
        output_folder: where the files go.
        dicom: whether the input is DICOM (declares the two DICOM inputs).
    """

    def __init__(self, fragment: Fragment, *args, output_folder: Path, dicom: bool, **kwargs) -> None:
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        self.output_folder = Path(output_folder)
        self.dicom = dicom
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("result")
        if self.dicom:
            spec.input("study_selected_series_list")
            spec.input("seg_file")

    def compute(self, op_input, op_output, context) -> None:
        result: dict[str, Any] = dict(op_input.receive("result"))
        files = dict(result.get("files", {}))
        if self.dicom:
            series = _selected_series(op_input.receive("study_selected_series_list"), "PNI report")
            seg_file = Path(op_input.receive("seg_file"))
            files["seg_dicom"] = seg_file.name
            png = self.output_folder / files["report_png"]
            files["report_dicom"] = self.write_report_dicom(png, result, series).name
        result["files"] = files
        result["disclaimer"] = DISCLAIMER
        result["application"] = {"name": APP_NAME, "version": APP_VERSION, **_versions()}
        self.write_json(result)

    def write_report_dicom(self, png: Path, result: dict[str, Any], series) -> Path:
        """Encapsulated PDF of the report page, in the source series' study; return its path."""
        import pydicom
        from monai.deploy.operators.dicom_utils import EquipmentInfo, ModelInfo, write_common_modules
        from pydicom.dataset import Dataset
        from pydicom.uid import EncapsulatedPDFStorage

        bundles = result.get("bundles", {})
        model = ModelInfo(creator="NeoNet", name="NeoSeg + NeoCls",
                          version="/".join(b.get("version", "") for b in bundles.values()), uid=pydicom.uid.generate_uid())
        equipment = EquipmentInfo(manufacturer="NeoNet", manufacturer_model=APP_NAME,
                                  series_number=str(REPORT_SERIES_NUMBER), software_version_number=APP_VERSION)
        # the SDK's helper fills the patient, study, series, equipment and SOP common modules from the series
        ds = write_common_modules(series, True, "DOC", EncapsulatedPDFStorage, model, equipment)
        ds.SeriesNumber = REPORT_SERIES_NUMBER
        ds.SeriesDescription = "NeoNet PNI report (research use only)"
        ds.ConversionType = "WSD"  # workstation: made by software, not scanned
        ds.BurnedInAnnotation = "YES"
        ds.VerificationFlag = "UNVERIFIED"
        ds.DocumentTitle = "NeoNet PNI report: " + report_title(result)
        concept = Dataset()
        concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "18748-4", "LN", "Diagnostic imaging report"
        ds.ConceptNameCodeSequence = [concept]
        document = pdf_from_png(png, ds.DocumentTitle)
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.EncapsulatedDocumentLength = len(document)
        ds.EncapsulatedDocument = document + (b"\0" if len(document) % 2 else b"")  # OB values have even length
        path = self.output_folder / REPORT_FILE
        with atomic_path(path) as tmp:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True, implicit_vr=True, little_endian=True)
        self._logger.info("Encapsulated PDF report written to %s", path)
        return path

    def write_json(self, result: dict[str, Any]) -> Path:
        path = self.output_folder / RESULT_FILE
        for key, value in result.items():  # JSON has no NaN; a NaN probability would be a bug upstream
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{result.get('case')}: {key} is {value}, not a finite number.")
        text = json.dumps(result, indent=2) + "\n"
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        self._logger.info("PNI result written to %s", path)
        return path


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import neonet_ext

    # neonet_ext by its own attribute: a MAP carries the package copied into the app folder, not installed
    out = {"neonet_ext": neonet_ext.__version__}
    for name in ("monai-deploy-app-sdk", "holoscan-cu13", "monai", "torch", "highdicom", "pydicom"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = ""
    return out
