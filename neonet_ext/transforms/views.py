"""Deterministic views of a patch: the augmentations a latent cache can encode once and reuse.

A random augmentation applied to the image has to run through the frozen encoder on every
update. A fixed set of views (the patch itself, its mirror along the slice axis, a few
seeded small rotations and scalings) can be encoded once; training then picks one view per
update and adds latent-space noise (see :class:`neonet_ext.transforms.LoadLatentd`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import Affine, MapTransform, Transform
from monai.utils import convert_to_tensor, ensure_tuple_rep

__all__ = ["PatchView", "PatchViewd", "patch_views"]

#: The slice axis of a (C, X, Y, Z) patch: the only axis along which mirroring keeps anatomy plausible
#: (left-right and anterior-posterior mirrors would put the liver on the wrong side).
SLICE_AXIS = 2


@dataclass(frozen=True)
class PatchView(Transform):
    """One fixed view of a (C, X, Y, Z) patch: an optional mirror along the slice axis, then a rotation
    (radians about each axis) and a scaling about the patch centre, bilinear, zero padding.

    ``PatchView()`` is the identity and returns its input unchanged.

    Args:
        flip: mirror along the slice axis first.
        rotate: rotation angles in radians, one per spatial axis.
        scale: scaling factors, one per spatial axis (1: unchanged).
    """

    flip: bool = False
    rotate: tuple[float, ...] = (0.0, 0.0, 0.0)
    scale: tuple[float, ...] = (1.0, 1.0, 1.0)

    @property
    def is_identity(self) -> bool:
        return not self.flip and not any(self.rotate) and all(s == 1.0 for s in self.scale)

    @property
    def spec(self) -> str:
        """A canonical text of the view: equal views have equal specs (the latent cache keys on it)."""
        return json.dumps({"flip": self.flip, "rotate": [round(a, 6) for a in self.rotate],
                           "scale": [round(s, 6) for s in self.scale]}, sort_keys=True)

    @property
    def name(self) -> str:
        """``identity``, ``flip``, or ``view-<hash of the spec>``."""
        if self.is_identity:
            return "identity"
        if not any(self.rotate) and all(s == 1.0 for s in self.scale):
            return "flip"
        return "view-" + hashlib.sha1(self.spec.encode()).hexdigest()[:10]

    def __call__(self, img: torch.Tensor | np.ndarray) -> torch.Tensor:
        """
        Args:
            img: a (C, X, Y, Z) patch.

        Returns:
            the view as a float tensor of the same shape.
        """
        out = convert_to_tensor(img, dtype=torch.float32, track_meta=False)
        if self.is_identity:
            return out
        if self.flip:
            out = out.flip(SLICE_AXIS + 1)
        if any(self.rotate) or any(s != 1.0 for s in self.scale):
            affine = Affine(rotate_params=list(self.rotate), scale_params=list(self.scale), mode="bilinear",
                            padding_mode="zeros", image_only=True)
            out = convert_to_tensor(affine(out), dtype=torch.float32, track_meta=False)
        return out


class PatchViewd(MapTransform):
    """Dictionary form of :class:`PatchView`: applies the view named by ``data[view_key]`` (an index into
    ``views``) to every key, so a condition mask follows the view its image latent was encoded from.

    Args:
        keys: keys of (C, X, Y, Z) patches or masks.
        views: the views, as given to the latent cache.
        view_key: key of the view index (written by :class:`neonet_ext.transforms.LoadLatentd`).
        nearest: keys to resample with nearest-neighbour interpolation (masks).
    """

    def __init__(self, keys: KeysCollection, views: Sequence[PatchView], view_key: Hashable = "view",
                 nearest: KeysCollection = (), allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.views = list(views)
        self.view_key = view_key
        self.nearest = set(ensure_tuple_rep(nearest, 1)) if nearest else set()

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        view = self.views[int(d[self.view_key])]
        for key in self.key_iterator(d):
            out = view(d[key])
            d[key] = (out > 0.5).float() if key in self.nearest and not view.is_identity else out
        return d


def patch_views(num_views: int, rotate_range: Sequence[float] = (0.1, 0.1, 0.2),
                scale_range: Sequence[float] = (0.1, 0.1, 0.1), seed: int = 0) -> list[PatchView]:
    """``num_views`` views: the identity, the slice-axis mirror, then seeded random rotations and scalings
    (angles uniform in ``+-rotate_range`` radians, factors in ``1 +- scale_range``), every other one mirrored.

    The same arguments always give the same views, so a cache built with them is found again.
    """
    if num_views < 1:
        raise ValueError(f"num_views must be at least 1 (the identity), got {num_views}.")
    views = [PatchView(), PatchView(flip=True)][:num_views]
    rng = np.random.default_rng(seed)
    rotate_range, scale_range = np.asarray(rotate_range, float), np.asarray(scale_range, float)
    for index in range(len(views), num_views):
        rotate = rng.uniform(-rotate_range, rotate_range)
        scale = 1.0 + rng.uniform(-scale_range, scale_range)
        views.append(PatchView(flip=index % 2 == 1, rotate=tuple(map(float, rotate)), scale=tuple(map(float, scale))))
    return views
