"""The study's TLCR patches: from NeoSeg's segmentation or from the ground-truth labels, at the profile's size.

Both sources give the same patch datalist as NeoSeg's inference (``patch``, ``patch_mask``,
``patch_image``, ``pni``, ``tumour_found``) and cut on the same grid: NeoSeg's preprocessing
(RAS, its spacing, intensity normalisation, body crop) taken from the NeoSeg bundle's own
config, so the two differ only in the label map the crop is centred on and masked with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from neonet_ext.data.patches import load_patch_datalist, write_patch_datalist

__all__ = ["ground_truth_patches", "merge_patch_datalists", "resample_patches"]

_SAVED = (("patch", "tlcr", np.float32), ("patch_mask", "tlcr_mask", np.uint8), ("patch_image", "tlcr_image", np.float32))


def _savers(output_dir: Path) -> dict:
    from monai.transforms import SaveImage

    from neonet_ext.utils.writers import AtomicNibabelWriter

    return {
        key: SaveImage(output_dir=output_dir, output_postfix=postfix, output_dtype=dtype, separate_folder=True,
                       resample=False, writer=AtomicNibabelWriter, print_log=False, savepath_in_metadict=True)
        for key, postfix, dtype in _SAVED
    }


def ground_truth_patches(datalist_file: str, output_dir: str, neoseg_bundle_root: str, data_list_key: str = "training") -> None:
    """TLCR patches centred on and masked with the ground-truth labels, on NeoSeg's grid.

    Reads the Decathlon ``datalist_file`` (``image``, ``label``, ``pni``), applies the NeoSeg
    bundle's training-time loading (``load_image`` of its ``train.json``: the images and labels
    exactly as NeoSeg sees them) and TLCR, and writes ``output_dir/patches.json``. A case that
    cannot be read is reported and skipped; the others are written.
    """
    from monai.bundle import ConfigParser
    from monai.transforms import Compose

    from neonet_ext.data import datalist_from
    from neonet_ext.engines import tumour_volume_ml
    from neonet_ext.transforms import TLCR_ROI_SIZE, TLCRd

    parser = ConfigParser()
    parser.read_config(str(Path(neoseg_bundle_root) / "configs" / "train.json"))
    parser["bundle_root"] = str(Path(neoseg_bundle_root).resolve())
    transform = Compose([
        *parser.get_parsed_content("load_image"),
        TLCRd(image_key="image", label_key="label", patch_key="patch", mask_key="patch_mask", crop_key="patch_image",
              roi_size=TLCR_ROI_SIZE),
    ])
    out = Path(output_dir)
    savers = _savers(out)
    items, failures = [], []
    cases = datalist_from(datalist_file=datalist_file, data_list_key=data_list_key)
    for i, case in enumerate(cases):
        name = Path(str(case["image"])).name.split(".")[0]
        try:
            data = transform(dict(case))
        except Exception as e:  # noqa: BLE001 -- one bad case never stops the others
            failures.append(name)
            print(f"[{i + 1}/{len(cases)}] {name}: FAILED: {e}", flush=True)
            continue
        item = {k: v for k, v in case.items() if k not in ("image", "label")}
        item.update(case_id=name, source_image=str(case["image"]), tumour_found=bool(data["patch_mask"][1].any()),
                    tumour_volume_ml=tumour_volume_ml(data, seg_key="label"))
        for key, _, _ in _SAVED:
            data[key].meta["filename_or_obj"] = name
            savers[key](data[key])
            item[key] = data[key].meta["saved_to"]
        items.append(item)
        print(f"[{i + 1}/{len(cases)}] {name}: tumour_found={item['tumour_found']}", flush=True)
    write_patch_datalist(items, out / "patches.json")
    if failures:
        print(f"{len(failures)} case(s) failed: {', '.join(failures)}", flush=True)


def merge_patch_datalists(files: Sequence[str], output_file: str) -> None:
    """One patch datalist from several (NeoSeg run in chunks), in case order."""
    items = [item for f in files for item in load_patch_datalist(f, required_keys=())]
    write_patch_datalist(sorted(items, key=lambda item: str(item.get("case_id"))), output_file)


def resample_patches(datalist_file: str, output_dir: str, patch_size: Sequence[int]) -> None:
    """The patches of ``datalist_file`` at ``patch_size``: the same field of view on a coarser (or finer) grid.

    The unmasked crop is resized with area interpolation and the masks with nearest
    neighbour; the patch is then formed from them exactly as TLCR forms it, as NeoGen forms
    its synthetic patches, so real and synthetic patches are made alike. Writes
    ``output_dir/patches.json``; items without a tumour are kept (flagged as before).
    """
    from monai.data import MetaTensor
    from monai.transforms import Compose, EnsureTyped, LoadImaged, Resized

    from neonet_ext.generative.sampling import masked_patch

    keys = ["patch_image", "patch_mask"]
    load = Compose([
        LoadImaged(keys, ensure_channel_first=True, image_only=True),
        EnsureTyped(keys, dtype=torch.float32),
        Resized(keys, spatial_size=tuple(patch_size), mode=["area", "nearest"]),
    ])
    out = Path(output_dir)
    savers = _savers(out)
    items = []
    for item in load_patch_datalist(datalist_file, required_keys=["patch_image", "patch_mask"]):
        data = load(item)
        image, masks = data["patch_image"], data["patch_mask"]
        outputs = {"patch": masked_patch(image, masks), "patch_mask": masks, "patch_image": image}
        item = dict(item)
        for key, array in outputs.items():
            meta = dict(image.meta)
            meta["filename_or_obj"] = item["case_id"]
            saved = MetaTensor(torch.as_tensor(array), meta=meta)
            savers[key](saved)
            item[key] = saved.meta["saved_to"]
        items.append(item)
    write_patch_datalist(items, out / "patches.json")
