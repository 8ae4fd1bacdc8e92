"""Datalists of the images to process: a folder of NIfTI files or DICOM series, or a Decathlon JSON.

Each item is ``{"image": <absolute path>, "case_id": <name>}``, ready for
:class:`~neonet_ext.transforms.LoadScand`, which reads a NIfTI file with nibabel and a
DICOM folder as the one image series it holds (or the one an item's ``"series"``
names), after checking the series' geometry (:mod:`neonet_ext.data.dicom`).

DICOM folders are found at any depth below the dataset folder (``patient/study/series``
as a CD export lays them out, with or without a ``DICOMDIR``): each folder that directly
holds DICOM files is a case, named by its path below the dataset folder with ``_`` for
the separators (``patient_study_series``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai.data import MetaTensor, load_decathlon_datalist

from neonet_ext.data.dicom import is_dicom_file
from neonet_ext.transforms.utils import source_name

__all__ = ["NIFTI_SUFFIXES", "datalist_from", "describe_case_error", "find_cases"]

#: File name endings of NIfTI images (matched case-insensitively).
NIFTI_SUFFIXES = (".nii.gz", ".nii")

# Side files that often sit beside images (sidecars, clinical tables, notes).
_IGNORED_SUFFIXES = (".json", ".csv", ".txt")

def _nifti_case_id(name: str) -> str | None:
    lower = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _dicom_folders(folder: Path) -> list[Path]:
    """``folder`` and the folders below it that directly hold DICOM files (a ``DICOMDIR`` index alone does not count)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = sorted(f for f in files if not f.startswith(".") and f.upper() != "DICOMDIR")
        if any(is_dicom_file(Path(root) / f) for f in names):
            found.append(Path(root))
    return found


def _check_unique(items: list[dict], source: str, hint: str = "") -> None:
    seen: dict[str, Any] = {}
    for item in items:
        case_id, image = item["case_id"], item["image"]
        if case_id in seen:
            raise ValueError(
                f"{source}: case id {case_id!r} is given by both {seen[case_id]} and {image}; "
                f"case ids name the outputs, so they must be unique{hint}."
            )
        seen[case_id] = image


def find_cases(dataset_dir: str | os.PathLike, image_key: str = "image") -> list[dict[str, str]]:
    """The cases of a folder: its NIfTI files and its subfolders of DICOM files.

    A NIfTI file (``.nii``, ``.nii.gz``, any case) directly in the folder is a case named
    by its file name less the suffix; a subfolder, at any depth, that directly holds DICOM
    files (``.dcm`` suffix, or the ``DICM`` magic at byte 128) is a case named by its path
    below the folder (``patient_study_series``). Hidden entries and ``.json``/``.csv``/``.txt``
    files are ignored; other entries are skipped with a warning that names them.

    Args:
        dataset_dir: the folder.
        image_key: key of the image path in each item.

    Returns:
        ``[{image_key: absolute path, "case_id": name}, ...]`` sorted by case id.

    Raises:
        FileNotFoundError: the folder does not exist.
        NotADirectoryError: ``dataset_dir`` is not a folder.
        ValueError: the folder holds no image, or two entries give the same case id
            (e.g. ``a.nii`` and ``a.nii.gz``).
    """
    folder = Path(os.path.abspath(os.path.expanduser(dataset_dir)))
    if not folder.exists():
        raise FileNotFoundError(f"Dataset folder {folder} does not exist.")
    if not folder.is_dir():
        raise NotADirectoryError(f"Dataset folder {folder} is not a folder.")

    items: list[dict[str, str]] = []
    skipped: list[str] = []
    loose_dicom: list[str] = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if name.startswith("."):
            continue
        if path.is_dir():
            series_folders = _dicom_folders(path)
            for series_folder in series_folders:
                case_id = "_".join(series_folder.relative_to(folder).parts)
                items.append({image_key: str(series_folder), "case_id": case_id})
            if not series_folders:
                skipped.append(f"{name}/")
        elif (case_id := _nifti_case_id(name)) is not None:
            items.append({image_key: str(path), "case_id": case_id})
        elif name.lower().endswith(_IGNORED_SUFFIXES):
            continue
        elif is_dicom_file(path):
            loose_dicom.append(name)
        else:
            skipped.append(name)

    if loose_dicom:
        skipped.append(
            f"{len(loose_dicom)} DICOM file(s) such as {loose_dicom[0]} (a DICOM series must be in a subfolder)"
        )
    if not items:
        found = f"; it holds only: {', '.join(skipped)}" if skipped else " (it is empty)"
        raise ValueError(
            f"Dataset folder {folder} holds no images: looked for NIfTI files "
            f"({', '.join(NIFTI_SUFFIXES)}) and subfolders (at any depth) of DICOM files{found}."
        )
    if skipped:
        warnings.warn(f"Dataset folder {folder}: skipped {', '.join(skipped)}.", stacklevel=2)
    _check_unique(items, str(folder))
    items.sort(key=lambda item: item["case_id"])
    return items


