"""Small helpers shared by NeoNet's transforms."""

from __future__ import annotations

from typing import Any

from monai.data import MetaTensor

__all__ = ["source_name"]


def source_name(image: Any, default: str = "image") -> str:
    """The file an image was loaded from (``meta["filename_or_obj"]``), for error messages;
    ``default`` when it is not a MetaTensor or has no file name."""
    if isinstance(image, MetaTensor):
        name = image.meta.get("filename_or_obj")
        if name:
            return str(name)
    return default
