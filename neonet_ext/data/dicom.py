"""DICOM series of a folder: which image series it holds, which one to read, and what is wrong with its geometry.

ITK reads a folder as one series, the first it finds, with a warning that names no file;
it stacks duplicated slices, closes gaps, reads a tilted stack as a straight one and a
cine's frame time as a slice spacing. Here the headers are read first (pydicom, no pixel
data), so that a case says which series it used and is refused, with the reason, when its
geometry cannot be a uniform 3D volume.

Rules (each refusal is a ``ValueError`` whose message names the folder):

* Only image objects count: a file whose SOP class is not an "... Image Storage" class
  (a segmentation, structure set, dose, report, presentation state, DICOMDIR) is left out,
  and a folder with no image object is refused, naming what it holds.
* A folder with several image series is refused unless the choice names one of them
  (its Series Instance UID, or a text found in exactly one Series Description).
* Geometry refusals: multi-frame objects (a cine, a time series or an enhanced object
  whose frames ITK would stack with a frame time as spacing); images without position,
  orientation or pixel spacing; images of one series in different orientations; two
  images at one position (a duplicated slice, or a time or echo series); slice gaps more
  than :data:`SPACING_TOLERANCE` apart (a missing slice: volumes would be wrong); a slice
  stack tilted against the slice normal by more than :data:`MAX_TILT_DEGREES` (gantry tilt
  or shear, which a NIfTI affine of the volume ITK reads does not place correctly).
* Warnings (kept in the case's meta data and table, not refused): slices more than
  :data:`THICK_SLICE_MM` apart (NeoSeg resamples to 3 mm; thin structures are lost) and a
  series of fewer than :data:`MIN_SLICES` slices.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "MAX_TILT_DEGREES",
    "MIN_SLICES",
    "SPACING_TOLERANCE",
    "THICK_SLICE_MM",
    "DicomSeries",
    "choose_series",
    "is_dicom_file",
    "read_series",
    "series_geometry",
]

#: Largest angle between the slice stacking direction and the slices' normal accepted as a straight stack.
MAX_TILT_DEGREES = 1.0
#: Largest relative difference between slice gaps accepted as uniform spacing.
SPACING_TOLERANCE = 0.05
#: Slice spacing above which a case is warned about (mm).
THICK_SLICE_MM = 6.0
#: Fewer slices than this are warned about: the liver does not fit.
MIN_SLICES = 16

_DICOM_MAGIC_OFFSET = 128
_HEADER_TAGS = [
    "SOPClassUID", "Modality", "SeriesInstanceUID", "SeriesDescription", "SeriesNumber", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "NumberOfFrames", "InstanceNumber",
]


def is_dicom_file(path: str | os.PathLike) -> bool:
    """A ``.dcm`` suffix or the ``DICM`` magic after the 128-byte preamble."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as f:
            f.seek(_DICOM_MAGIC_OFFSET)
            return f.read(4) == b"DICM"
    except OSError:
        return False


@dataclass
class _Image:
    path: str
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    frames: int
    instance: int


@dataclass
class DicomSeries:
    """The image objects of one series in one folder, from their headers.

    Attributes:
        folder: the folder the files are in.
        uid: Series Instance UID.
        description: Series Description ("" when absent).
        modality: Modality ("" when absent), e.g. ``MR``, ``CT``.
        sop_class: name of the SOP class, e.g. ``MR Image Storage``.
        images: one record per file, in the order :func:`series_geometry` sorts them.
    """

    folder: str
    uid: str
    description: str
    modality: str
    sop_class: str
    images: list[_Image] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return [image.path for image in self.images]

    def summary(self) -> str:
        """``"<uid> '<description>' (<modality>, <n> images)"``."""
        return f"{self.uid} '{self.description}' ({self.modality or 'no modality'}, {len(self.images)} images)"


def _floats(value, n: int) -> np.ndarray | None:
    try:
        array = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return array if array.shape == (n,) and np.isfinite(array).all() else None


