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

__all__ = ["PATH_KEYS", "relative_to_folder", "load_patch_datalist", "patches_with_tumour"]

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
        items.append(item)
    return items


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
