"""NeoSeg's tumour refiner on the input grid: what it is given (RAS order, the tumour's box, the scaled image and
NeoSeg's probabilities), and that its labels come back on the input grid in the input's own axis order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from neonet_ext.networks import REFINER_IN_CHANNELS, tumour_refiner
from neonet_ext.transforms import REFINER_FLIPS, InputGridArgmax, RefinerInputsd, TumourRefine, TumourRefined, refiner_inputs

NETWORK_AFFINE = torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0], dtype=torch.float64))


def probabilities_with_a_tumour() -> MetaTensor:
    """(3, 24, 24, 12) on a 2x2x3 mm RAS grid: a liver block through every slice with a tumour block inside, soft edges."""
    logits = torch.zeros(3, 24, 24, 12)
    logits[1, 4:20, 4:20, :] = 4.0
    logits[2, 9:15, 10:16, 4:8] = 8.0
    logits = torch.nn.functional.avg_pool3d(logits[None], 3, stride=1, padding=1, count_include_pad=False)[0]
    return MetaTensor(torch.softmax(logits, 0), affine=NETWORK_AFFINE)


def permuted_flipped_input_grid() -> tuple[torch.Tensor, tuple[int, int, int]]:
    """An anisotropic input grid stored in "IPR" order: slice axis first, running inferior, then posterior, then right."""
    affine = torch.zeros(4, 4, dtype=torch.float64)
    affine[2, 0] = -2.5  # array axis 0 runs inferior
    affine[1, 1] = -1.5  # array axis 1 runs posterior
    affine[0, 2] = 1.5  # array axis 2 runs right
    affine[:3, 3] = torch.tensor([2.0, 45.0, 33.0], dtype=torch.float64)
    affine[3, 3] = 1.0
    return affine, (16, 32, 34)


class ShiftClasses(torch.nn.Module):
    """Copies NeoSeg's classes one voxel along array axis ``axis``: the labels (background = 1 - liver - tumour) at
    voxel i are the inputs' at i - 1 (``direction`` 1) or i + 1 (-1). On a RAS-ordered array, axis 2 with direction 1
    is one voxel towards superior, axis 0 one voxel to the right."""

    def __init__(self, axis: int = 2, direction: int = 1) -> None:
        super().__init__()
        size = [1, 1, 1]
        size[axis] = 3
        self.conv = torch.nn.Conv3d(REFINER_IN_CHANNELS, 3, kernel_size=size, padding=[(k - 1) // 2 for k in size])
        tap = [0, 0, 0]
        tap[axis] = 0 if direction > 0 else 2
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
            self.conv.weight[(0, 1, *tap)] = self.conv.weight[(0, 2, *tap)] = -1.0
            self.conv.weight[(1, 1, *tap)] = self.conv.weight[(2, 2, *tap)] = 1.0

    def forward(self, x):
        return self.conv(x)


def test_the_refiner_works_in_ras_order_and_its_labels_return_to_the_input_axes():
    probabilities = probabilities_with_a_tumour()
    affine, shape = permuted_flipped_input_grid()
    image = MetaTensor(torch.rand(1, *shape), affine=affine)
    plain = InputGridArgmax()(probabilities, affine, shape)[0]
    refined = TumourRefine(ShiftClasses(axis=2), roi_size=(64, 64, 64), margin_mm=6.0)(probabilities, image)[0]
    assert refined.shape == plain.shape and (plain == 2).sum() > 50

    # array axis 0 runs inferior: one voxel superior is index - 1 along it
    tumour = (plain == 2).nonzero()
    lo, hi = tumour.min(0).values, tumour.max(0).values
    margins = [int(np.ceil(6.0 / s)) for s in (2.5, 1.5, 1.5)]
    box = tuple(slice(max(int(a) - m, 0), min(int(b) + 1 + m, n)) for a, b, m, n in zip(lo, hi, margins, shape))
    assert all(s.stop - s.start < n for s, n in zip(box, shape))  # the box is smaller than the image...
    expected = plain.clone()
    shifted = torch.zeros_like(plain)  # ...but the window holds it all: only the image's inferior slice is padding
    shifted[:-1] = plain[1:]
    expected[box] = shifted[box]
    below_box = (slice(box[0].stop, box[0].stop + 1), box[1], box[2])
    assert (plain[below_box] == 1).any()  # the box's inferior slice reads liver from the image below it
    assert torch.equal(refined, expected)
    assert not torch.equal(refined, plain)  # the shift is visible: a wrong axis order would move it elsewhere


def test_without_a_refiner_or_a_tumour_the_label_map_is_the_input_grid_argmax():
    probabilities = probabilities_with_a_tumour()
    affine, shape = permuted_flipped_input_grid()
    image = MetaTensor(torch.rand(1, *shape), affine=affine)
    plain = InputGridArgmax()(probabilities, affine, shape)
    assert torch.equal(TumourRefine(None)(probabilities, image).as_tensor(), plain.as_tensor())

    everything_tumour = torch.nn.Conv3d(REFINER_IN_CHANNELS, 3, 1)
    with torch.no_grad():
        everything_tumour.weight.zero_()
        everything_tumour.bias.copy_(torch.tensor([0.0, 0.0, 10.0]))
    no_tumour = probabilities.clone()
    no_tumour[1] += no_tumour[2]
    no_tumour[2] = 0
    labels = TumourRefine(everything_tumour)(no_tumour, image)
    assert torch.equal(labels.as_tensor(), InputGridArgmax()(no_tumour, affine, shape).as_tensor())
    assert not (labels == 2).any()


def test_refiner_inputs_scale_the_image_and_keep_liver_and_tumour_probabilities():
    image = torch.arange(1000, dtype=torch.float32).reshape(1, 10, 10, 10)
    probabilities = torch.softmax(torch.randn(3, 10, 10, 10), 0)
    inputs = refiner_inputs(image, probabilities, (100.0, 900.0))
    assert inputs.shape == (3, 10, 10, 10)
    assert inputs[0].min() == 0 and inputs[0].max() == 1 and inputs[0].flatten()[500] == pytest.approx(0.5)
    assert torch.equal(inputs[1:], probabilities[1:])

    stored = MetaTensor((probabilities * 255).round(), affine=torch.eye(4))
    item = RefinerInputsd("image", probabilities_key="pred", probabilities_scale=255)(
        {"image": MetaTensor(image, affine=torch.eye(4)), "pred": stored})
    assert "pred" not in item and item["image"].shape == (3, 10, 10, 10)
    np.testing.assert_allclose(item["image"][0].flatten()[[5, 500, 994]].numpy(), [0.0, 500 / 990, 1.0], atol=1e-2)
    np.testing.assert_allclose(item["image"][1:].numpy(), probabilities[1:].numpy(), atol=0.5 / 255 + 1e-6)
    with pytest.raises(ValueError, match="pred has grid"):
        RefinerInputsd("image")({"image": MetaTensor(image), "pred": stored[:, :5]})


def test_the_dictionary_version_writes_the_input_grid_and_refuses_another_image():
    probabilities = probabilities_with_a_tumour()
    affine, shape = permuted_flipped_input_grid()
    image = MetaTensor(torch.rand(1, *shape), affine=affine)
    orig = MetaTensor(torch.zeros(1, 4, 4, 4), meta={"original_affine": affine.numpy(), "spatial_shape": np.array(shape),
                                                     "filename_or_obj": "case.nii.gz"})
    refine = TumourRefined("pred", network=tumour_refiner().eval(), roi_size=(16, 16, 16))
    out = refine({"pred": probabilities, "input_image": image, "image": orig})["pred"]
    assert out.shape == (1, *shape) and out.dtype == torch.uint8 and out.meta["filename_or_obj"] == "case.nii.gz"
    np.testing.assert_allclose(out.affine.numpy(), affine.numpy())
    with pytest.raises(ValueError, match="input_image has shape"):
        refine({"pred": probabilities, "input_image": image[:, :8], "image": orig})


def test_mirrored_passes_are_flipped_back_before_their_probabilities_are_averaged():
    probabilities = probabilities_with_a_tumour()
    affine, shape = permuted_flipped_input_grid()
    image = MetaTensor(torch.rand(1, *shape), affine=affine)

    def refined(network, flips):
        return TumourRefine(network, roi_size=(64, 64, 64), margin_mm=6.0, flips=flips)(probabilities, image)[0]

    right, left = refined(ShiftClasses(axis=0, direction=1), [()]), refined(ShiftClasses(axis=0, direction=-1), [()])
    assert not torch.equal(right, left)
    # mirrored along R-L and back, a shift to the right is a shift to the left; along A-P it is still one to the right
    assert torch.equal(refined(ShiftClasses(axis=0, direction=1), [(0,)]), left)
    assert torch.equal(refined(ShiftClasses(axis=0, direction=1), [(1,)]), right)
    # a pointwise network is unchanged by the default flips (averaged probabilities of equal passes)
    pointwise = torch.nn.Conv3d(REFINER_IN_CHANNELS, 3, 1)
    torch.testing.assert_close(refined(pointwise, REFINER_FLIPS), refined(pointwise, [()]), rtol=0, atol=0)
    # both directions averaged: each voxel takes one of the two passes' labels, and the tumour is the union's core
    both = refined(ShiftClasses(axis=0, direction=1), [(), (0,)])
    assert ((both == right) | (both == left)).all()
    assert not torch.equal(both, right) and not torch.equal(both, left)
    with pytest.raises(ValueError, match="RAS axis"):
        TumourRefine(pointwise, flips=[(3,)])
