"""TLCR against hand-computed crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged, SaveImage

from neonet_ext.labels import LIVER, TUMOUR
from neonet_ext.transforms import TLCR, TLCRd, tlcr_window, tumour_bounding_box


def volume(shape=(20, 18, 12), seed=0):
    """Channel-first image with distinct values per voxel and an all-liver label map."""
    image = np.random.default_rng(seed).uniform(1.0, 2.0, (1, *shape)).astype(np.float32)
    label = np.full((1, *shape), LIVER, dtype=np.uint8)
    return image, label


def reference_tlcr(image, label, roi):
    """The seed's algorithm written plainly, voxel loops and all."""
    out = np.zeros((2, *roi), dtype=image.dtype)
    pts = np.argwhere(label[0] == TUMOUR)
    if len(pts) == 0:
        return out
    lo, hi = pts.min(0), pts.max(0) + 1
    start = [max((a + b) // 2 - c // 2, 0) for a, b, c in zip(lo, hi, roi)]
    for i in range(roi[0]):
        for j in range(roi[1]):
            for k in range(roi[2]):
                p = (start[0] + i, start[1] + j, start[2] + k)
                if all(q < s for q, s in zip(p, label.shape[1:])):
                    lab = label[(0, *p)]
                    out[0, i, j, k] = image[(0, *p)] if lab in (LIVER, TUMOUR) else 0
                    out[1, i, j, k] = image[(0, *p)] if lab == TUMOUR else 0
    return out


def test_hand_computed_window():
    # tumour x in [4, 7] -> box [4, 8), centre 6; C=5 -> start 6 - 2 = 4
    box = tumour_bounding_box(np.pad(np.full((4, 1, 1), TUMOUR), ((4, 3), (0, 0), (0, 0))))
    assert box is not None
    assert box[0].tolist() == [4, 0, 0] and box[1].tolist() == [8, 1, 1]
    assert tlcr_window(box[0], box[1], (5, 1, 1)).tolist() == [4, 0, 0]
    # centre near the origin: start is clamped at 0
    assert tlcr_window(np.array([0, 1, 2]), np.array([2, 3, 3]), (8, 8, 8)).tolist() == [0, 0, 0]
    # floor of an odd sum: (3 + 6) // 2 = 4
    assert tlcr_window(np.array([3, 3, 3]), np.array([6, 6, 6]), (4, 3, 2)).tolist() == [2, 3, 3]


def test_channels_and_values():
    image, label = volume()
    label[0, :3] = 0  # background slab
    label[0, 8:11, 7:10, 4:7] = TUMOUR
    patch = TLCR(roi_size=(8, 8, 6))(image, label)
    assert patch.shape == (2, 8, 8, 6) and patch.dtype == np.float32 and isinstance(patch, np.ndarray)
    # box x [8, 11) centre 9 -> start 5; y [7, 10) centre 8 -> 4; z [4, 7) centre 5 -> 2
    np.testing.assert_array_equal(patch[0], image[0, 5:13, 4:12, 2:8])
    expected_tumour = np.zeros((8, 8, 6), np.float32)
    expected_tumour[3:6, 3:6, 2:5] = image[0, 8:11, 7:10, 4:7]
    np.testing.assert_array_equal(patch[1], expected_tumour)


@pytest.mark.parametrize(
    "where",
    [
        (slice(0, 2), slice(5, 8), slice(4, 6)),  # low x border
        (slice(17, 20), slice(5, 8), slice(4, 6)),  # high x border
        (slice(8, 10), slice(0, 1), slice(4, 6)),  # low y border
        (slice(8, 10), slice(15, 18), slice(4, 6)),  # high y border
        (slice(8, 10), slice(5, 8), slice(0, 2)),  # low z border
        (slice(8, 10), slice(5, 8), slice(10, 12)),  # high z border
        (slice(0, 20), slice(0, 18), slice(0, 12)),  # tumour fills the volume
    ],
)
@pytest.mark.parametrize("roi", [(8, 8, 6), (7, 5, 3), (25, 3, 13)])
def test_matches_reference_at_borders(where, roi):
    image, label = volume()
    label[0, 12:, 10:] = 0
    label[(0, *where)] = TUMOUR
    patch = TLCR(roi_size=roi)(image, label)
    assert patch.shape == (2, *roi)
    np.testing.assert_array_equal(patch, reference_tlcr(image, label, roi))


def test_far_end_is_zero_padded():
    image, label = volume()
    label[0, 18:20, 16:18, 10:12] = TUMOUR  # box max at the far corner
    patch = TLCR(roi_size=(8, 8, 8))(image, label)
    # centres 19, 17, 11 -> starts 15, 13, 7; only 5, 5, 5 voxels remain in the image
    np.testing.assert_array_equal(patch[0, :5, :5, :5], image[0, 15:, 13:, 7:])
    assert not patch[:, 5:].any() and not patch[:, :, 5:].any() and not patch[:, :, :, 5:].any()


def test_two_lesions_share_one_box():
    image, label = volume()
    label[0, 2:4, 2:4, 2:4] = TUMOUR
    label[0, 12:14, 10:12, 8:10] = TUMOUR
    roi = (15, 13, 9)
    patch = TLCR(roi_size=roi)(image, label)
    # box [2, 14) x [2, 12) x [2, 10): centre (8, 7, 6) -> start (1, 1, 2)
    np.testing.assert_array_equal(patch, reference_tlcr(image, label, roi))
    assert np.count_nonzero(patch[1]) == 16  # both lesions inside the crop


def test_empty_tumour_gives_zeros():
    image, label = volume()
    with pytest.warns(UserWarning, match="no tumour"):
        patch, masks = TLCR(roi_size=(6, 5, 4))(image, label, return_masks=True)
    assert patch.shape == (2, 6, 5, 4) and not patch.any() and not masks.any()


def test_other_label_values_are_not_tissue():
    image, label = volume()
    label[0, 5:9, 5:9, 4:8] = 3  # e.g. a vessel label in a user's map
    label[0, 6:8, 6:8, 5:7] = TUMOUR
    patch, masks = TLCR(roi_size=(8, 8, 8))(image, label, return_masks=True)
    np.testing.assert_array_equal(patch, reference_tlcr(image, label, (8, 8, 8)))
    assert masks.dtype == np.uint8 and set(np.unique(masks)) == {0, 1}
    np.testing.assert_array_equal(masks[0].astype(bool), patch[0] != 0)
    np.testing.assert_array_equal(masks[1].astype(bool), patch[1] != 0)


def test_types_follow_the_image():
    image, label = volume()
    label[0, 8:11, 7:10, 4:7] = TUMOUR
    expected = TLCR(roi_size=8)(image, label)
    out = TLCR(roi_size=8)(torch.from_numpy(image).double(), torch.from_numpy(label))
    assert isinstance(out, torch.Tensor) and not isinstance(out, MetaTensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), expected)
    as_int = TLCR(roi_size=8)((image * 100).astype(np.int16), label.astype(np.float32))
    assert as_int.dtype == np.int16


def test_metatensor_affine_points_at_the_crop():
    image, label = volume()
    label[0, 8:11, 7:10, 4:7] = TUMOUR
    affine = torch.tensor([[-1.5, 0, 0, 10.0], [0, 1.7, 0, -20.0], [0, 0, 3.0, 5.0], [0, 0, 0, 1]], dtype=torch.float64)
    data = {
        "image": MetaTensor(torch.from_numpy(image), affine=affine, meta={"filename_or_obj": "case_007.nii.gz"}),
        "label": MetaTensor(torch.from_numpy(label), affine=affine),
    }
    out = TLCRd(roi_size=(8, 8, 6))(data)
    patch, masks = out["patch"], out["patch_mask"]
    assert isinstance(patch, MetaTensor) and isinstance(masks, MetaTensor)
    # start (5, 4, 2): the crop's first voxel sits where voxel (5, 4, 2) of the volume was
    start_world = affine @ torch.tensor([5.0, 4.0, 2.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(patch.affine[:, 3], start_world)
    torch.testing.assert_close(patch.affine[:3, :3], affine[:3, :3])
    torch.testing.assert_close(masks.affine, patch.affine)
    assert patch.meta["filename_or_obj"] == "case_007.nii.gz"
    assert data["image"].affine[0, 3] == 10.0  # input untouched
    assert masks.dtype == torch.uint8 and masks[1].sum() == 27


def test_saved_patch_lands_in_place(tmp_path):
    """A patch written with SaveImage and read back maps voxel for voxel onto the volume."""
    image, label = volume()
    label[0, 8:11, 7:10, 4:7] = TUMOUR
    affine = torch.tensor([[1.5, 0, 0, 10.0], [0, 1.5, 0, -20.0], [0, 0, 3.0, 5.0], [0, 0, 0, 1]], dtype=torch.float64)
    mi = MetaTensor(torch.from_numpy(image), affine=affine, meta={"filename_or_obj": "vol.nii.gz"})
    out = TLCRd(roi_size=(8, 8, 6))({"image": mi, "label": MetaTensor(torch.from_numpy(label), affine=affine)})
    SaveImage(output_dir=tmp_path, output_postfix="patch", separate_folder=False, print_log=False)(out["patch"])
    loaded = LoadImaged("patch", image_only=True, ensure_channel_first=True)({"patch": tmp_path / "vol_patch.nii.gz"})
    ijk = torch.linalg.inv(affine) @ loaded["patch"].affine @ torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    assert ijk[:3].round().tolist() == [5, 4, 2]


def test_errors_are_clear():
    image, label = volume()
    label[0, 8:11, 7:10, 4:7] = TUMOUR
    with pytest.raises(ValueError, match="spatial shapes differ"):
        TLCR(roi_size=8)(image, label[:, :-1])
    with pytest.raises(ValueError, match="one-hot"):
        TLCR(roi_size=8)(image, np.concatenate([label, label]))
    with pytest.raises(ValueError, match=r"\(1, X, Y, Z\)"):
        TLCR(roi_size=8)(image[0], label)
    with pytest.raises(ValueError, match="non-integer"):
        TLCR(roi_size=8)(image, label.astype(np.float32) * 0.9 + 0.2)
    with pytest.raises(ValueError, match="positive integers"):
        TLCR(roi_size=(8, 0, 8))
    bad = {
        "image": MetaTensor(torch.from_numpy(image), meta={"filename_or_obj": "/data/case_042.nii.gz"}),
        "label": torch.from_numpy(label[:, :-1]),
    }
    with pytest.raises(ValueError, match="case_042.nii.gz: TLCR image and label spatial shapes differ"):
        TLCRd(roi_size=8)(bad)


def test_dictionary_form_in_a_compose():
    image, label = volume()
    label[0, 8:11, 7:10, 4:7] = TUMOUR
    out = Compose([TLCRd(patch_key="tlcr", mask_key=None, roi_size=(8, 8, 6))])({"image": image, "label": label})
    assert "patch_mask" not in out and out["tlcr"].shape == (2, 8, 8, 6)
    np.testing.assert_array_equal(out["tlcr"], TLCR(roi_size=(8, 8, 6))(image, label))
    assert out["image"] is image


def test_unmasked_crop_shares_the_window_and_padding():
    image, label = volume()
    label[0, :, :, :3] = 0  # background inside the box: masked in the patch, kept in the crop
    label[0, 16:20, 14:18, 2:6] = TUMOUR
    out = TLCRd(crop_key="crop", roi_size=(8, 8, 8))({"image": image, "label": label})
    crop, patch = out["crop"], out["patch"]
    assert crop.shape == (1, 8, 8, 8) and crop.dtype == image.dtype
    # centres 18, 16, 4 -> starts 14, 12, 0; 6, 6, 8 voxels remain in the image
    np.testing.assert_array_equal(crop[0, :6, :6, :8], image[0, 14:, 12:, 0:8])
    assert not crop[:, 6:].any() and not crop[:, :, 6:].any()
    np.testing.assert_array_equal(patch[0], crop[0] * out["patch_mask"][0])
    assert crop[0, :6, :6, :2].all() and not patch[0, :, :, :2].any()
    empty = TLCRd(crop_key="crop", roi_size=(8, 8, 8))({"image": image, "label": np.zeros_like(label)})
    assert empty["crop"].shape == (1, 8, 8, 8) and not empty["crop"].any()
