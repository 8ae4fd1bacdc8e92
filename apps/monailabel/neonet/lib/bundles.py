"""What the NeoNet MONAI Label tasks share: the served bundle copies, transform lists, the ``image_*`` guard."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import neonet_ext
from monai.transforms import Compose

logger = logging.getLogger(__name__)

__all__ = [
    "BUNDLE_NAMES",
    "DEFAULT_BUNDLES",
    "ImageKeyGuard",
    "drop_transforms",
    "flatten_transforms",
    "prepare_model_dir",
    "read_metadata",
]

# The repository's bundles folder, found from the installed (editable) neonet_ext package rather
# than from this file, so that a copy of the app (as the tests make) still finds the bundles.
DEFAULT_BUNDLES = Path(neonet_ext.__file__).resolve().parents[1] / "bundles"
BUNDLE_NAMES = ("neoseg", "neocls")
# outputs of earlier bundle runs: never part of what is served
_NOT_COPIED = shutil.ignore_patterns("eval", "runs", "__pycache__", "*.pyc")


def read_metadata(bundle_root: str | os.PathLike) -> dict[str, Any]:
    """The bundle's ``configs/metadata.json``.

    Raises:
        FileNotFoundError: the folder is not a bundle (the message names the file it looked for).
    """
    path = Path(bundle_root) / "configs" / "metadata.json"
    if not path.is_file():
        raise FileNotFoundError(f"{Path(bundle_root)} is not a MONAI bundle: {path} does not exist.")
    return json.loads(path.read_text())


def prepare_model_dir(source: str | os.PathLike, model_dir: str | os.PathLike, names: Iterable[str]) -> dict[str, Path]:
    """Copy each bundle ``source/<name>`` to ``model_dir/<name>`` unless a copy is already there.

    MONAI Label's training writes ``models/model.pt`` and ``runs/`` into the bundle it trains,
    so the server works on copies and the repository's bundles (and their demo weights) stay as
    they are. An existing copy is kept as it is, trained weights included: delete it to start
    again from ``source``. Each copy is written to a temporary folder first and then renamed,
    so a half-copied bundle is never served (the training subprocess builds the app too).

    Returns:
        the copy of each bundle, by name.

    Raises:
        FileNotFoundError: ``source/<name>`` is not a bundle.
    """
    source, model_dir = Path(source).resolve(), Path(model_dir).resolve()
    model_dir.mkdir(parents=True, exist_ok=True)
    roots = {}
    for name in names:
        target = model_dir / name
        if (target / "configs" / "metadata.json").is_file():
            logger.info(f"Serving the existing copy {target} of bundle '{name}' "
                        f"(delete it to copy {source / name} again)")
        else:
            read_metadata(source / name)  # fails with the path when the source is no bundle
            staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=model_dir))
            shutil.copytree(source / name, staging / name, ignore=_NOT_COPIED)
            try:
                os.replace(staging / name, target)
            except OSError:  # another process finished its copy first: use that one
                if not (target / "configs" / "metadata.json").is_file():
                    raise
            shutil.rmtree(staging, ignore_errors=True)
            logger.info(f"Copied bundle '{name}' from {source / name} to {target}")
        roots[name] = target
    return roots


def flatten_transforms(transform: Callable | Sequence[Callable] | None) -> list[Callable]:
    """The transforms of a (possibly nested) ``Compose`` as one flat list.

    MONAI Label runs a list of transforms one by one; NeoCls's post-processing is a list that
    starts with NeoSeg's whole ``Compose``, whose file writers must be found to be dropped.
    """
    if transform is None:
        return []
    if isinstance(transform, Compose):
        return [t for inner in transform.transforms for t in flatten_transforms(inner)]
    if isinstance(transform, (list, tuple)):
        return [t for inner in transform for t in flatten_transforms(inner)]
    return [transform]


def drop_transforms(transforms: Sequence[Callable], types: tuple[type, ...]) -> list[Callable]:
    """``transforms`` without the instances of ``types`` (e.g. the bundle's ``SaveImaged`` writers)."""
    return [t for t in transforms if not isinstance(t, types)]


class ImageKeyGuard:
    """Keeps MONAI Label's ``image_path`` (and any other non-dict ``image_*`` value) away from the
    bundle's pre-processing.

    MONAI 1.6's ``Spacingd`` calls ``.update(meta)`` on every data key that starts with
    ``"<key>_"`` when the image is a NIfTI file, meant for ``image_meta_dict``. MONAI Label's
    ``BasicInferTask`` adds the string ``image_path`` to the data, so NeoSeg's pre-processing
    raises ``AttributeError: 'str' object has no attribute 'update'`` and ``/infer`` answers
    HTTP 500. Those values are taken out before the pre-transforms and put back afterwards (the
    result writer reads ``image_path`` for the output file's extension). Mix in before
    ``BasicInferTask``.
    """

    input_key: str

    def run_pre_transforms(self, data: dict[str, Any], transforms: Sequence[Callable]) -> dict[str, Any]:
        prefix = f"{self.input_key}_"
        held = {k: data.pop(k) for k in list(data) if isinstance(k, str) and k.startswith(prefix)
                and not isinstance(data[k], Mapping)}
        out = super().run_pre_transforms(data, transforms)  # type: ignore[misc]
        out.update(held)
        return out
