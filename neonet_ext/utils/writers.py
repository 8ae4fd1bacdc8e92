"""MONAI image writers that write atomically, and the naming of per-case outputs (monai is imported here, not in ``io``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from monai.data import NibabelWriter
from monai.data.image_writer import logger as writer_logger
from monai.utils import ImageMetaKey

from neonet_ext.utils.io import atomic_path

__all__ = ["CASE_ID_META_KEY", "AtomicNibabelWriter", "case_name", "case_output_name"]

#: Meta-data key under which :class:`~neonet_ext.engines.CaseRunner` puts the case id of an image; every
#: array derived from it (prediction, patches, attention) carries it along with the rest of the meta data.
CASE_ID_META_KEY = "case_id"

_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".dcm")


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` writing through a temporary file, for ``SaveImage(writer=...)``."""

    def write(self, filename: str | os.PathLike, verbose: bool = False, **obj_kwargs) -> None:
        with atomic_path(filename) as tmp:
            super().write(tmp, verbose=False, **obj_kwargs)
        if verbose:
            writer_logger.info(f"writing: {filename}")


def case_name(meta: Mapping[str, Any]) -> str:
    """The name of the case an array's ``meta`` belongs to: its case id when it has one, else its source
    file's name less an image suffix, whatever its case (``A.NII.GZ`` gives ``A``), else ``"case"``."""
    if meta.get(CASE_ID_META_KEY):
        return str(meta[CASE_ID_META_KEY])
    source = os.path.basename(os.path.normpath(str(meta.get(ImageMetaKey.FILENAME_OR_OBJ) or "case")))
    for suffix in _IMAGE_SUFFIXES:
        if source.lower().endswith(suffix) and len(source) > len(suffix):
            return source[: -len(suffix)]
    return source


def case_output_name(meta: Mapping[str, Any], saver: object = None) -> dict[str, Any]:
    """``SaveImage(output_name_formatter=...)`` naming every output after its case:
    ``<output_dir>/<case>/<case>_<postfix>.nii.gz`` (see :func:`case_name`).

    MONAI's default names an output after its source file and strips only a lower-case ``.nii.gz``
    and the last dotted part of any other name (``A.NII.GZ`` gave ``A.NII/``, a series folder ``1.2.3`` gave ``1.2/``).
    """
    # the suffix is what MONAI's folder layout strips, so a dotted case name is kept whole
    return {"subject": f"{case_name(meta)}.nii.gz", "idx": meta.get(ImageMetaKey.PATCH_INDEX)}
