"""Write synthetic TLCR patches of one class, conditioned on masks of real patches, with their datalist."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Randomizable, SaveImage

from neonet_ext.data.patches import relative_to_folder
from neonet_ext.generative.sampling import MaskConditionedSampler, masked_patch
from neonet_ext.utils.io import atomic_write
from neonet_ext.utils.writers import AtomicNibabelWriter


def check_condition_masks(masks: torch.Tensor, source: str, spatial_shape: Sequence[int] | None = None) -> None:
    """Raise ValueError naming ``source`` unless ``masks`` is (2, *spatial_shape) of 0/1 with tumour inside tissue."""
    if masks.ndim != 4 or masks.shape[0] != 2:
        raise ValueError(f"{source}: condition masks must have 2 channels (liver or tumour; tumour) and 3 spatial "
                         f"dimensions, got shape {tuple(masks.shape)}")
    if spatial_shape is not None and tuple(masks.shape[1:]) != tuple(spatial_shape):
        raise ValueError(f"{source}: condition masks are {tuple(masks.shape[1:])}, the generator makes "
                         f"{tuple(spatial_shape)} patches (the TLCR crop size)")
    values = torch.unique(torch.as_tensor(masks))
    if not set(values.tolist()) <= {0.0, 1.0}:
        raise ValueError(f"{source}: condition masks must hold only 0 and 1, found {values.tolist()[:6]}")
    if not masks[1].any():
        raise ValueError(f"{source}: the tumour mask (channel 1) is empty")
    if (masks[1] > masks[0]).any():
        raise ValueError(f"{source}: tumour voxels outside the liver-or-tumour mask (channel 0)")


class PatchSynthesizer:
    """Generate ``num_samples`` patches of class ``class_index`` and write them with a datalist.

    Condition masks come from real patches of ``datalist`` (items with ``mask_key``, e.g.
    NeoSeg's ``patches.json``): by default those of the requested class (``class_key``),
    taken in a seeded order and reused in turn, each passed through ``mask_transform``
    (loading, then optional flips, small rotations, elastic deformation, all with
    nearest-neighbour interpolation) seeded per sample. Per sample ``<name>/`` under
    ``output_dir`` gets ``<name>_tlcr.nii.gz`` (2-channel patch, formed as TLCR does),
    ``<name>_tlcr_mask.nii.gz`` and ``<name>_tlcr_image.nii.gz``, in the space of the
    source patch. ``output_dir/<output_datalist>`` lists them (paths relative to it) under ``datalist_key`` with
    ``synthetic: true`` and the class, in the keys of NeoSeg's patch datalist, so NeoCls
    reads real and synthetic patches alike.

    Everything is checked before the first sample (class, count, files, every mask and,
    with ``spatial_shape``, its size), so a bad request writes nothing; every file is
    written atomically.
    """

    def __init__(
        self,
        sampler: MaskConditionedSampler,
        datalist: Sequence[dict],
        num_samples: int,
        class_index: int,
        output_dir: str | Path,
        mask_transform: Callable[[dict], dict],
        class_key: str = "pni",
        mask_key: str = "patch_mask",
        spatial_shape: Sequence[int] | None = None,
        masks_from: str = "same_class",
        num_classes: int = 2,
        seed: int = 0,
        output_datalist: str = "synthetic_patches.json",
        datalist_key: str = "training",
        name_prefix: str = "synthetic",
    ) -> None:
        if not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        if not isinstance(class_index, (int, np.integer)) or not 0 <= class_index < num_classes:
            raise ValueError(f"class {class_index!r} does not exist: classes are 0 to {num_classes - 1} "
                             f"(PNI negative, PNI positive)")
        if masks_from not in ("same_class", "all"):
            raise ValueError(f"masks_from must be 'same_class' or 'all', got {masks_from!r}")
        self.sampler = sampler
        self.num_samples = int(num_samples)
        self.class_index = int(class_index)
        self.output_dir = Path(output_dir)
        self.mask_transform = mask_transform
        self.class_key, self.mask_key = class_key, mask_key
        self.spatial_shape = None if spatial_shape is None else tuple(int(v) for v in spatial_shape)
        self.seed = seed
        self.output_datalist = output_datalist
        self.datalist_key = datalist_key
        self.name_prefix = name_prefix
        self.sources = self._select_sources(datalist, masks_from)

    def _select_sources(self, datalist: Sequence[dict], masks_from: str) -> list[dict]:
        usable = [d for d in datalist if d.get("tumour_found", True)]
        if masks_from == "same_class":
            usable = [d for d in usable if int(d.get(self.class_key, -1)) == self.class_index]
        if not usable:
            raise ValueError(f"no source patches with a tumour{' of class ' + str(self.class_index) if masks_from == 'same_class' else ''} "
                             f"in the datalist ({len(datalist)} items); masks_from='all' takes masks of any class")
        missing = [str(d.get(self.mask_key)) for d in usable if not Path(str(d.get(self.mask_key))).is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} condition mask file(s) missing, e.g. {missing[:3]}")
        order = np.random.default_rng(self.seed).permutation(len(usable))
        return [usable[i] for i in order]

    def condition(self, index: int) -> tuple[MetaTensor, dict]:
        """Masks (2, X, Y, Z) for sample ``index`` and the source item they came from."""
        source = self.sources[index % len(self.sources)]
        if isinstance(self.mask_transform, Randomizable):
            self.mask_transform.set_random_state(seed=self.seed + index)
        masks = self.mask_transform({self.mask_key: source[self.mask_key]})[self.mask_key]
        return masks.float(), source

    def run(self) -> list[dict]:
        """Generate and write every sample; return the datalist entries."""
        # every sample's masks (a source reused with another augmentation too), before anything is written;
        # kept as uint8 (a quarter of float's memory) until their sample is generated
        checked = []
        for i in range(self.num_samples):
            masks, source = self.condition(i)
            name = str(source[self.mask_key]) + (f" (reused for sample {i})" if i >= len(self.sources) else "")
            check_condition_masks(masks, name, self.spatial_shape)
            checked.append((masks.to(torch.uint8), source))
        save = {
            key: SaveImage(output_dir=self.output_dir, output_postfix=postfix, separate_folder=True, resample=False,
                           writer=AtomicNibabelWriter, print_log=False, savepath_in_metadict=True, output_dtype=dtype)
            for key, postfix, dtype in (("patch", "tlcr", np.float32), ("patch_mask", "tlcr_mask", np.uint8),
                                        ("patch_image", "tlcr_image", np.float32))
        }
        entries = []
        for i in range(self.num_samples):
            start = time.perf_counter()
            masks, source = checked[i]
            masks = masks.float()
            checked[i] = None
            image = self.sampler(masks[None], self.class_index, seed=self.seed + i)[0].cpu()
            name = f"{self.name_prefix}_class{self.class_index}_{i:04d}"
            meta = dict(getattr(masks, "meta", {}))
            meta["filename_or_obj"] = name
            outputs = {"patch": masked_patch(image, masks), "patch_mask": masks, "patch_image": image}
            entry: dict[str, Any] = {"case_id": name}
            for key, array in outputs.items():
                saved = MetaTensor(torch.as_tensor(array), meta=dict(meta))
                save[key](saved)
                entry[key] = relative_to_folder(saved.meta["saved_to"], self.output_dir)
            entry.update({self.class_key: self.class_index, "synthetic": True, "tumour_found": True,
                          "source_case": source.get("case_id", str(source[self.mask_key]))})
            entries.append(entry)
            print(f"[{i + 1}/{self.num_samples}] {name}: {time.perf_counter() - start:.1f} s "
                  f"(masks of {entry['source_case']})", flush=True)
        out = self.output_dir / self.output_datalist
        text = json.dumps({self.datalist_key: entries}, indent=2)
        atomic_write(out, lambda tmp: tmp.write_text(text))
        print(f"{len(entries)} synthetic patches of class {self.class_index}; datalist {out}", flush=True)
        return entries
