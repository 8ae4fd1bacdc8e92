"""A second look at the tumour on the input's own grid: the tumour refiner.

NeoSeg's network labels a 2x2x3 mm grid; nearly all the tumour Dice it loses is one input voxel from the true
boundary (``bundles/neoseg/scripts/tumour_errors.py``). :class:`TumourRefine` takes the label map on the input grid
(:class:`~neonet_ext.transforms.InputGridArgmax`), and where it has tumour, gives the box around it (grown by
``margin_mm``) to a small network that reads the image at the input's resolution together with NeoSeg's liver and
tumour probabilities resampled there, and labels that box again. The network sees at least one window of image
around the box (where the image has it), as in training, never zero padding next to the tumour. A label map without tumour is left as it is: the
refiner sharpens a found tumour, it does not search for one.

The refiner is convolutional and was trained on RAS-ordered arrays (slice axis last), so the box is reordered to RAS
(axes permuted and flipped, never resampled) before it and back after it. Its class probabilities are averaged over
mirror images of the box (:data:`REFINER_FLIPS`, flipped back before averaging): a test-time augmentation that costs
one refiner pass per flip and gains tumour Dice on held-out cases (NeoSeg docs, "Tumour refiner").
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.transforms import MapTransform, Orientation, SpatialResample, Transform
from monai.utils import GridSamplePadMode

from neonet_ext.labels import LIVER, TUMOUR
from neonet_ext.transforms.inversion import InputGridArgmax, grown_box, voxel_shift, with_input_meta

__all__ = ["REFINER_FLIPS", "REFINER_INTENSITY_PERCENTILES", "RefinerInputsd", "TumourRefine", "TumourRefined", "refiner_inputs"]

#: Percentiles of the whole input image mapped to 0 and 1 (clipped) for the refiner, in training and inference.
REFINER_INTENSITY_PERCENTILES = (0.5, 99.5)

#: The mirror images of the RAS-ordered box whose refiner probabilities are averaged: each entry is the RAS axes
#: (0 right, 1 anterior, 2 superior) flipped, ``()`` the box as it is.
REFINER_FLIPS: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (0, 1))


def refiner_inputs(image: torch.Tensor, probabilities: torch.Tensor, intensity_range: Sequence[float]) -> torch.Tensor:
    """The refiner's (3, X, Y, Z) input: the image scaled so that ``intensity_range`` maps to [0, 1] (clipped),
    then the liver and tumour probabilities.

    Args:
        image: (1, X, Y, Z) input-grid intensities.
        probabilities: (C, X, Y, Z) NeoSeg class probabilities on the same grid (C = 3: background, liver, tumour).
        intensity_range: the whole image's intensities at :data:`REFINER_INTENSITY_PERCENTILES`.
    """
    low, high = (float(v) for v in intensity_range)
    scaled = ((image.float() - low) / max(high - low, 1e-8)).clamp(0.0, 1.0)
    return torch.cat([scaled, probabilities[[LIVER, TUMOUR]].float()], dim=0)


def intensity_range(image: torch.Tensor) -> tuple[float, float]:
    """The whole image's intensities at :data:`REFINER_INTENSITY_PERCENTILES` (as ``ScaleIntensityRangePercentiles``
    computes them)."""
    values = np.asarray(image.detach().cpu().numpy(), dtype=np.float32).ravel()
    low, high = np.percentile(values, REFINER_INTENSITY_PERCENTILES)
    return float(low), float(high)


class TumourRefine(Transform):
    """NeoSeg's class probabilities (network grid) and the input image -> the label map on the input grid, its
    tumour's neighbourhood labelled again by the refiner.

    Args:
        network: the refiner (:func:`~neonet_ext.networks.tumour_refiner`), loaded; ``None`` gives
            :class:`~neonet_ext.transforms.InputGridArgmax`'s label map unchanged.
        roi_size: the refiner's sliding window on the RAS-ordered box (voxels, multiples of 8).
        margin_mm: how far around the tumour's bounding box the refiner labels again.
        sw_batch_size, overlap: of the sliding window.
        device: where the refiner runs (default: where its weights are).
        bfloat16: run it under bfloat16 autocast on CPU.
        flips: RAS axes to mirror the box along, one entry per refiner pass; the passes' class probabilities are
            averaged (``((),)``: one pass, no test-time augmentation).
        align_corners: as the ``Spacingd`` that made the network grid.
    """

    def __init__(
        self,
        network: torch.nn.Module | None,
        roi_size: Sequence[int] = (64, 64, 32),
        margin_mm: float = 16.0,
        sw_batch_size: int = 4,
        overlap: float = 0.25,
        device: str | torch.device | None = None,
        bfloat16: bool = False,
        flips: Sequence[Sequence[int]] = REFINER_FLIPS,
        align_corners: bool = False,
    ) -> None:
        if not flips or any(not set(axes) <= {0, 1, 2} for axes in flips):
            raise ValueError(f"flips must be a non-empty list of RAS axis tuples (0, 1, 2), got {flips}")
        self.network = network
        self.flips = [tuple(int(a) for a in axes) for axes in flips]
        self.argmax = InputGridArgmax(align_corners)
        self.resample = SpatialResample(mode="bilinear", padding_mode=GridSamplePadMode.BORDER,
                                        align_corners=align_corners, dtype=torch.float32)
        self.inferer = SlidingWindowInferer(roi_size=list(roi_size), sw_batch_size=sw_batch_size, overlap=overlap,
                                            mode="gaussian")
        self.roi_size = [int(r) for r in roi_size]
        self.margin_mm = float(margin_mm)
        self.device = torch.device(device) if device is not None else None
        self.bfloat16 = bfloat16

    def __call__(self, probabilities: MetaTensor, image: MetaTensor) -> MetaTensor:
        """
        Args:
            probabilities: (C, x, y, z) class probabilities on the network grid, with its affine.
            image: (1, X, Y, Z) the input image as read, with the input grid's affine (same world coordinates).

        Returns:
            (1, X, Y, Z) uint8 labels with the input grid's affine.
        """
        input_affine = torch.as_tensor(np.asarray(image.affine), dtype=torch.float64)
        labels = self.argmax(probabilities, input_affine, image.shape[1:])
        tumour = labels[0] == TUMOUR
        if self.network is None or not tumour.any():
            return labels
        voxel_mm = torch.linalg.norm(input_affine[:3, :3], dim=0)
        box = grown_box(tumour, [math.ceil(self.margin_mm / float(s)) for s in voxel_mm])
        context = self.context_box(box, input_affine, labels.shape[1:])
        context_affine = input_affine @ voxel_shift([lo for lo, _ in context])
        context_probabilities = self.resample(probabilities, dst_affine=context_affine,
                                              spatial_size=[hi - lo for lo, hi in context])
        inputs = refiner_inputs(image[(slice(None), *(slice(lo, hi) for lo, hi in context))].as_tensor(),
                                context_probabilities.as_tensor(), intensity_range(image))
        relabelled = self.relabel(MetaTensor(inputs, affine=context_affine))
        in_context = tuple(slice(lo - c, hi - c) for (lo, hi), (c, _) in zip(box, context))
        labels[(slice(None), *(slice(lo, hi) for lo, hi in box))] = relabelled[(slice(None), *in_context)]
        return labels

    def context_box(self, box: Sequence[tuple[int, int]], affine: torch.Tensor, shape: Sequence[int]) -> list[tuple[int, int]]:
        """``box`` widened, where the image allows, to the refiner's window along each axis: the refiner was trained
        on windows of real image around the tumour, so it gets image where a smaller box would get zero padding."""
        ras_axis = nib.io_orientation(np.asarray(affine))[:, 0].astype(int)
        context = []
        for axis, (lo, hi) in enumerate(box):
            size = min(max(hi - lo, self.roi_size[ras_axis[axis]]), int(shape[axis]))
            start = min(max(lo - (size - (hi - lo)) // 2, 0), int(shape[axis]) - size)
            context.append((start, start + size))
        return context

    def relabel(self, inputs: MetaTensor) -> torch.Tensor:
        """(3, X, Y, Z) refiner inputs with their grid's affine -> (1, X, Y, Z) uint8 labels in the same axis order."""
        ras = Orientation(axcodes="RAS", labels=None)(inputs)
        device = self.device or next(self.network.parameters()).device
        self.network.eval()
        box = ras.as_tensor()[None].to(device)
        probabilities = 0.0
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bfloat16 and device.type == "cpu"):
            for axes in self.flips:
                dims = [2 + a for a in axes]  # (batch, channel, x, y, z)
                logits = self.inferer(box.flip(dims) if dims else box, self.network)
                mirrored = logits.float().softmax(1)
                probabilities = probabilities + (mirrored.flip(dims) if dims else mirrored)
        relabelled = MetaTensor(probabilities[0].argmax(0, keepdim=True).to(torch.uint8).cpu(), affine=ras.affine)
        back = Orientation(axcodes="".join(nib.aff2axcodes(np.asarray(inputs.affine))), labels=None)(relabelled)
        if tuple(back.shape[1:]) != tuple(inputs.shape[1:]):
            raise RuntimeError(f"the refiner's labels came back in shape {tuple(back.shape)}, not {(1, *inputs.shape[1:])}")
        return back.as_tensor()


