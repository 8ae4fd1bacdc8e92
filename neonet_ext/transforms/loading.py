"""Loading a case: a NIfTI file, or one checked DICOM series of a folder, with what was read recorded in the meta data."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.config import KeysCollection
from monai.data import ITKReader, MetaTensor
from monai.transforms import LoadImage, MapTransform, Transform

from neonet_ext.data.dicom import choose_series, read_series, series_geometry

__all__ = ["INPUT_WARNINGS", "SERIES_META_KEYS", "LoadScan", "LoadScand", "scan_meta"]

#: Meta-data keys of what was read from a DICOM folder: the series used, its modality and object class.
SERIES_META_KEYS = ("series_uid", "series_description", "modality", "sop_class")
#: Meta-data key of the warnings about an input (a list of sentences; see :mod:`neonet_ext.data.dicom`).
INPUT_WARNINGS = "input_warnings"


class _SeriesFilesReader(ITKReader):
    """ITK's reader of a DICOM series given as its files (in slice order), not as a folder to search."""

    def __init__(self, files: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.files = list(files)

    def read(self, data: Any, **kwargs: Any):
        import itk

        kwargs = {**self.kwargs, **kwargs}
        return itk.imread(self.files if len(self.files) > 1 else self.files[0], **kwargs)


class LoadScan(Transform):
    """Load a scan as a channel-first (1, X, Y, Z) ``MetaTensor``: a NIfTI file (or any file MONAI
    reads), or a folder of DICOM files, of which one image series is chosen and checked first
    (:mod:`neonet_ext.data.dicom`: the series choice, the geometry refusals and warnings).

    The meta data of a DICOM series records ``series_uid``, ``series_description``, ``modality``
    and ``sop_class``; every scan gets :data:`INPUT_WARNINGS` (a list, empty when all is well).

    Args:
        ensure_channel_first: as ``monai.transforms.LoadImage``.
    """

    def __init__(self, ensure_channel_first: bool = True) -> None:
        self.ensure_channel_first = ensure_channel_first
        self.loader = LoadImage(image_only=True, ensure_channel_first=ensure_channel_first)

    def __call__(self, source: str | os.PathLike, series: str | None = None) -> MetaTensor:
        """
        Args:
            source: a file, or a folder of one DICOM series (or several, with ``series``).
            series: for a folder with several image series, a Series Instance UID or a text of one Series Description.
        """
        path = Path(source)
        if not path.is_dir():
            if path.is_file() and (path.name.upper() == "DICOMDIR" or _is_media_directory(path)):
                raise ValueError(f"{path}: a DICOMDIR (the index of a CD export), not an image; give the folder that holds it.")
            image = self.loader(source)
            image.meta[INPUT_WARNINGS] = []
            return image
        found, left_out = read_series(path)
        if not found and left_out:
            raise ValueError(f"{path}: no DICOM image series in this folder; it holds {'; '.join(left_out[:3])}.")
        chosen = choose_series(path, found, series)
        notes = series_geometry(chosen)
        reader = _SeriesFilesReader(chosen.files)
        image = LoadImage(reader=reader, image_only=True, ensure_channel_first=self.ensure_channel_first)(str(path))
        image.meta.update(
            series_uid=chosen.uid, series_description=chosen.description, modality=chosen.modality,
            sop_class=chosen.sop_class,
        )
        image.meta[INPUT_WARNINGS] = notes
        return image


def _is_media_directory(path: Path) -> bool:
    """Whether ``path`` is a DICOMDIR, read once: without ``force``, pydicom refuses a file that lacks
    the ``DICM`` magic (what :func:`~neonet_ext.data.dicom.is_dicom_file` would check first)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        meta = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"]).file_meta
    except (InvalidDicomError, OSError, ValueError, EOFError):  # an unreadable file is the reader's to report
        return False
    return str(getattr(meta, "MediaStorageSOPClassUID", "")) == "1.2.840.10008.1.3.10"


class LoadScand(MapTransform):
    """Dictionary form of :class:`LoadScan`: the series choice is read from the item's ``series_key``
    (e.g. ``{"image": "case_7/", "series": "HBP"}``), so a datalist can choose per case.

    Args:
        keys: keys of the scans to load.
        series_key: item key of the series choice.
        series: the choice for items without one (None: a folder must hold one image series).
        ensure_channel_first: as ``LoadImaged``.
    """

    def __init__(
        self, keys: KeysCollection = "image", series_key: str = "series", series: str | None = None,
        ensure_channel_first: bool = True, allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.series_key = series_key
        self.series = series
        self.loader = LoadScan(ensure_channel_first)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key], d.get(self.series_key) or self.series or None)
        return d


def scan_meta(case: Mapping[Hashable, Any], name: str, image_key: str = "image") -> Any:
    """The meta-data value ``name`` of a case's loaded scan (e.g. ``series_uid``); None when absent.
    :data:`INPUT_WARNINGS` comes joined into one table cell ("" when there are none)."""
    image = case.get(image_key)
    meta = image.meta if isinstance(image, MetaTensor) else {}
    if name == INPUT_WARNINGS:
        return "; ".join(meta.get(INPUT_WARNINGS) or [])
    return meta.get(name)
