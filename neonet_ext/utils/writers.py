"""MONAI image writers that write atomically (monai is imported here, not in ``io``)."""

from __future__ import annotations

import os

from monai.data import NibabelWriter
from monai.data.image_writer import logger as writer_logger

from neonet_ext.utils.io import atomic_path

__all__ = ["AtomicNibabelWriter"]


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` writing through a temporary file, for ``SaveImage(writer=...)``."""

    def write(self, filename: str | os.PathLike, verbose: bool = False, **obj_kwargs) -> None:
        with atomic_path(filename) as tmp:
            super().write(tmp, verbose=False, **obj_kwargs)
        if verbose:
            writer_logger.info(f"writing: {filename}")
