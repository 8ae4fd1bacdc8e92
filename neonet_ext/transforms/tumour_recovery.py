"""A tumour from the probabilities when the argmax has none.

A small tumour the network is unsure of can lose every voxel's argmax to the liver: NeoSeg then
reports "no tumour found" and the case gets no PNI probability, although the tumour class stands
out in the probabilities (seed 1001's case_009, 10 mm across: tumour probability up to 0.41 where
the liver wins). Every case NeoNet is run on is expected to hold a tumour, so when the argmax
has none, the most likely tumour region becomes the argmax: the voxels whose tumour probability
reaches a threshold, connected, inside the liver, the region holding the highest probability.
A case whose tumour probability stays below the threshold everywhere is left as it is.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from scipy import ndimage

from neonet_ext.labels import LIVER, TUMOUR

__all__ = ["TUMOUR_RECOVERY_PROBABILITY", "RecoverTumour", "RecoverTumourd"]

#: The lowest tumour probability a recovered tumour's voxels hold. Chosen from measurements on held-out
#: synthetic cases (docs/README.md of NeoSeg, "Detection"): the missed tumour reaches 0.41, liver far from any
#: tumour stays below it.
TUMOUR_RECOVERY_PROBABILITY = 0.2

_FULL_CONNECTIVITY = np.ones((3, 3, 3), bool)


class RecoverTumour(Transform):
    """Make the most likely tumour region the argmax of (C, X, Y, Z) class probabilities that give no voxel to the
    tumour; return the probabilities and whether a region was recovered.

    The region is the 26-connected component, among the voxels whose argmax is the liver and whose tumour
    probability is at least ``threshold``, that holds the highest tumour probability. Its voxels become one-hot
    tumour, so the argmax on the network grid and the argmax after the probabilities are resampled to the input
    grid both show it. Probabilities whose argmax has a tumour voxel, or none reaching ``threshold``, are
    returned unchanged.

    Args:
        threshold: the lowest tumour probability of a recovered voxel.
        liver_channel, tumour_channel: channels of the liver and tumour classes.
    """

    def __init__(self, threshold: float = TUMOUR_RECOVERY_PROBABILITY, liver_channel: int = LIVER,
                 tumour_channel: int = TUMOUR) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.liver_channel = liver_channel
        self.tumour_channel = tumour_channel

    def __call__(self, probabilities: torch.Tensor) -> tuple[torch.Tensor, bool]:
        if probabilities.ndim != 4 or probabilities.shape[0] <= self.tumour_channel:
            raise ValueError(f"expected (C, X, Y, Z) class probabilities with a tumour channel {self.tumour_channel}, "
                             f"got shape {tuple(probabilities.shape)}")
        argmax = probabilities.argmax(0)
        if bool((argmax == self.tumour_channel).any()):
            return probabilities, False
        tumour = probabilities[self.tumour_channel].detach().cpu().float().numpy()
        candidates = (argmax == self.liver_channel).cpu().numpy() & (tumour >= self.threshold)
        components, count = ndimage.label(candidates, structure=_FULL_CONNECTIVITY)
        if count == 0:
            return probabilities, False
        peaks = ndimage.maximum(tumour, components, range(1, count + 1))
        region = torch.as_tensor(components == int(np.argmax(peaks)) + 1, device=probabilities.device)
        recovered = probabilities.clone()
        recovered[:, region] = 0
        recovered[self.tumour_channel, region] = 1
        return recovered, True


class RecoverTumourd(MapTransform):
    """Dictionary form of :class:`RecoverTumour`: recovers each key's probabilities in place and writes whether a
    tumour was recovered to ``recovered_key`` (True when any key's was).

    Args:
        keys: keys of (C, X, Y, Z) class probabilities, e.g. NeoSeg's softmax on the network grid.
        threshold: the lowest tumour probability of a recovered voxel; ``None`` turns recovery off (the key
            is still written, False).
        recovered_key: where the flag goes (a per-case output).
    """

    def __init__(self, keys: KeysCollection, threshold: float | None = TUMOUR_RECOVERY_PROBABILITY,
                 recovered_key: Hashable = "tumour_recovered", liver_channel: int = LIVER, tumour_channel: int = TUMOUR,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.recovered_key = recovered_key
        self.recover = None if threshold is None else RecoverTumour(threshold, liver_channel, tumour_channel)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        recovered = False
        for key in self.key_iterator(d):
            if self.recover is not None:
                d[key], found = self.recover(d[key])
                recovered = recovered or found
        d[self.recovered_key] = recovered
        return d
