"""NeoSeg's label map on the input grid: the same labels as ``Invertd`` on the probabilities then argmax,
computed only where they can differ from background."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import AsDiscreted, Invertd

from neonet_ext.transforms import InputGridArgmax, InputGridArgmaxd

NEOSEG = Path(__file__).resolve().parents[1] / "bundles" / "neoseg"
CT_SERIES = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "98892001" / "CT5N"


@pytest.fixture(scope="module")
def preprocessing():
    parser = ConfigParser()
    parser.read_config(str(NEOSEG / "configs" / "inference.json"))
    parser["bundle_root"] = str(NEOSEG)
    return parser.get_parsed_content("preprocessing")


def smooth_probabilities(shape, seed: int, liver_share: float = 0.3) -> torch.Tensor:
    """(3, *shape) softmax of smooth random logits: a liver-like region with a tumour inside, edges everywhere."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((1, 3, *[max(s // 6, 2) for s in shape]), generator=generator)
    logits = torch.nn.functional.interpolate(noise, size=tuple(shape), mode="trilinear", align_corners=False)[0]
    logits[1] += 2.0 * (liver_share - 0.5)
    logits[2] -= 1.0
    return torch.softmax(3 * logits, 0)


def invertd_labels(data: dict, probabilities: torch.Tensor, preprocessing) -> torch.Tensor:
    image = data["image"]
    pred = MetaTensor(probabilities.clone(), affine=image.affine, meta=dict(image.meta))
    pred.applied_operations = list(image.applied_operations)
    item = Invertd("pred", transform=preprocessing, orig_keys="image", nearest_interp=False, to_tensor=True)({**data, "pred": pred})
    return AsDiscreted("pred", argmax=True)(item)["pred"]


def oblique_nifti(tmp_path: Path) -> Path:
    """An anisotropic, rotated (oblique) and axis-flipped grid, as a scanner may write it."""
    rng = np.random.default_rng(0)
    angle = np.deg2rad(12.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-1.3, 0.9, 4.5])
    affine[:3, 3] = [40.0, -60.0, 10.0]
    volume = rng.normal(100, 5, (70, 90, 18)).astype(np.float32)
    volume[10:60, 10:80, 2:16] += 400  # a body for CropForeground to keep
    path = tmp_path / "oblique.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), path)
    return path


@pytest.mark.parametrize("source", ["oblique_nifti", "dicom_series"])
def test_same_labels_as_invertd_then_argmax(source, preprocessing, tmp_path):
    path = oblique_nifti(tmp_path) if source == "oblique_nifti" else CT_SERIES
    data = preprocessing({"image": str(path)})
    for seed in range(3):
        probabilities = smooth_probabilities(data["image"].shape[1:], seed)
        expected = invertd_labels(data, probabilities, preprocessing)
        item = InputGridArgmaxd("pred")({**data, "pred": MetaTensor(probabilities, affine=data["image"].affine)})
        labels = item["pred"]
        assert labels.shape == expected.shape and labels.dtype == torch.uint8
        assert torch.equal(labels.as_tensor(), expected.as_tensor().to(torch.uint8))
        assert set(labels.unique().tolist()) == {0, 1, 2}
        np.testing.assert_allclose(labels.affine.numpy(), expected.affine.numpy(), atol=1e-6)
        assert labels.meta["filename_or_obj"] == data["image"].meta["filename_or_obj"]


def test_only_the_box_around_the_foreground_is_resampled(monkeypatch):
    """A small foreground on a large grid: the resampled block is small and the labels still match the full
    resampling (here SpatialResample over the whole input grid, border padding)."""
    from monai.transforms import SpatialResample

    affine = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0], dtype=torch.float64))
    probabilities = torch.zeros(3, 40, 40, 20)
    probabilities[0] = 1.0
    probabilities[:, 18:23, 10:14, 5:9] = torch.tensor([0.1, 0.6, 0.3])[:, None, None, None]
    probabilities[:, 20, 12, 7] = torch.tensor([0.05, 0.28, 0.67])  # no exact ties with the liver voxels
    probabilities = MetaTensor(probabilities, affine=affine)
    input_affine = torch.diag(torch.tensor([0.8, 0.8, 1.5, 1.0], dtype=torch.float64))
    input_shape = (100, 100, 40)

    argmax = InputGridArgmax()
    sizes = []
    resample = argmax.resample.__call__
    monkeypatch.setattr(argmax, "resample", lambda img, **kw: sizes.append(kw["spatial_size"]) or resample(img, **kw))
    labels = argmax(probabilities, input_affine, input_shape)
    full = SpatialResample(mode="bilinear", padding_mode="border")(probabilities, dst_affine=input_affine,
                                                                   spatial_size=input_shape).argmax(0, keepdim=True)
    assert torch.equal(labels.as_tensor(), full.as_tensor().to(torch.uint8))
    assert set(labels.unique().tolist()) == {0, 1, 2}
    assert np.prod(sizes[0]) < 0.02 * np.prod(input_shape)


def test_all_background_gives_an_empty_label_map_on_the_input_grid():
    probabilities = MetaTensor(torch.tensor([0.9, 0.05, 0.05])[:, None, None, None].repeat(1, 8, 8, 4))
    input_affine = np.diag([0.5, 0.5, 2.0, 1.0])
    labels = InputGridArgmax()(probabilities, input_affine, (16, 16, 8))
    assert labels.shape == (1, 16, 16, 8) and not labels.any()
    np.testing.assert_allclose(labels.affine.numpy(), input_affine)


def test_plain_tensors_are_refused():
    with pytest.raises(TypeError, match="MetaTensor"):
        InputGridArgmax()(torch.rand(3, 4, 4, 4), np.eye(4), (4, 4, 4))
