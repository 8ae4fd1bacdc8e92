"""The voxel grid of a DICOM series, and moving arrays between the SDK's image and MONAI's.

The SDK's ``DICOMSeriesToVolumeOperator`` gives an ``Image`` whose array is (D, H, W):
slices sorted along the slice normal, then rows, then columns. MONAI's bundles work on
(C, X, Y, Z) MetaTensors with a RAS affine, as ``LoadScand`` (ITK) gives for the same
series: X along a row (columns), Y along a column (rows), Z the slices. The affine is
computed here from the tags rather than taken from the SDK's ``nifti_affine_transform``:
SDK 4.0.0 scales the row direction by PixelSpacing[0] (the spacing *between rows*), which
is only right for square pixels; DICOM puts the spacing between columns in PixelSpacing[1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import MetaKeys, SpaceKeys

__all__ = ["SeriesGeometry", "series_geometry", "series_meta", "image_to_metatensor", "label_map_to_series"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# slices may differ from the mean step by this fraction of it (DS rounding, scanner jitter) and still form one grid
_SPACING_TOLERANCE = 0.01
_ORIENTATION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class SeriesGeometry:
    """The regular grid of a single-frame series, its slices in the SDK's sorted order.

    Attributes:
        affine_ras: (4, 4) maps (column, row, slice) indices to RAS millimetres.
        shape: (columns, rows, slices).
        sop_instance_uids: one per slice, in slice order.
    """

    affine_ras: np.ndarray
    shape: tuple[int, int, int]
    sop_instance_uids: tuple[str, ...]


def series_geometry(series, name: str) -> SeriesGeometry:
    """The grid of an SDK ``DICOMSeries`` whose SOP instances are already sorted (by
    ``DICOMSeriesToVolumeOperator``), with checks that it is one regular 3D grid.

    Args:
        series: ``monai.deploy.core.domain.DICOMSeries``.
        name: how the series is named in messages (the input path and the series UID).

    Raises:
        ValueError: fewer than two slices, multi-frame instances, slices of different size or
            orientation, missing geometry tags, or uneven slice spacing (a gap or a second stack).
    """
    datasets = [s.get_native_sop_instance() for s in series.get_sop_instances()]
    if len(datasets) < 2:
        raise ValueError(f"{name}: a 3D series needs at least two slices, got {len(datasets)}.")
    for ds in datasets:
        missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing") if k not in ds]
        if missing:
            raise ValueError(f"{name}: instance {ds.SOPInstanceUID} has no {', '.join(missing)}.")
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise ValueError(
                f"{name}: instance {ds.SOPInstanceUID} has {ds.NumberOfFrames} frames; "
                "only single-frame series (one file per slice) are supported."
            )
    first = datasets[0]
    iop = np.array(first.ImageOrientationPatient, dtype=float)
    rows, cols = int(first.Rows), int(first.Columns)
    for ds in datasets[1:]:
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise ValueError(f"{name}: slices of different sizes ({rows}x{cols} and {ds.Rows}x{ds.Columns}).")
        if not np.allclose(np.array(ds.ImageOrientationPatient, dtype=float), iop, atol=_ORIENTATION_TOLERANCE):
            raise ValueError(f"{name}: slices of different orientations (ImageOrientationPatient differs).")
    row_spacing, col_spacing = (float(v) for v in first.PixelSpacing)
    positions = np.array([ds.ImagePositionPatient for ds in datasets], dtype=float)
    steps = np.diff(positions, axis=0)
    mean_step = (positions[-1] - positions[0]) / (len(datasets) - 1)
    spacing = float(np.linalg.norm(mean_step))
    deviation = float(np.abs(np.linalg.norm(steps - mean_step, axis=1)).max())
    if spacing == 0 or deviation > _SPACING_TOLERANCE * spacing:
        distances = np.linalg.norm(steps, axis=1)
        raise ValueError(
            f"{name}: slices are not evenly spaced (steps from {distances.min():.3f} to {distances.max():.3f} mm, "
            f"mean {spacing:.3f} mm); a series with gaps, overlaps or several stacks is not one 3D volume."
        )
    lps = np.eye(4)
    lps[:3, 0] = iop[:3] * col_spacing  # along a row: the row direction cosine, spacing between columns
    lps[:3, 1] = iop[3:] * row_spacing  # along a column: the column direction cosine, spacing between rows
    lps[:3, 2] = mean_step
    lps[:3, 3] = positions[0]
    return SeriesGeometry(_LPS_TO_RAS @ lps, (cols, rows, len(datasets)), tuple(str(ds.SOPInstanceUID) for ds in datasets))


def series_meta(series: Any) -> dict[str, str]:
    """What ``LoadScand`` records of a DICOM series it reads (its :data:`~neonet_ext.transforms.SERIES_META_KEYS`),
    from an SDK ``DICOMSeries``: the input gate reads the modality, the table the series used."""
    first = series.get_sop_instances()[0].get_native_sop_instance()
    return {"series_uid": str(series.SeriesInstanceUID), "series_description": str(series.SeriesDescription or ""),
            "modality": str(series.Modality or ""), "sop_class": first.SOPClassUID.name}


def image_to_metatensor(
    voxels: np.ndarray, geometry: SeriesGeometry, source: str, series: Mapping[str, Any] | None = None
) -> MetaTensor:
    """The SDK image array (D, H, W) as the (1, X, Y, Z) float32 MetaTensor that ``LoadScand``
    with ``ensure_channel_first=True`` gives for the same series.

    Args:
        voxels: (slices, rows, columns), rescale slope and intercept applied.
        geometry: the series' grid; its shape must match ``voxels``.
        source: stands for the file name in ``filename_or_obj`` (names the outputs and messages).
        series: the series' meta data (:func:`series_meta`), added to the MetaTensor's.
    """
    expected = geometry.shape[::-1]
    if tuple(voxels.shape) != expected:
        raise ValueError(f"{source}: volume of shape {voxels.shape}, expected (slices, rows, columns) {expected}.")
    array = np.ascontiguousarray(np.transpose(voxels, (2, 1, 0)), dtype=np.float32)[None]
    affine = torch.as_tensor(geometry.affine_ras, dtype=torch.float64)
    meta = {
        MetaKeys.AFFINE: affine,
        MetaKeys.ORIGINAL_AFFINE: affine.clone(),
        MetaKeys.SPATIAL_SHAPE: np.asarray(geometry.shape),
        MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel",
        MetaKeys.SPACE: SpaceKeys.RAS,
        "filename_or_obj": source,
        **(series or {}),
    }
    return MetaTensor(torch.from_numpy(array), meta=meta)


def label_map_to_series(label: torch.Tensor | np.ndarray, geometry: SeriesGeometry) -> np.ndarray:
    """A (1, X, Y, Z) label map on the series grid as (slices, rows, columns) uint8, the frame
    order of the series' SOP instances (what a DICOM SEG of the series is built from)."""
    array = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    if array.ndim == 4:
        array = array[0]
    if tuple(array.shape) != geometry.shape:
        raise ValueError(f"label map of shape {array.shape} is not on the series grid {geometry.shape}.")
    return np.ascontiguousarray(np.transpose(array, (2, 1, 0))).astype(np.uint8)