class TumourRefined(MapTransform):
    """Dictionary version of :class:`TumourRefine`: replaces ``keys`` (class probabilities on the network grid) by
    the refined label map on the grid ``image_key`` holds (the input image as read), with the rest of ``orig_key``'s
    metadata, so ``SaveImaged`` writes it beside the input (as :class:`~neonet_ext.transforms.InputGridArgmaxd`).
    """

    def __init__(self, keys: KeysCollection, image_key: str = "input_image", orig_key: str = "image",
                 network: torch.nn.Module | None = None, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key, self.orig_key = image_key, orig_key
        self.refine = TumourRefine(network, **kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image, meta = d[self.image_key], d[self.orig_key].meta
        if tuple(image.shape[1:]) != tuple(int(s) for s in meta["spatial_shape"]):
            raise ValueError(f"{self.image_key} has shape {tuple(image.shape[1:])}, not the input grid's "
                             f"{tuple(meta['spatial_shape'])} that {self.orig_key} was read on")
        for key in self.key_iterator(d):
            d[key] = with_input_meta(self.refine(d[key], image), meta)
        return d


class RefinerInputsd(MapTransform):
    """Training side of :class:`TumourRefine`: replaces ``keys`` (the (1, X, Y, Z) input image) by the refiner's
    (3, X, Y, Z) input (:func:`refiner_inputs`) built with ``probabilities_key`` (NeoSeg's class probabilities on the
    same grid, e.g. as ``configs/refiner_data.json`` saves them), which is then dropped.

    Args:
        probabilities_scale: what the stored probabilities are multiplied by (255 for the uint8 files).
    """

    def __init__(self, keys: KeysCollection, probabilities_key: str = "pred", probabilities_scale: float = 1.0,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.probabilities_key, self.probabilities_scale = probabilities_key, float(probabilities_scale)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        probabilities = d.pop(self.probabilities_key)
        for key in self.key_iterator(d):
            image = d[key]
            if tuple(image.shape[1:]) != tuple(probabilities.shape[1:]):
                raise ValueError(f"{self.probabilities_key} has grid {tuple(probabilities.shape[1:])}, not the "
                                 f"{tuple(image.shape[1:])} of {key}")
            inputs = refiner_inputs(torch.as_tensor(image), torch.as_tensor(probabilities) / self.probabilities_scale,
                                    intensity_range(image))
            d[key] = MetaTensor(inputs, meta=image.meta) if isinstance(image, MetaTensor) else inputs
        return d