def read_series(folder: str | os.PathLike) -> tuple[list[DicomSeries], list[str]]:
    """The image series of the DICOM files directly in ``folder``, and a note per other object left out.

    Files that do not parse as DICOM are left out silently only when they do not look like DICOM
    (no ``.dcm`` suffix, no magic); others are noted.

    Returns:
        ``(series, left_out)``: series sorted by Series Number then UID; ``left_out`` lines such as
        ``"seg.dcm: Segmentation Storage (not an image)"``.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import UID

    folder = Path(folder)
    by_uid: dict[str, DicomSeries] = {}
    numbers: dict[str, int] = {}
    left_out: list[str] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if not is_dicom_file(path):
            continue
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        except (InvalidDicomError, OSError, ValueError, EOFError) as e:
            left_out.append(f"{path.name}: unreadable DICOM ({e})")
            continue
        sop = header.get("SOPClassUID") or getattr(getattr(header, "file_meta", None), "MediaStorageSOPClassUID", None)
        sop_name = UID(str(sop)).name if sop else "no SOP class"
        if "Image Storage" not in sop_name:
            left_out.append(f"{path.name}: {sop_name} (not an image)")
            continue
        uid = str(header.get("SeriesInstanceUID", "")) or "(no series UID)"
        if uid not in by_uid:
            by_uid[uid] = DicomSeries(str(folder), uid, str(header.get("SeriesDescription", "")).strip(),
                                      str(header.get("Modality", "")).strip(), sop_name)
            numbers[uid] = int(header.get("SeriesNumber") or 0)
        spacing = _floats(header.get("PixelSpacing"), 2)
        by_uid[uid].images.append(_Image(
            path=str(path),
            position=_floats(header.get("ImagePositionPatient"), 3),
            orientation=_floats(header.get("ImageOrientationPatient"), 6),
            pixel_spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])),
            frames=int(header.get("NumberOfFrames") or 1),
            instance=int(header.get("InstanceNumber") or 0),
        ))
    series = sorted(by_uid.values(), key=lambda s: (numbers[s.uid], s.uid))
    return series, left_out


def choose_series(folder: str | os.PathLike, series: Sequence[DicomSeries], choice: str | None = None) -> DicomSeries:
    """The series of ``folder`` to read: the only one, or the one ``choice`` names.

    Args:
        folder: the folder, for messages.
        series: its image series (:func:`read_series`).
        choice: a Series Instance UID, or a text found (case-insensitively) in exactly one Series Description.

    Raises:
        ValueError: no image series; several and no choice; a choice that names none or several.
    """
    if not series:
        raise ValueError(f"{folder}: no DICOM image series in this folder.")
    listing = "; ".join(s.summary() for s in series)
    if choice:
        by_uid = [s for s in series if s.uid == choice]
        chosen = by_uid or [s for s in series if choice.lower() in s.description.lower()]
        if len(chosen) == 1:
            return chosen[0]
        what = "names several" if chosen else "names none"
        raise ValueError(f"{folder}: the series choice '{choice}' {what} of its {len(series)} image series: {listing}.")
    if len(series) > 1:
        raise ValueError(
            f"{folder}: {len(series)} image series in one folder ({listing}); choose one with the 'series' "
            "option (a Series Instance UID, or a text of one Series Description) or give each series its own folder."
        )
    return series[0]


def _angle_degrees(a: np.ndarray, b: np.ndarray) -> float:
    cosine = abs(float(np.dot(a, b))) / (np.linalg.norm(a) * np.linalg.norm(b))
    return math.degrees(math.acos(min(1.0, cosine)))


def series_geometry(series: DicomSeries) -> list[str]:
    """Check that ``series`` is a straight stack of uniformly spaced single-frame slices; sort its images
    along the slice normal.

    Returns:
        warnings (see the module's rules), each a sentence.

    Raises:
        ValueError: a geometry refusal, naming the folder and the problem.
    """
    where = f"{series.folder} (series {series.summary()})"
    multi = [image for image in series.images if image.frames > 1]
    if multi:
        raise ValueError(
            f"{where}: multi-frame object ({multi[0].frames} frames in {Path(multi[0].path).name}): a cine, a time "
            "series or an enhanced object, not a stack of single-frame slices NeoNet can place in space."
        )
    missing = [image for image in series.images
               if image.position is None or image.orientation is None or image.pixel_spacing is None]
    if missing:
        raise ValueError(
            f"{where}: {len(missing)} of {len(series.images)} images lack position, orientation or pixel spacing "
            f"(e.g. {Path(missing[0].path).name}): the voxel size and the slice positions are unknown."
        )
    orientations = np.stack([image.orientation for image in series.images])
    if np.abs(orientations - orientations[0]).max() > 1e-3:
        raise ValueError(f"{where}: its images lie in different orientations (a localizer or projections), not one stack.")
    normal = np.cross(orientations[0][:3], orientations[0][3:])
    along = np.array([float(np.dot(image.position, normal)) for image in series.images])
    order = np.argsort(along, kind="stable")
    series.images = [series.images[i] for i in order]
    along = along[order]
    warnings: list[str] = []
    if len(series.images) < 2:
        return warnings
    gaps = np.diff(along)
    if (gaps < 1e-3).any():
        k = int(np.argmax(gaps < 1e-3))
        per_position = len(along) / len(np.unique(np.round(along, 3)))
        what = (f"{per_position:.0f} images at each position (a time or echo series)" if per_position >= 2
                else f"two images at one position ({Path(series.images[k].path).name} and {Path(series.images[k + 1].path).name}: a duplicated slice)")
        raise ValueError(f"{where}: {what}.")
    spacing = float(np.median(gaps))
    uneven = np.abs(gaps - spacing) > SPACING_TOLERANCE * spacing
    if uneven.any():
        k = int(np.argmax(uneven))
        raise ValueError(
            f"{where}: slice spacing not uniform: {spacing:.2f} mm, but {gaps[k]:.2f} mm after slice {k + 1} of "
            f"{len(along)} (a missing slice?); volumes and the tumour would be wrong."
        )
    positions = np.stack([image.position for image in series.images])
    tilt = _angle_degrees(positions[-1] - positions[0], normal)
    if tilt > MAX_TILT_DEGREES:
        raise ValueError(
            f"{where}: the slice stack is tilted {tilt:.1f} degrees against the slices' normal (gantry tilt or "
            "shear); resample it to a straight stack first."
        )
    if spacing > THICK_SLICE_MM:
        warnings.append(f"slices {spacing:.1f} mm apart (more than {THICK_SLICE_MM:g} mm): thin structures are lost")
    if len(series.images) < MIN_SLICES:
        warnings.append(f"only {len(series.images)} slices: the liver may not fit in the volume")
    return warnings
