"""Patch datalists: the JSON files that link the bundles (NeoSeg writes them, NeoGen and NeoCls read them).

An item is ``{"case_id", "patch", "patch_mask", "patch_image", "pni", "tumour_found", ...}``
(plus ``synthetic: true`` for NeoGen's patches). File paths are stored relative to the
JSON's folder when the files lie under it, so an output folder can be moved or shared
whole; absolute paths are kept as they are.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from neonet_ext.utils.io import atomic_write

__all__ = [
    "PATH_KEYS",
    "relative_to_folder",
    "load_patch_datalist",
    "classifier_datalist",
    "patches_with_tumour",
    "synthetic_needed",
    "mix_synthetic",
    "class_weights",
    "write_patch_datalist",
    "AUTOENCODER_INPUTS",
    "autoencoder_inputs",
]

#: Item keys that hold file paths.
PATH_KEYS = ("image", "label", "pred", "patch", "patch_mask", "patch_image")


def relative_to_folder(path: str | os.PathLike, folder: str | os.PathLike) -> str:
    """``path`` relative to ``folder`` if it lies under it, else absolute."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def load_patch_datalist(
    datalist_file: str | os.PathLike,
    data_list_key: str | Sequence[str] = ("testing", "training"),
    required_keys: Sequence[str] = ("patch_mask",),
) -> list[dict]:
    """Items of a patch datalist with absolute paths.

    Args:
        datalist_file: the JSON (e.g. NeoSeg's ``patches.json``).
        data_list_key: the list's key, or several to try in turn (NeoSeg writes
            ``testing``, NeoGen ``training``).
        required_keys: keys every item must have.

    An item without ``case_id`` is named after its ``patch`` file (the name up to the first dot).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, no list under the key(s), or an item lacking a required key;
            the message names the file.
    """
    path = Path(datalist_file)
    if not path.is_file():
        raise FileNotFoundError(f"patch datalist {path} does not exist")
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"patch datalist {path} is not valid JSON: {e}") from e
    keys = [data_list_key] if isinstance(data_list_key, str) else list(data_list_key)
    found = next((k for k in keys if isinstance(content, dict) and isinstance(content.get(k), list)), None)
    if found is None:
        raise ValueError(f"patch datalist {path} has no list under {' or '.join(map(repr, keys))}")
    base = path.resolve().parent
    items = []
    for i, item in enumerate(content[found]):
        missing = [k for k in required_keys if k not in item]
        if missing:
            raise ValueError(f"patch datalist {path}: item {i} ({item.get('case_id', '?')}) lacks {missing}")
        item = dict(item)
        for key in PATH_KEYS:
            if isinstance(item.get(key), str) and not os.path.isabs(item[key]):
                item[key] = str(base / item[key])
        if "case_id" not in item and isinstance(item.get("patch"), str):
            item["case_id"] = Path(item["patch"]).name.split(".")[0]
        items.append(item)
    return items


def classifier_datalist(
    patches_file: str | os.PathLike | None = None,
    datalist_file: str | os.PathLike | None = None,
    dataset_dir: str | os.PathLike | None = None,
    data_list_key: str = "testing",
) -> list[dict]:
    """What NeoCls's inference classifies: the items of a patch datalist when ``patches_file`` is given
    (NeoSeg's patches, already cut), else the images NeoSeg segments first.

    The images are those of ``datalist_file`` (a Decathlon JSON, relative paths starting at its own
    folder: ``dataset_dir`` is then ignored), else the cases found in ``dataset_dir``; an empty
    string counts as not given.
    """
    if patches_file:
        return load_patch_datalist(patches_file, required_keys=["patch"])
    from neonet_ext.data.discovery import datalist_from  # imports MONAI, which patch datalists do not need

    return datalist_from(None if datalist_file else dataset_dir, datalist_file, data_list_key=data_list_key)


def write_patch_datalist(items: Sequence[dict], path: str | os.PathLike, key: str = "testing") -> Path:
    """Write ``{key: items}`` atomically, file paths relative to the JSON's folder where they lie under it
    (the form :func:`load_patch_datalist` reads back)."""
    path = Path(path)
    rows = []
    for item in items:
        item = dict(item)
        for k in PATH_KEYS:
            if isinstance(item.get(k), str):
                item[k] = relative_to_folder(item[k], path.parent)
        rows.append(item)
    text = json.dumps({key: rows}, indent=2) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


