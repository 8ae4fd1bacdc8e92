"""Mixing synthetic patches into the real ones (NeoCls training data)."""

from __future__ import annotations

import pytest

from neonet_ext.data.patches import mix_synthetic, synthetic_needed
from neonet_ext.data.splits import split_cases


def real(n_neg: int, n_pos: int) -> list[dict]:
    return [{"case_id": f"n{i}", "pni": 0} for i in range(n_neg)] + [{"case_id": f"p{i}", "pni": 1} for i in range(n_pos)]


@pytest.mark.parametrize("ratio, expected", [(0, 0), (0.25, 10), (0.5, 20), (0.75, 30), (1.0, 40)])
def test_synthetic_needed_follows_the_ratio(ratio, expected):
    assert synthetic_needed(67, 27, ratio) == expected
    assert synthetic_needed(10, 12, ratio) == 0  # no minority to top up


def test_mix_synthetic_balances_from_training_masks_only():
    train, _ = split_cases(real(20, 8), 0.25, seed=0, stratify_by="pni")
    n_neg = sum(i["pni"] == 0 for i in train)
    sources = [i["case_id"] for i in train if i["pni"] == 1]
    synthetic = [{"case_id": f"s{k}", "pni": 1, "synthetic": True, "source_case": sources[k % len(sources)]}
                 for k in range(30)]
    mixed = mix_synthetic(train, synthetic, 1.0, seed=1)
    assert sum(i["pni"] == 1 for i in mixed) == n_neg and len(mixed) == 2 * n_neg
    assert mixed[: len(train)] == train and mix_synthetic(train, synthetic, 1.0, seed=1) == mixed
    assert mix_synthetic(train, synthetic, 0.0) == train
    with pytest.raises(ValueError, match=r"needs \d+ synthetic patches of class 1; the synthetic datalist has 3"):
        mix_synthetic(train, synthetic[:3], 1.0)
    leaky = [{**s, "source_case": "p_validation"} for s in synthetic]
    with pytest.raises(ValueError, match="outside the training split: \\['p_validation'\\]"):
        mix_synthetic(train, leaky, 0.5)
    with pytest.raises(ValueError, match=r"ratio must be in \[0, 1\]"):
        mix_synthetic(train, synthetic, 1.5)


def test_class_weights_balance_the_loss():
    from neonet_ext.data.patches import class_weights

    assert class_weights(real(30, 10)).tolist() == pytest.approx([40 / 60, 40 / 20])
    assert class_weights(real(5, 5)).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="every class needs"):
        class_weights(real(5, 0))


def test_the_autoencoder_learns_each_input_it_will_encode(tmp_path):
    """The unmasked crop (NeoGen) and both TLCR channels (PattenNet), each its own 1-channel item, masked as
    TLCR masks the patch it cuts."""
    import nibabel as nib
    import numpy as np
    import torch
    from monai.transforms import Compose, LoadImaged

    from neonet_ext.data.patches import autoencoder_inputs
    from neonet_ext.labels import LIVER, TUMOUR
    from neonet_ext.transforms import TLCR, MaskImaged

    label = np.zeros((8, 8, 4), np.uint8)
    label[2:6, 2:6, 1:3], label[3:5, 3:5, 1:2] = LIVER, TUMOUR
    crop = np.random.default_rng(0).random((8, 8, 4)).astype(np.float32) + 0.1
    patch = TLCR(roi_size=(8, 8, 4))(torch.from_numpy(crop)[None], torch.from_numpy(label)[None])
    files = {"patch_image": tmp_path / "crop.nii.gz", "patch_mask": tmp_path / "mask.nii.gz"}
    nib.save(nib.Nifti1Image(crop, np.eye(4)), files["patch_image"])
    masks = np.stack([label > 0, label == TUMOUR], axis=-1).astype(np.uint8)
    nib.save(nib.Nifti1Image(masks, np.eye(4)), files["patch_mask"])
    item = {"case_id": "case_000", "pni": 1, **{k: str(v) for k, v in files.items()}}
    items = autoencoder_inputs([item])
    assert [i["mask_channel"] for i in items] == [-1, 0, 1]
    assert all(i["pni"] == 1 and i["case_id"] == "case_000" for i in items)
    load = Compose([LoadImaged(["image", "patch_mask"], ensure_channel_first=True, image_only=True), MaskImaged("image")])
    loaded = [load(i) for i in items]
    expected = [crop, *np.asarray(patch)]
    for data, wanted in zip(loaded, expected):
        assert data["image"].shape == (1, 8, 8, 4) and "patch_mask" not in data
        np.testing.assert_allclose(np.asarray(data["image"])[0], wanted, atol=1e-6)
    unmasked = LoadImaged(["image", "patch_mask"], ensure_channel_first=True, image_only=True)({**items[0], "mask_channel": 2})
    with pytest.raises(ValueError, match="mask.nii.gz: no mask channel 2"):
        MaskImaged("image")(unmasked)
    with pytest.raises(ValueError, match=r"case_000 has no \['patch_mask'\]"):
        autoencoder_inputs([{k: v for k, v in item.items() if k != "patch_mask"}])


def test_the_classifier_reads_patches_when_given_else_the_images_neoseg_segments(tmp_path):
    import json

    import nibabel as nib
    import numpy as np

    from neonet_ext.data import datalist_from
    from neonet_ext.data.patches import classifier_datalist, write_patch_datalist

    images = tmp_path / "images"
    images.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), images / "case1.nii.gz")
    listing = tmp_path / "lists" / "dataset.json"
    listing.parent.mkdir()
    listing.write_text(json.dumps({"testing": [{"image": "scan.nii.gz", "case_id": "c2"}]}))
    patches = write_patch_datalist([{"case_id": "c3", "patch": str(tmp_path / "c3.nii.gz")}], tmp_path / "patches.json")

    assert classifier_datalist(patches, listing, images) == [{"case_id": "c3", "patch": str(tmp_path / "c3.nii.gz")}]
    # a Decathlon JSON's relative paths start at its own folder, whatever the dataset folder
    assert classifier_datalist(None, listing, images) == [{"image": str(listing.parent / "scan.nii.gz"), "case_id": "c2"}]
    assert classifier_datalist("", "", images) == datalist_from(images) == [
        {"image": str(images / "case1.nii.gz"), "case_id": "case1"}]
    with pytest.raises(ValueError, match=r"\(c4\) lacks \['patch'\]"):
        classifier_datalist(write_patch_datalist([{"case_id": "c4"}], tmp_path / "no_patch.json"))
