"""What the application's input is: a DICOM folder, a NIfTI file, or a folder with one NIfTI file.

Checked before the operator graph starts, so that a wrong input fails at once with a message
that names it and says what was looked for, rather than as an exception deep in an operator
(or, with the SDK's DICOM loader alone, as a graph that silently produces nothing).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from neonet_ext.data.dicom import is_dicom_file
from neonet_ext.data.discovery import NIFTI_SUFFIXES

__all__ = ["InputError", "InputSpec", "NIFTI_SUFFIXES", "resolve_input"]

_logger = logging.getLogger(__name__)


class InputError(ValueError):
    """The input cannot be processed; the message names it and says why."""


@dataclass(frozen=True)
class InputSpec:
    """A checked input.

    Attributes:
        kind: ``"dicom"`` (a folder searched recursively for DICOM files, as the SDK's loader does)
            or ``"nifti"`` (one NIfTI file).
        path: the DICOM folder or the NIfTI file.
        case: the case name, which names the per-case output folder: the folder's name, or the file's
            name without its NIfTI suffix (as the bundles name their outputs).
    """

    kind: str
    path: Path
    case: str


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def _nifti_case(path: Path) -> str:
    lower = path.name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def _first_dicom(folder: Path) -> Path | None:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and is_dicom_file(Path(root) / name):
                return Path(root) / name
    return None


def resolve_input(path: str | os.PathLike) -> InputSpec:
    """Check the input and say what it is.

    Args:
        path: a NIfTI file (``.nii``, ``.nii.gz``), or a folder holding a DICOM series (searched
            recursively; the series is then chosen by the series selector), or a folder holding
            exactly one NIfTI file and no DICOM (a MAP's input is always a folder).

    Raises:
        InputError: the path does not exist, is a file of another kind, or is a folder with neither
            DICOM files nor exactly one NIfTI file.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise InputError(f"Input {path} does not exist.")
    if path.is_file():
        if _is_nifti(path):
            return InputSpec("nifti", path, _nifti_case(path))
        hint = " (a single DICOM file: pass the folder of its series)" if is_dicom_file(path) else ""
        raise InputError(
            f"Input {path} is not a NIfTI file (.nii, .nii.gz){hint}; give a NIfTI file or a folder of DICOM files."
        )
    if not path.is_dir():
        raise InputError(f"Input {path} is neither a file nor a folder.")
    niftis = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and _is_nifti(p))
    if _first_dicom(path) is not None:
        if niftis:
            _logger.warning("Input %s holds DICOM files and NIfTI files; using the DICOM, ignoring %s", path,
                            ", ".join(p.name for p in niftis))
        return InputSpec("dicom", path, path.name)
    if len(niftis) == 1:
        return InputSpec("nifti", niftis[0], _nifti_case(niftis[0]))
    if niftis:
        raise InputError(
            f"Input folder {path} holds {len(niftis)} NIfTI files ({', '.join(p.name for p in niftis)}) and no DICOM; "
            "the application processes one case per run: pass one file."
        )
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not p.name.startswith("."))
    found = f"it holds only: {', '.join(entries[:10])}{' ...' if len(entries) > 10 else ''}" if entries else "it is empty"
    raise InputError(
        f"Input folder {path} holds no DICOM files (searched its subfolders too, for the DICM marker or a .dcm name) "
        f"and no NIfTI file; {found}."
    )
