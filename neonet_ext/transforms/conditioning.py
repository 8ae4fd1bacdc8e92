"""Class conditioning for NeoGen's diffusion models: a class index as a one-token context."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform, Transform

#: Context value of "no class": what classifier-free guidance compares the class against.
UNCONDITIONAL = -1.0


class ClassContext(Transform):
    """Class index -> (1, num_classes) one-hot context, for cross-attention conditioning.

    MONAI's diffusion inferers pass ``condition`` as the cross-attention context; a
    one-token one-hot context makes a ``DiffusionModelUNet(with_conditioning=True,
    cross_attention_dim=num_classes)`` class-conditional without a wrapper.

    Args:
        num_classes: number of classes (2 for PNI negative / positive).
    """

    def __init__(self, num_classes: int = 2) -> None:
        self.num_classes = num_classes

    def __call__(self, label) -> torch.Tensor:
        value = np.asarray(label).reshape(-1)
        if value.size != 1 or not float(value[0]).is_integer() or not 0 <= int(value[0]) < self.num_classes:
            raise ValueError(f"class label must be one integer in [0, {self.num_classes - 1}], got {label!r}")
        context = torch.zeros(1, self.num_classes)
        context[0, int(value[0])] = 1.0
        return context


class ClassContextd(RandomizableTransform, MapTransform):
    """Dictionary form of :class:`ClassContext` with label dropout for classifier-free guidance.

    Writes ``data[context_key]`` (1, num_classes) from ``data[key]``; with probability
    ``drop_prob`` the context is :data:`UNCONDITIONAL` instead, so one model learns both
    the class-conditional and the unconditional prediction.
    """

    def __init__(
        self,
        keys: KeysCollection,
        context_key: Hashable = "class_context",
        num_classes: int = 2,
        drop_prob: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=drop_prob)
        self.context_key = context_key
        self.to_context = ClassContext(num_classes)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            context = self.to_context(d[key])
            d[self.context_key] = torch.full_like(context, UNCONDITIONAL) if self._do_transform else context
        return d
