"""The input gate: a case gets a PNI probability only when it plausibly is what NeoNet was trained for.

NeoSeg segments whatever it is given: a brain MR, a chest CT or a cardiac cine came out with
a "liver" of 36 ml to 7.7 l and a "tumour" in the brain or the heart, and PattenNet then
scored them like any case. The gate looks at what is known before any probability is given
and refuses, with the reason in words, a case that is

* not MR, when the input says its modality (a DICOM series; a NIfTI file does not say);
* without a tumour of at least :data:`MIN_TUMOUR_ML` in its TLCR masks (a classifier trained on
  tumour patches says nothing without one);
* with a segmented liver (tumour included) outside :data:`LIVER_VOLUME_RANGE_ML`;
* with a tumour that is not inside the liver: less than :data:`MIN_TUMOUR_RIM_IN_LIVER` of the
  voxels touching the tumour (on the TLCR grid) are liver;
* whose patch does not look like the training patches to PattenNet's encoder (with a
  :class:`~neonet_ext.engines.LatentOutlierScore`): another phase or sequence of a liver scan.

Thresholds, with the measurements behind them, are in NeoCls's docs ("The input gate").
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform
from scipy import ndimage

from neonet_ext.engines.latent_outlier import LatentOutlierScore
from neonet_ext.engines.pni import liver_volume_ml
from neonet_ext.metrics import label_volume_ml

__all__ = ["LIVER_VOLUME_RANGE_ML", "MIN_TUMOUR_ML", "MIN_TUMOUR_RIM_IN_LIVER", "InputGated", "tumour_rim_in_liver"]

#: Least tumour volume in the TLCR masks (ml): about a 7 mm sphere, some 15 voxels of the 2x2x3 mm grid.
#: NeoSeg always keeps its largest tumour component, and on two held-out synthetic cohorts (seeds 1001, 1002)
#: the smallest it found measured 0.26 ml (real tumours it under-segmented), so 0.5 ml refused them.
MIN_TUMOUR_ML = 0.2

#: Plausible volumes of a segmented liver, tumour included (ml). Adult livers are about 1-2.5 l, up to
#: ~3.5 l with hepatomegaly; NeoSeg's livers in two held-out synthetic cohorts measured 387-1415 ml
#: (NeoCls docs, "The input gate"), and a field of view that cuts the liver leaves less.
LIVER_VOLUME_RANGE_ML = (100.0, 4000.0)
#: Least share of the voxels touching the tumour that must be liver (the tumours NeoSeg found in two held-out
#: synthetic cohorts were at least 65 % surrounded by liver: NeoCls docs, "The input gate").
MIN_TUMOUR_RIM_IN_LIVER = 0.5


def tumour_rim_in_liver(masks: np.ndarray | torch.Tensor) -> float | None:
    """Share of the voxels that touch the tumour (26-connected, outside it) that are liver.

    Args:
        masks: (2, X, Y, Z) TLCR masks: channel 0 liver or tumour, channel 1 tumour.

    Returns:
        the share in [0, 1]; None without a tumour.
    """
    masks = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    tumour, organ = masks[1] > 0, masks[0] > 0
    if not tumour.any():
        return None
    rim = ndimage.binary_dilation(tumour, structure=np.ones((3, 3, 3), bool)) & ~tumour
    return float(organ[rim].mean()) if rim.any() else 1.0


class InputGated(MapTransform):
    """Write into ``refusal_key`` why a case must not get a PNI probability ("" when it may).

    Placed after NeoSeg's post-processing (the label map, the TLCR masks) and before
    :class:`~neonet_ext.engines.PNIPredictord`, which gives no probability to a refused case.
    Also writes ``tumour_rim_in_liver_key`` (see :func:`tumour_rim_in_liver`) and, with a
    ``latent_outlier`` score, ``latent_distance_key`` (None without one or without a tumour).

    Args:
        keys: the TLCR patch key (one), (2, X, Y, Z).
        mask_key: its masks (2, X, Y, Z), liver-or-tumour and tumour; without them (patches loaded from
            files), the patch's non-zero voxels stand for them, as they do for :class:`~neonet_ext.engines.PNIPredictord`.
        image_key: the loaded scan, whose meta data may say its ``modality``.
        seg_key: the label map (for the liver volume; absent with precomputed patches).
        modalities: accepted DICOM modalities.
        liver_volume_range_ml: accepted segmented liver volumes (tumour included), in ml.
        min_tumour_volume_ml: least tumour volume, in ml.
        min_tumour_rim_in_liver: least share of the tumour's surroundings that is liver.
        latent_outlier: the patch's distance from the training patches, refused beyond its threshold; None: no check.
    """

    def __init__(
        self,
        keys: Hashable = "patch",
        mask_key: str = "patch_mask",
        image_key: str = "image",
        seg_key: str = "pred",
        refusal_key: str = "refused",
        tumour_rim_in_liver_key: str = "tumour_rim_in_liver",
        modalities: Sequence[str] = ("MR",),
        liver_volume_range_ml: Sequence[float] = LIVER_VOLUME_RANGE_ML,
        min_tumour_volume_ml: float = MIN_TUMOUR_ML,
        min_tumour_rim_in_liver: float = MIN_TUMOUR_RIM_IN_LIVER,
        latent_outlier: LatentOutlierScore | None = None,
        latent_distance_key: str = "latent_distance",
    ) -> None:
        super().__init__(keys)
        self.mask_key = mask_key
        self.image_key = image_key
        self.seg_key = seg_key
        self.refusal_key = refusal_key
        self.tumour_rim_in_liver_key = tumour_rim_in_liver_key
        self.modalities = tuple(m.upper() for m in modalities)
        self.liver_volume_range_ml = tuple(float(v) for v in liver_volume_range_ml)
        self.min_tumour_volume_ml = float(min_tumour_volume_ml)
        self.min_tumour_rim_in_liver = float(min_tumour_rim_in_liver)
        self.latent_outlier = latent_outlier
        self.latent_distance_key = latent_distance_key

    def __repr__(self) -> str:
        # what a re-run compares (CaseRunner settings): the thresholds, not the object's address
        return (f"InputGated(modalities={self.modalities}, liver_volume_range_ml={self.liver_volume_range_ml}, "
                f"min_tumour_volume_ml={self.min_tumour_volume_ml}, min_tumour_rim_in_liver={self.min_tumour_rim_in_liver}, "
                f"latent_outlier={self.latent_outlier!r})")

    def reasons(self, case: Mapping[Hashable, Any]) -> list[str]:
        """Every reason to refuse ``case`` (empty: it may be scored); ``case`` has its masks under ``mask_key``."""
        reasons = []
        image = case.get(self.image_key)
        modality = str(image.meta.get("modality") or "") if isinstance(image, MetaTensor) else ""
        if modality and modality.upper() not in self.modalities:
            reasons.append(f"modality {modality}, not {' or '.join(self.modalities)}")
        liver = liver_volume_ml(case, self.seg_key)
        low, high = self.liver_volume_range_ml
        if liver is not None and not low <= liver <= high:
            reasons.append(f"segmented liver of {liver:.0f} ml, outside {low:.0f}-{high:.0f} ml: not a liver scan as NeoSeg knows it")
        # on the TLCR grid, where NeoSeg dropped components under the same size (resampled to the input grid,
        # a kept tumour may measure a little less)
        masks = case[self.mask_key]
        tumour = label_volume_ml(masks[1:], 1) if bool(masks[1].any()) else None
        if tumour is None or tumour < self.min_tumour_volume_ml:
            reasons.append(f"no tumour of at least {self.min_tumour_volume_ml:g} ml found")
        share = case.get(self.tumour_rim_in_liver_key)
        if share is not None and share < self.min_tumour_rim_in_liver:
            reasons.append(f"the tumour is not inside the liver (liver around {100 * share:.0f}% of it, "
                           f"at least {100 * self.min_tumour_rim_in_liver:.0f}% expected)")
        distance = case.get(self.latent_distance_key)
        if self.latent_outlier is not None and distance is not None and distance > self.latent_outlier.threshold:
            reasons.append(f"the patch does not look like the HBP MRI NeoNet was trained on (latent distance {distance:.1f}, "
                           f"at most {self.latent_outlier.threshold:.1f} accepted)")
        return reasons

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            masks = d.get(self.mask_key)
            if masks is None:
                patch = d[key]
                masks = (patch != 0).float()
                if isinstance(patch, MetaTensor):
                    masks = MetaTensor(masks.as_tensor(), meta=dict(patch.meta))
            d[self.tumour_rim_in_liver_key] = tumour_rim_in_liver(masks)
            d[self.latent_distance_key] = self.latent_outlier(d[key], masks) if self.latent_outlier is not None else None
            d[self.refusal_key] = "; ".join(self.reasons({**d, self.mask_key: masks}))
        return d
