"""The TLCR masking as a training transform: how NeoGen's autoencoder learns every input it will encode."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["UNMASKED", "MaskImaged"]

#: ``mask_channel`` of an item whose image is used as it is.
UNMASKED = -1


class MaskImaged(MapTransform):
    """Keep each key's (1, *spatial) image inside one channel of the item's (2, *spatial) TLCR masks, as TLCR
    forms the patch channels (``image * (mask[c] > 0)``), or unchanged when the item's ``channel_key`` is
    :data:`UNMASKED`; the masks are then dropped.

    NeoGen's autoencoder learns the unmasked crop (what its diffusion stages encode) and both TLCR
    channels (what PattenNet encodes: image inside liver + tumour, image inside tumour); each is one
    item of :func:`neonet_ext.data.autoencoder_inputs`.

    Raises:
        ValueError: the mask channel does not exist or the shapes differ, naming the mask's file.
    """

    def __init__(self, keys: KeysCollection, mask_key: Hashable = "patch_mask", channel_key: Hashable = "mask_channel",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mask_key = mask_key
        self.channel_key = channel_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        channel = int(d[self.channel_key])
        masks = d.pop(self.mask_key)
        if channel == UNMASKED:
            return d
        source = getattr(masks, "meta", {}).get("filename_or_obj", self.mask_key)
        if not 0 <= channel < masks.shape[0]:
            raise ValueError(f"{source}: no mask channel {channel}, the masks have {masks.shape[0]}")
        for key in self.key_iterator(d):
            image = d[key]
            if tuple(image.shape[1:]) != tuple(masks.shape[1:]):
                raise ValueError(f"{source}: masks of shape {tuple(masks.shape[1:])} for an image of {tuple(image.shape[1:])}")
            d[key] = image * (masks[channel : channel + 1] > 0).to(image.dtype)
        return d
