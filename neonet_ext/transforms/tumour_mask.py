"""A clean tumour label before TLCR: stray tumour blobs dropped, real lesions kept.

TLCR centres its crop on the bounding box of every tumour voxel, as the seed's algorithm says.
A segmentation's stray tumour voxels (a few in the spinal canal, a blob far from the lesion) then
move the crop off the lesion, or spread the box so wide that the crop holds none of it. This
removes, before TLCR, the tumour components a liver tumour cannot be, and keeps every component
that could be a real lesion: the largest component always; another one when it touches the
liver and is either at least ``min_volume_ml`` (a lesion of its own) or lies inside the crop
centred on such a lesion (a satellite, which the crop shows anyway). TLCR itself is unchanged.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type
from scipy import ndimage

from neonet_ext.labels import BACKGROUND, LIVER, TUMOUR

__all__ = ["FULL_CONNECTIVITY", "MIN_TUMOUR_VOLUME_ML", "CleanTumourLabel", "CleanTumourLabeld", "component_volumes_ml"]

#: A tumour component at least this large (ml) is kept wherever it lies in the liver; smaller ones are kept near the
#: largest lesion only, because satellites are as small as a stray blob of a few voxels. The largest component is
#: always kept, so small primaries are too. ``bundles/neoseg/scripts/tumour_components.py`` prints the cohort's
#: figures: in the 1000-case seed-0 cohort, primaries go down to 0.16 ml (10 of 1000 under 0.5 ml) and the 111
#: satellites down to 0.009 ml (median 0.45 ml).
MIN_TUMOUR_VOLUME_ML = 0.5

#: 26-connectivity: voxels touching across a face, an edge or a corner are neighbours (components, shells).
FULL_CONNECTIVITY = np.ones((3, 3, 3), bool)


class CleanTumourLabel(Transform):
    """Drop the tumour components of a (1, X, Y, Z) label map that cannot be a real lesion; return the cleaned map
    and how many components were dropped.

    Components are 26-connected. The largest is kept, and so is every component that touches the liver and
    holds at least ``min_volume_ml`` (a lesion). A smaller one is kept when it touches the liver and its centre
    lies inside the ``roi_size`` crop centred, as TLCR centres it, on one of those lesions (a satellite);
    every other component is dropped. A dropped component becomes liver where it touches
    the liver, background elsewhere. Kept components are left as they were, so two real lesions both reach TLCR.

    Args:
        roi_size: TLCR's crop size in voxels of this grid.
        min_volume_ml: smallest component kept far from the largest (voxel volume from the MetaTensor's
            affine, else 1 mm^3 per voxel).
        liver_label, tumour_label: the label values.
    """

    def __init__(self, roi_size: Sequence[int], min_volume_ml: float = MIN_TUMOUR_VOLUME_ML, liver_label: int = LIVER,
                 tumour_label: int = TUMOUR) -> None:
        self.roi_size = np.asarray(roi_size, float)
        self.min_volume_ml = min_volume_ml
        self.liver_label = liver_label
        self.tumour_label = tumour_label

    def __call__(self, label: torch.Tensor | np.ndarray) -> tuple[torch.Tensor | np.ndarray, int]:
        array = np.asarray(label.detach().cpu() if isinstance(label, torch.Tensor) else label)
        if array.ndim != 4 or array.shape[0] != 1:
            raise ValueError(f"expected a (1, X, Y, Z) label map, got shape {array.shape}")
        components, count = ndimage.label(array[0] == self.tumour_label, structure=FULL_CONNECTIVITY)
        if count <= 1:
            return label, 0
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        largest = int(np.argmax(sizes[1:])) + 1
        touching = np.zeros(count + 1, bool)
        liver_shell = ndimage.binary_dilation(array[0] == self.liver_label, structure=FULL_CONNECTIVITY)
        touching[np.unique(components[liver_shell])] = True
        large = sizes * _voxel_ml(label) >= self.min_volume_ml
        lesions = [c for c in range(1, count + 1) if c == largest or (large[c] and touching[c])]
        # TLCR's centre of each lesion: floor((min + max) / 2) of its bounding box
        boxes = ndimage.find_objects(components)
        crop_centres = np.array([[(b.start + b.stop - 1) // 2 for b in boxes[c - 1]] for c in lesions], float)
        centres = ndimage.center_of_mass(np.ones_like(components), components, range(1, count + 1))
        dropped = []
        for c in range(1, count + 1):
            if c in lesions:
                continue
            near = bool(np.any(np.all(np.abs(np.asarray(centres[c - 1]) - crop_centres) < self.roi_size / 2, axis=1)))
            if not touching[c] or not near:
                dropped.append(c)
        if not dropped:
            return label, 0
        cleaned = array.copy()
        for c in dropped:
            cleaned[0][components == c] = self.liver_label if touching[c] else BACKGROUND
        out, *_ = convert_to_dst_type(cleaned, label)
        return out, len(dropped)


def _voxel_ml(label: torch.Tensor | np.ndarray) -> float:
    if isinstance(label, MetaTensor):
        return float(np.prod(label.pixdim.tolist())) / 1000.0
    return 1e-3


class CleanTumourLabeld(MapTransform):
    """Dictionary form of :class:`CleanTumourLabel`: cleans each key's label map in place and writes the number of
    dropped components to ``dropped_key`` (summed over the keys).

    Args:
        keys: keys of (1, X, Y, Z) label maps, e.g. NeoSeg's network-grid argmax before TLCR.
        roi_size: TLCR's crop size in voxels of that grid.
        dropped_key: where the count goes (a per-case output).
        min_volume_ml: smallest component kept.
    """

    def __init__(self, keys: KeysCollection, roi_size: Sequence[int], dropped_key: Hashable = "tumour_components_dropped",
                 min_volume_ml: float = MIN_TUMOUR_VOLUME_ML, liver_label: int = LIVER, tumour_label: int = TUMOUR,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.dropped_key = dropped_key
        self.cleaner = CleanTumourLabel(roi_size, min_volume_ml, liver_label, tumour_label)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        dropped = 0
        for key in self.key_iterator(d):
            d[key], n = self.cleaner(d[key])
            dropped += n
        d[self.dropped_key] = dropped
        return d


def component_volumes_ml(label: np.ndarray, spacing: Sequence[float], tumour_label: int = TUMOUR) -> list[float]:
    """Volumes in ml of the 26-connected tumour components of an (X, Y, Z) label map, largest first."""
    components, count = ndimage.label(np.asarray(label) == tumour_label, structure=FULL_CONNECTIVITY)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
    return sorted((float(n) * float(np.prod(spacing)) / 1000.0 for n in sizes), reverse=True)
