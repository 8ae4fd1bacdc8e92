"""Cleaning the tumour label before TLCR: stray blobs dropped, real lesions kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from neonet_ext.labels import BACKGROUND, LIVER, TUMOUR
from neonet_ext.transforms import TLCR, CleanTumourLabel, CleanTumourLabeld

ROI = (16, 16, 8)
SPACING = (2.0, 2.0, 3.0)  # 12 mm^3 a voxel: 0.5 ml is 42 voxels


def case() -> np.ndarray:
    """A liver with a 5x5x4 tumour (100 voxels, 1.2 ml) in a 64x64x32 volume."""
    label = np.zeros((1, 64, 64, 32), np.uint8)
    label[0, 10:40, 10:40, 5:20] = LIVER
    label[0, 20:25, 20:25, 10:14] = TUMOUR
    return label


def meta(label: np.ndarray) -> MetaTensor:
    return MetaTensor(torch.from_numpy(label), affine=torch.diag(torch.tensor([*SPACING, 1.0])))


def crop_centre(label: np.ndarray) -> np.ndarray:
    patch = TLCR(roi_size=ROI)(torch.ones(1, *label.shape[1:]), torch.from_numpy(label))
    return patch


def test_a_stray_blob_outside_the_liver_is_dropped_and_the_crop_comes_back_to_the_lesion():
    label = case()
    label[0, 55:57, 55:57, 28:30] = TUMOUR  # 8 voxels far away, no liver around (the spinal canal of a real scan)
    cleaned, dropped = CleanTumourLabel(ROI)(meta(label))
    assert dropped == 1 and isinstance(cleaned, MetaTensor)
    expected = case()
    assert np.array_equal(np.asarray(cleaned), expected)
    assert torch.equal(TLCR(roi_size=ROI)(torch.rand(1, 64, 64, 32), cleaned.as_tensor()).bool(),
                       TLCR(roi_size=ROI)(torch.rand(1, 64, 64, 32), torch.from_numpy(expected)).bool())


def test_two_real_lesions_both_survive():
    label = case()
    label[0, 28:30, 22:24, 11:12] = TUMOUR  # a 4-voxel satellite (0.05 ml) inside the crop around the primary
    label[0, 12:18, 32:38, 6:10] = TUMOUR  # a second lesion of 144 voxels (1.7 ml) outside that crop
    cleaned, dropped = CleanTumourLabel(ROI)(meta(label))
    assert dropped == 0 and np.array_equal(np.asarray(cleaned), label)


def test_a_small_far_blob_inside_the_liver_becomes_liver():
    label = case()
    label[0, 36:38, 36:38, 17:18] = TUMOUR  # 4 voxels in the liver, far outside the crop
    cleaned, dropped = CleanTumourLabel(ROI)(meta(label))
    assert dropped == 1
    assert (np.asarray(cleaned)[0, 36:38, 36:38, 17:18] == LIVER).all()
    assert (np.asarray(cleaned) == TUMOUR).sum() == 100


def test_the_volume_threshold_is_in_ml_from_the_voxel_size():
    label = case()
    label[0, 34:38, 34:38, 17:19] = TUMOUR  # 32 voxels: 0.384 ml at 2x2x3 mm, 0.032 ml at 1 mm^3
    assert CleanTumourLabel(ROI)(meta(label))[1] == 1
    assert CleanTumourLabel(ROI, min_volume_ml=0.3)(meta(label))[1] == 0
    assert CleanTumourLabel(ROI, min_volume_ml=0.03)(label)[1] == 0  # a plain array counts 1 mm^3 a voxel


def test_the_dictionary_form_reports_the_count_and_one_component_is_left_alone():
    single = meta(case())
    out = CleanTumourLabeld("pred", roi_size=ROI)({"pred": single})
    assert out["tumour_components_dropped"] == 0 and out["pred"] is single
    empty = np.zeros((1, 8, 8, 8), np.uint8)
    assert CleanTumourLabeld("pred", roi_size=ROI)({"pred": empty})["tumour_components_dropped"] == 0
    with pytest.raises(ValueError, match=r"\(1, X, Y, Z\)"):
        CleanTumourLabel(ROI)(np.zeros((8, 8, 8), np.uint8))
    assert BACKGROUND == 0
