"""The input gate: which cases get no PNI probability, and the reason each gets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from neonet_ext.engines import InputGated, PNIPredictord, tumour_rim_in_liver
from neonet_ext.labels import LIVER, TUMOUR

SPACING = (2.0, 2.0, 3.0)  # 12 mm^3 a voxel: the default liver, 100 x 100 x 10 voxels, is 1200 ml


def case(liver_box=(slice(0, 100), slice(0, 100), slice(0, 10)), tumour_box=(slice(20, 30), slice(20, 30), slice(2, 8)),
         modality: str | None = "MR", tumour_outside: bool = False) -> dict:
    """A label map with a liver box and a tumour box (inside it unless ``tumour_outside``), its TLCR masks
    (here on the same grid) and a scan whose meta data say ``modality``."""
    label = torch.zeros(1, 100, 100, 40)
    label[(0, *liver_box)] = LIVER
    if tumour_outside:
        tumour_box = tuple(slice(s.start, s.stop) for s in tumour_box[:2]) + (slice(30, 36),)
    label[(0, *tumour_box)] = TUMOUR
    masks = torch.stack([label[0] > 0, label[0] == TUMOUR]).float()
    affine = torch.diag(torch.tensor([*SPACING, 1.0]))
    meta = {"modality": modality} if modality else {}
    return {"pred": MetaTensor(label, affine=affine), "patch_mask": MetaTensor(masks, affine=affine),
            "patch": MetaTensor(masks * torch.rand(masks.shape), affine=affine),
            "image": MetaTensor(torch.zeros(1, 4, 4, 4), meta=meta)}


def refusal(data: dict) -> str:
    return InputGated("patch")(data)["refused"]


def test_an_mr_liver_case_with_a_tumour_inside_passes():
    out = InputGated("patch")(case())
    assert out["refused"] == "" and out["tumour_rim_in_liver"] == 1.0


def test_each_reason_is_given_in_words():
    assert refusal(case(modality="CT")) == "modality CT, not MR"
    assert refusal(case(modality=None)) == ""  # a NIfTI file does not say
    small = (slice(15, 35), slice(15, 35), slice(0, 10))  # 4000 voxels: 48 ml
    assert refusal(case(liver_box=small)).startswith("segmented liver of 48 ml, outside 100-4000 ml")
    assert refusal(case(liver_box=(slice(0, 100), slice(0, 100), slice(0, 35)))).startswith("segmented liver of 4200 ml")
    tiny = refusal(case(tumour_box=(slice(20, 22), slice(20, 22), slice(4, 6))))
    assert tiny == "no tumour of at least 0.2 ml found"  # 8 voxels: 0.1 ml
    assert "the tumour is not inside the liver (liver around 0% of it" in refusal(case(tumour_outside=True))
    several = refusal(case(modality="CT", liver_box=small))
    assert several.count(";") == 1 and several.startswith("modality CT")


def test_tumour_rim_in_liver_has_known_answers():
    masks = np.zeros((2, 10, 10, 10), bool)
    assert tumour_rim_in_liver(masks) is None
    masks[1, 4:6, 4:6, 4:6] = True
    masks[0] = masks[1]
    assert tumour_rim_in_liver(masks) == 0.0
    masks[0, :, :, :] = True
    assert tumour_rim_in_liver(masks) == 1.0
    masks[0, :, :, 6:] = False  # the rim's top layer (z = 6) is outside the liver: 16 of its 56 voxels
    assert tumour_rim_in_liver(masks) == pytest.approx(40 / 56)


class ConstantPredictor:
    def __call__(self, patch):
        return 0.7, torch.ones(1, *patch.shape[1:])


def test_a_refused_case_gets_no_probability():
    data = InputGated("patch")(case(modality="CT"))
    out = PNIPredictord("patch", ConstantPredictor())(data)
    assert out["pni_probability"] is None and not out["attention"].any()
    data["refused"] = ""
    assert PNIPredictord("patch", ConstantPredictor())(data)["pni_probability"] == 0.7


def test_patches_without_masks_or_label_map_are_gated_on_their_own_voxels():
    data = case()
    patch_only = {"patch": data["patch"]}
    out = InputGated("patch")(patch_only)
    assert out["refused"] == "" and out["tumour_rim_in_liver"] == 1.0
    empty = InputGated("patch")({"patch": data["patch"] * torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)})
    assert empty["refused"] == "no tumour of at least 0.2 ml found"
