"""Tumour-centred crop (TLCR) of an HBP image and its liver/tumour label map.

TLCR cuts a fixed-size window centred on the tumour bounding box and returns two
channels: the image inside liver and tumour (the peritumoral context) and the image
inside the tumour alone. It is the input of NeoGen (as the conditioning masks) and of
NeoCls (as the patch).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, ensure_tuple_rep

from neonet_ext.labels import LIVER, TUMOUR
from neonet_ext.transforms.utils import source_name

__all__ = ["TLCR_ROI_SIZE", "TLCR", "TLCRd", "tumour_bounding_box", "tlcr_window"]

#: Default crop size (voxels, X Y Z): ~11 x 11 x 10 cm at typical HBP spacing, which
#: holds the largest (7 cm) tumours with a margin of peritumoral liver.
TLCR_ROI_SIZE = (64, 64, 32)


def tumour_bounding_box(label: np.ndarray, tumour_label: int = TUMOUR) -> tuple[np.ndarray, np.ndarray] | None:
    """Bounding box of the voxels equal to ``tumour_label``.

    Args:
        label: label map of shape (X, Y, Z), any integer or float dtype.
        tumour_label: the value marking tumour voxels.

    Returns:
        ``(box_min, box_max)`` as int64 arrays of length 3, ``box_max`` exclusive, or
        ``None`` when no voxel equals ``tumour_label``.
    """
    n_x = label.shape[0]
    # A max per X slab is a reduction that writes nothing, about half the cost of
    # materialising ``label == tumour_label``; with the usual labels (0, 1, 2) a slab
    # whose max equals the tumour label holds tumour, so only slabs with larger
    # values need an exact test.
    slab_max = label.reshape(n_x, -1).max(axis=1)
    has_tumour = slab_max == tumour_label
    unsure = np.flatnonzero(slab_max > tumour_label)
    if unsure.size:
        has_tumour[unsure] = (label[unsure] == tumour_label).reshape(unsure.size, -1).any(axis=1)
    xs = np.flatnonzero(has_tumour)
    if xs.size == 0:
        return None
    x0, x1 = xs[0], xs[-1] + 1
    plane = (label[x0:x1] == tumour_label).any(axis=0)
    ys = np.flatnonzero(plane.any(axis=1))
    zs = np.flatnonzero(plane.any(axis=0))
    return np.array([x0, ys[0], zs[0]]), np.array([x1, ys[-1] + 1, zs[-1] + 1])


def tlcr_window(box_min: np.ndarray, box_max: np.ndarray, roi_size: Sequence[int]) -> np.ndarray:
    """Start corner of the TLCR window: ``max(floor((min + max) / 2) - C // 2, 0)`` per axis.

    ``box_max`` is exclusive, as returned by :func:`tumour_bounding_box`.
    """
    center = (np.asarray(box_min) + np.asarray(box_max)) // 2
    return np.maximum(center - np.asarray(roi_size) // 2, 0)


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        # MetaTensor.numpy() goes through __torch_function__; the plain tensor view is free.
        x = x.as_tensor() if isinstance(x, MetaTensor) else x
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_inputs(image: np.ndarray, label: np.ndarray) -> None:
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"TLCR expects a channel-first image of shape (1, X, Y, Z), got {tuple(image.shape)}.")
    if label.ndim != 4 or label.shape[0] != 1:
        raise ValueError(
            f"TLCR expects a channel-first label map of shape (1, X, Y, Z), got {tuple(label.shape)}; "
            "one-hot labels must be turned back into a single label map first (e.g. AsDiscrete(argmax=True))."
        )
    if image.shape[1:] != label.shape[1:]:
        raise ValueError(
            f"TLCR image and label spatial shapes differ: image {tuple(image.shape[1:])}, "
            f"label {tuple(label.shape[1:])}; resample the label onto the image grid first."
        )
    if label.dtype.kind not in "biuf":
        raise ValueError(f"TLCR label map must be numeric, got dtype {label.dtype}.")


class TLCR(Transform):
    """Tumour-centred crop (TLCR) of an image with its liver/tumour label map.

    1. S = voxels where ``label == tumour_label``; if S is empty, the output is zeros.
    2. The bounding box of S runs from ``min(S)`` to ``max(S) + 1``; its centre is
       ``floor((min + max) / 2)`` per axis.
    3. ``start = max(centre - C // 2, 0)``, ``end = start + C``; where ``end`` runs past
       the image the crop is zero-padded at the far end, so the output is always C.
    4. Channel 0 is the image where the label is liver or tumour, channel 1 the image
       where it is tumour; 0 elsewhere.

    Args:
        roi_size: crop size C (X, Y, Z), or one int for all axes.
        liver_label: value of liver voxels in the label map.
        tumour_label: value of tumour voxels in the label map.

    Example::

        patch = TLCR(roi_size=(64, 64, 32))(image, label)  # (1, X, Y, Z) x2 -> (2, 64, 64, 32)
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, roi_size: Sequence[int] | int = TLCR_ROI_SIZE, liver_label: int = LIVER, tumour_label: int = TUMOUR
    ) -> None:
        roi = ensure_tuple_rep(roi_size, 3)
        if any(int(c) != c or c < 1 for c in roi):
            raise ValueError(f"TLCR roi_size must be three positive integers, got {roi_size}.")
        self.roi_size = tuple(int(c) for c in roi)
        self.liver_label = liver_label
        self.tumour_label = tumour_label

    def window(self, label: np.ndarray | torch.Tensor) -> np.ndarray | None:
        """Start voxel (3,) of the crop for a label map of shape (1, X, Y, Z), or None without tumour."""
        box = tumour_bounding_box(_as_numpy(label)[0], self.tumour_label)
        return None if box is None else tlcr_window(*box, self.roi_size)

    def crop(
        self, image: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Crop as numpy arrays.

        Args:
            image: (1, X, Y, Z).
            label: (1, X, Y, Z) integer-valued label map.

        Returns:
            ``(patch, masks, start)``: ``patch`` (2, *C) in the image dtype, ``masks``
            (2, *C) uint8 (liver or tumour; tumour), ``start`` the crop's first voxel
            (3,) or None when the label has no tumour.
        """
        img, lab = _as_numpy(image), _as_numpy(label)
        _check_inputs(img, lab)
        patch = np.zeros((2, *self.roi_size), dtype=img.dtype)
        masks = np.zeros((2, *self.roi_size), dtype=np.uint8)
        start = self.window(lab)
        if start is None:
            return patch, masks, None
        src, dst = _crop_slices(start, self.roi_size, img.shape[1:])
        # The crop is a strided view of a large volume: read each source once into
        # contiguous memory, then work there.
        lab_crop = np.ascontiguousarray(lab[(0, *src)])
        if lab_crop.dtype.kind == "f" and not np.array_equal(lab_crop, np.rint(lab_crop)):
            raise ValueError(
                "TLCR label map has non-integer values (e.g. from linear interpolation); "
                "resample labels with nearest-neighbour interpolation."
            )
        # Masks are written in place as booleans: the uint8 buffer is their output.
        tissue, tumour = masks.view(bool)[(0, *dst)], masks.view(bool)[(1, *dst)]
        np.equal(lab_crop, self.tumour_label, out=tumour)
        np.equal(lab_crop, self.liver_label, out=tissue)
        tissue |= tumour
        tissue_patch, tumour_patch = patch[(0, *dst)], patch[(1, *dst)]
        np.copyto(tissue_patch, img[(0, *src)])
        np.multiply(tissue_patch, tumour, out=tumour_patch, casting="unsafe")
        np.multiply(tissue_patch, tissue, out=tissue_patch, casting="unsafe")
        return patch, masks, start

    def image_crop(self, image: np.ndarray | torch.Tensor, start: np.ndarray | None) -> np.ndarray:
        """The unmasked (1, *C) image inside the crop box that begins at ``start`` (zeros if None).

        Zero-padded at the far end like the patch: the input NeoGen's autoencoder learns from.
        """
        img = _as_numpy(image)
        crop = np.zeros((1, *self.roi_size), dtype=img.dtype)
        if start is not None:
            src, dst = _crop_slices(start, self.roi_size, img.shape[1:])
            crop[(0, *dst)] = img[(0, *src)]
        return crop

    def __call__(
        self, image: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor, return_masks: bool = False
    ):
        """Return the (2, *C) patch, in the image's type (numpy, tensor or MetaTensor with the crop's affine).

        With ``return_masks=True`` return ``(patch, masks)``; ``masks`` (2, *C) holds the
        liver-or-tumour and tumour masks in the same type.
        """
        patch, masks, start = self.crop(image, label)
        if start is None:
            warnings.warn("TLCR: the label map has no tumour voxels; the patch is all zeros.", stacklevel=2)
        meta = _crop_meta(image, start, self.roi_size)
        patch_out = _like(patch, image, meta)
        if not return_masks:
            return patch_out
        return patch_out, _like(masks, image, meta)


def _crop_slices(start: np.ndarray, roi_size: Sequence[int], shape: Sequence[int]) -> tuple[tuple, tuple]:
    """Source slices in the volume and destination slices in the (zero-padded) crop."""
    stop = np.minimum(start + np.asarray(roi_size), shape)
    return tuple(slice(a, b) for a, b in zip(start, stop)), tuple(slice(0, b - a) for a, b in zip(start, stop))


def _crop_meta(reference: np.ndarray | torch.Tensor, start: np.ndarray | None, roi_size: Sequence[int]) -> dict | None:
    """Meta data of a crop of ``reference`` that begins at voxel ``start``; None unless it is a MetaTensor."""
    if not isinstance(reference, MetaTensor):
        return None
    meta = dict(reference.meta)
    affine = reference.affine.clone()
    if start is not None:
        shift = torch.as_tensor(start, dtype=affine.dtype)
        affine[:3, 3] += affine[:3, :3] @ shift
    meta["affine"] = affine
    meta["spatial_shape"] = np.asarray(roi_size)
    return meta


def _like(array: np.ndarray, reference: np.ndarray | torch.Tensor, meta: dict | None):
    """``array`` in the type and on the device of ``reference``; a MetaTensor gets ``meta``."""
    if not isinstance(reference, torch.Tensor):
        return array
    tensor = torch.from_numpy(array).to(reference.device)
    return tensor if meta is None else MetaTensor(tensor, meta=dict(meta))


class TLCRd(MapTransform):
    """Dictionary form of :class:`TLCR`.

    Reads ``data[image_key]`` and ``data[label_key]`` (each (1, X, Y, Z)) and writes
    the (2, *C) patch to ``data[patch_key]`` and, unless ``mask_key`` is None, the
    (2, *C) uint8 masks (liver or tumour; tumour) that NeoGen conditions on to
    ``data[mask_key]``, and unless ``crop_key`` is None the unmasked (1, *C) image inside
    the crop box (what NeoGen's autoencoder learns) to ``data[crop_key]``. With MetaTensors the outputs carry the crop's affine, so a
    saved patch lands in the right place in a viewer. Errors name the image file.
    """

    backend = TLCR.backend

    def __init__(
        self,
        image_key: Hashable = "image",
        label_key: Hashable = "label",
        patch_key: Hashable = "patch",
        mask_key: Hashable | None = "patch_mask",
        crop_key: Hashable | None = None,
        roi_size: Sequence[int] | int = TLCR_ROI_SIZE,
        liver_label: int = LIVER,
        tumour_label: int = TUMOUR,
        allow_missing_keys: bool = False,
    ) -> None:
        keys: KeysCollection = [image_key, label_key]
        super().__init__(keys, allow_missing_keys)
        self.image_key, self.label_key = image_key, label_key
        self.patch_key, self.mask_key, self.crop_key = patch_key, mask_key, crop_key
        self.tlcr = TLCR(roi_size, liver_label, tumour_label)

    def __call__(self, data: Mapping[Hashable, np.ndarray | torch.Tensor]) -> dict[Hashable, np.ndarray | torch.Tensor]:
        d = dict(data)
        if self.allow_missing_keys and not all(k in d for k in self.keys):
            return d
        image, label = d[self.image_key], d[self.label_key]
        source = source_name(image)
        try:
            patch, masks, start = self.tlcr.crop(image, label)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from e
        if start is None:
            warnings.warn(f"TLCR: {source} has no tumour voxels; the patch is all zeros.", stacklevel=2)
        meta = _crop_meta(image, start, self.tlcr.roi_size)
        d[self.patch_key] = _like(patch, image, meta)
        if self.mask_key is not None:
            d[self.mask_key] = _like(masks, image, meta)
        if self.crop_key is not None:
            d[self.crop_key] = _like(self.tlcr.image_crop(image, start), image, meta)
        return d

