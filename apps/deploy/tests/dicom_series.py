"""Write a NIfTI volume as a DICOM MR series, one file per slice, as a scanner export would.

Used by the deploy app's tests to make DICOM input that nobody else wrote. The series is
axial in the usual scanner orientation (rows run toward the patient's left, columns toward
posterior, ImageOrientationPatient ``1\\0\\0\\0\\1\\0``), whatever the NIfTI's own axis order,
so the app and the bundles have to honour the geometry tags rather than the array order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

__all__ = ["SeriesInfo", "write_mr_series", "series_affine_ras"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class SeriesInfo:
    """What was written: the folder, the UIDs and the geometry (RAS affine of the (column, row, slice) grid)."""

    folder: Path
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    sop_uids: list[str]  # in slice order, from inferior (first) to superior
    affine_ras: np.ndarray  # (4, 4), maps (column, row, slice) indices to RAS mm
    shape: tuple[int, int, int]  # (columns, rows, slices)


def _ds(value: float) -> str:
    # DS holds at most 16 characters; 10 significant digits keep the geometry to well under 1e-6 mm
    return f"{value:.10g}"


def write_mr_series(
    nifti: str | Path,
    folder: str | Path,
    row_spacing_scale: float = 1.0,
    rescale_intercept: float = -100.0,
    seed: int = 0,
) -> SeriesInfo:
    """Write ``nifti`` (a 3D image with integer values) into ``folder`` as an MR series.

    Args:
        nifti: the source volume.
        folder: created; one ``<SOPInstanceUID>.dcm`` per slice, written in shuffled order.
        row_spacing_scale: factor on the spacing between rows (PixelSpacing[0]); anything other than 1
            makes non-square pixels, which catches row/column spacing mix-ups.
        rescale_intercept: stored values are ``value - intercept`` (uint16) with RescaleSlope 1, so a
            reader that ignores the rescale tags reads wrong intensities.
        seed: makes the UIDs and the file order repeatable.

    Returns:
        The :class:`SeriesInfo` of the written series.
    """
    img = nib.load(str(nifti))
    # reorient to LPS index order: i -> patient left (DICOM rows direction), j -> posterior, k -> superior
    lps_order = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(img.affine), nib.orientations.axcodes2ornt(("L", "P", "S"))
    )
    img = img.as_reoriented(lps_order)
    data = np.asarray(img.dataobj)
    if data.ndim != 3 or not np.issubdtype(data.dtype, np.integer):
        raise ValueError(f"{nifti}: expected a 3D integer volume, got {data.dtype} {data.shape}")
    stored = data.astype(np.int64) - int(rescale_intercept)
    if stored.min() < 0 or stored.max() > 65535:
        raise ValueError(f"{nifti}: values do not fit uint16 with intercept {rescale_intercept}")
    stored = stored.astype(np.uint16)

    affine = img.affine.copy()
    affine[:3, 1] *= row_spacing_scale
    lps = np.linalg.inv(_LPS_TO_RAS) @ affine
    col_spacing = float(np.linalg.norm(lps[:3, 0]))  # between columns, along a row
    row_spacing = float(np.linalg.norm(lps[:3, 1]))  # between rows, along a column
    slice_step = lps[:3, 2]
    row_cosine, col_cosine = lps[:3, 0] / col_spacing, lps[:3, 1] / row_spacing

    rng = random.Random(seed)
    uid = lambda: generate_uid(entropy_srcs=[str(rng.random())])  # noqa: E731  repeatable UIDs
    study_uid, series_uid, for_uid = uid(), uid(), uid()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_cols, n_rows, n_slices = data.shape
    sop_uids = [uid() for _ in range(n_slices)]
    order = list(range(n_slices))
    rng.shuffle(order)  # files are not in slice order in an export; readers must sort by position
    for k in order:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uids[k]
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{sop_uids[k]}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop_uids[k]
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, for_uid
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Synthetic^Phantom", "NEONET-0001", "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240101", "120000", "1", "ACC0001"
        ds.ReferringPhysicianName, ds.StudyDescription = "", "MRI liver gadoxetic acid"
        ds.Modality, ds.SeriesNumber, ds.SeriesDescription = "MR", 7, "T1 HBP 20 min"
        ds.Manufacturer, ds.BodyPartExamined, ds.PatientPosition = "NeoNet synthetic", "LIVER", "FFS"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "GR", "SP", "FS", "3D"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength, ds.FlipAngle = "4.0", "1.9", 1, "10"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(v) for v in (lps @ np.array([0.0, 0.0, k, 1.0]))[:3]]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_cosine, *col_cosine)]
        ds.PixelSpacing = [_ds(row_spacing), _ds(col_spacing)]
        ds.SliceThickness = ds.SpacingBetweenSlices = _ds(float(np.linalg.norm(slice_step)))
        ds.SliceLocation = _ds(float(lps[2, 3] + k * slice_step[2]))
        ds.Rows, ds.Columns = n_rows, n_cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = _ds(rescale_intercept), "1", "US"
        # a DICOM frame is (rows, columns): row r holds voxels j = r along i
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        ds.save_as(path, enforce_file_format=True)
    written = [pydicom.dcmread(folder / f"{u}.dcm", stop_before_pixels=True) for u in sop_uids]
    return SeriesInfo(folder, study_uid, series_uid, for_uid, sop_uids, series_affine_ras(written), data.shape)


def series_affine_ras(datasets: list[pydicom.Dataset]) -> np.ndarray:
    """RAS affine of the (column, row, slice) grid of single-frame ``datasets`` given in slice order,
    computed from the tags alone (the reference the tests hold the app and the bundles to)."""
    first, last = datasets[0], datasets[-1]
    iop = np.array(first.ImageOrientationPatient, dtype=float)
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = iop[:3] * col_spacing
    lps[:3, 1] = iop[3:] * row_spacing
    lps[:3, 2] = (np.array(last.ImagePositionPatient, float) - np.array(first.ImagePositionPatient, float)) / (
        len(datasets) - 1
    )
    lps[:3, 3] = np.array(first.ImagePositionPatient, dtype=float)
    return _LPS_TO_RAS @ lps