def _case_id_of(image: Any) -> str:
    if isinstance(image, (list, tuple)):
        image = image[0]
    name = os.path.basename(os.path.normpath(os.fspath(image)))
    return _nifti_case_id(name) or name


def datalist_from(
    dataset_dir: str | os.PathLike | None = None,
    datalist_file: str | os.PathLike | None = None,
    data_list_key: str = "testing",
    base_dir: str | os.PathLike | None = None,
    image_key: str = "image",
) -> list[dict]:
    """The datalist of a bundle run: a Decathlon JSON when given, else the cases of a folder.

    Used from bundle configs as ``"$neonet_ext.data.datalist_from(@dataset_dir, @datalist_file)"``;
    an empty string counts as not given.

    Args:
        dataset_dir: folder searched by :func:`find_cases` when there is no
            ``datalist_file``; with one, where its relative paths start (unless ``base_dir``).
        datalist_file: Decathlon-style JSON read with ``monai.data.load_decathlon_datalist``.
        data_list_key: list of the JSON to read (``"testing"``, ``"training"``...).
        base_dir: start of the JSON's relative paths; default ``dataset_dir``, else the
            JSON's folder.
        image_key: key of the image path in each item.

    Returns:
        Items with ``image_key`` and ``"case_id"``; a JSON item without ``"case_id"`` gets
        its image's file name less the NIfTI suffix (or the folder name).

    Raises:
        ValueError: neither argument given, or two items with the same case id.
    """
    if datalist_file:
        base = base_dir or dataset_dir or None
        items = load_decathlon_datalist(datalist_file, data_list_key=data_list_key, base_dir=base)
        for item in items:
            item.setdefault("case_id", _case_id_of(item[image_key]))
        _check_unique(items, str(datalist_file), hint=" (give the items a 'case_id')")
        return items
    if dataset_dir:
        return find_cases(dataset_dir, image_key=image_key)
    raise ValueError("No input given: set dataset_dir (a folder of images) or datalist_file (a Decathlon JSON).")


def describe_case_error(item: Mapping[str, Any], exc: BaseException, image_key: str = "image") -> str:
    """``"<image file>: <innermost cause>"`` for a case whose processing raised ``exc``.

    MONAI wraps a transform's error in ``RuntimeError("applying transform ...")`` (one per
    nested ``Compose``), and reader errors often do not name the file; the innermost
    ``__cause__`` says what is wrong. A message that already starts with the file name
    (as :class:`~neonet_ext.transforms.CheckImaged`'s do) is returned as it is.
    """
    cause, seen = exc, {id(exc)}
    while cause.__cause__ is not None and id(cause.__cause__) not in seen:
        cause = cause.__cause__
        seen.add(id(cause))
    message = str(cause).strip() or type(cause).__name__
    image = item.get(image_key, "image")
    source = source_name(image, image_key) if isinstance(image, MetaTensor) else str(image)
    return message if message.startswith(source) else f"{source}: {message}"