#: What NeoGen's autoencoder encodes, as mask channels of the TLCR crop: -1 the crop unmasked (NeoGen's
#: diffusion stages), 0 and 1 the TLCR patch's channels (PattenNet): image inside liver + tumour, inside tumour.
AUTOENCODER_INPUTS: tuple[int, ...] = (-1, 0, 1)


def autoencoder_inputs(items: Sequence[dict], inputs: Sequence[int] = AUTOENCODER_INPUTS, image_key: str = "patch_image",
                       mask_key: str = "patch_mask", channel_key: str = "mask_channel") -> list[dict]:
    """One item per (patch item, input): ``{"image": crop, mask_key: masks, channel_key: c, ...}``, the patch item's
    other keys kept (``case_id``, ``pni``), for :class:`neonet_ext.transforms.MaskImaged`.

    Raises:
        ValueError: an item lacks the crop or the masks (naming the case).
    """
    out = []
    for item in items:
        missing = [k for k in (image_key, mask_key) if k not in item]
        if missing:
            raise ValueError(f"patch item {item.get('case_id', '?')} has no {missing} for the autoencoder to learn")
        kept = {k: v for k, v in item.items() if k not in PATH_KEYS}
        out.extend({**kept, "image": item[image_key], mask_key: item[mask_key], channel_key: int(c)} for c in inputs)
    return out


def patches_with_tumour(items: Sequence[dict], source_key: str = "source_image") -> list[dict]:
    """The items with a tumour (``tumour_found`` not false), ready for patch training pipelines.

    NeoSeg's items carry the path of the whole MRI under ``image``; training pipelines use
    ``image`` for the patch they load, so that path moves to ``source_key``.
    """
    kept = []
    for item in items:
        if not item.get("tumour_found", True):
            continue
        item = dict(item)
        if "image" in item:
            item[source_key] = item.pop("image")
        kept.append(item)
    return kept


def synthetic_needed(n_negative: int, n_positive: int, ratio: float) -> int:
    """Synthetic positives to add at ``ratio``: ``round(ratio * (n_negative - n_positive))``; 1.0 balances."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"synthetic ratio must be in [0, 1] (1 balances the classes), got {ratio}")
    return int(round(ratio * max(n_negative - n_positive, 0)))


def mix_synthetic(
    train: Sequence[dict],
    synthetic: Sequence[dict],
    ratio: float,
    seed: int = 0,
    class_key: str = "pni",
    minority: int = 1,
) -> list[dict]:
    """The training split plus ``synthetic_needed`` synthetic minority patches chosen with ``seed``.

    Every synthetic patch used must come from the masks of a training-split case
    (``source_case``), so nothing of a validation or test case leaks into training.

    Raises:
        ValueError: the ratio is out of range, there are too few synthetic minority
            patches, or a chosen one was made from a case outside the training split.
    """
    labels = [int(item[class_key]) for item in train]
    needed = synthetic_needed(sum(c != minority for c in labels), sum(c == minority for c in labels), ratio)
    if needed == 0:
        return list(train)
    pool = [item for item in synthetic if item.get("synthetic") and int(item[class_key]) == minority]
    if len(pool) < needed:
        raise ValueError(f"ratio {ratio} needs {needed} synthetic patches of class {minority}; the synthetic "
                         f"datalist has {len(pool)}: generate more with NeoGen (--num_samples {needed})")
    chosen = [pool[i] for i in np.random.default_rng(seed).choice(len(pool), needed, replace=False)]
    train_cases = {item.get("case_id") for item in train}
    leaked = sorted({str(item.get("source_case")) for item in chosen} - train_cases)
    if leaked:
        raise ValueError(f"synthetic patches made from masks of cases outside the training split: {leaked[:5]}; "
                         "generate them from the training split's patches only")
    return [*train, *chosen]


def class_weights(items: Sequence[dict], num_classes: int = 2, class_key: str = "pni") -> torch.Tensor:
    """Cross-entropy class weights ``n / (num_classes * n_c)`` of the items (1 each when balanced).

    With synthetic ratio 1 the classes are balanced and the weights are 1; with fewer
    synthetic patches the minority class weighs more.
    """
    counts = np.bincount([int(item[class_key]) for item in items], minlength=num_classes)[:num_classes]
    if (counts == 0).any():
        raise ValueError(f"every class needs at least one training item, counts {counts.tolist()}")
    return torch.as_tensor(counts.sum() / (num_classes * counts), dtype=torch.float32)
