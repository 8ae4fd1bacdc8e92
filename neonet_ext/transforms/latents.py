"""Reading cached latents (see :class:`neonet_ext.data.LatentCache`) into training pipelines.

Split in two, as MONAI's ``CacheDataset`` wants it: :class:`LoadLatentd` is deterministic and
reads every view of a patch once (the dataset keeps the result in memory); :class:`SelectLatentViewd`
is the random part run on every update: one view, and optionally a draw from the posterior
``mu + scale * sigma * eps`` instead of its mean.

What the dataset holds is what ``LoadLatentd`` returns, so it decides the memory a training run
needs: V views x 2 tensors x C * L x x * y * z values per patch. A folded NeoGen autoencoder's
8x32x32x16 latent of a 2-channel patch is 1 MiB a view in float32; without the posterior's
sigma (``with_sigma=False``, for an encoder whose sigma is ~0 or when no draw is wanted) and in
float16 (``dtype``) it is a quarter of the float32 pair.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import DtypeLike, KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import get_equivalent_dtype

__all__ = ["LoadLatentd", "SelectLatentViewd"]


class LoadLatentd(MapTransform):
    """Read the cache entries listed under each key (one path per view) into two stacked tensors.

    Writes ``data[f"{key}_mu"]`` and (with ``with_sigma``) ``data[f"{key}_sigma"]``, each (V, C * L, x, y, z)
    for V views, (with ``with_regions``) ``data[f"{key}_regions"]`` (V, 2, x, y, z), and removes ``data[key]``.

    Args:
        keys: item keys holding the entry paths.
        with_sigma: also keep the posterior's sigma (needed for posterior draws in :class:`SelectLatentViewd`).
        with_regions: also keep each view's tissue and tumour fractions (for PattenNet's region pooling).
        dtype: the dtype the latents are kept in (e.g. ``torch.float16`` to halve a cached dataset's memory;
            :class:`SelectLatentViewd` returns float32 whatever it is).

    Raises:
        ValueError: an entry that cannot be read, naming its file (the cache checks entries when it
            builds; this catches one removed or damaged since).
    """

    def __init__(self, keys: KeysCollection, with_sigma: bool = True, dtype: DtypeLike | torch.dtype = torch.float32,
                 with_regions: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.with_sigma = with_sigma
        self.with_regions = with_regions
        self.dtype = get_equivalent_dtype(dtype, torch.Tensor)

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.key_iterator(d):
            paths = d.pop(key)
            paths = [paths] if isinstance(paths, str) else list(paths)
            mus, sigmas, regions = [], [], []
            for path in paths:
                try:
                    entry = torch.load(path, map_location="cpu", weights_only=True)
                    mus.append(entry["mu"].to(self.dtype))
                    if self.with_sigma:
                        sigmas.append(entry["sigma"].to(self.dtype))
                    if self.with_regions:
                        regions.append(entry["regions"].to(self.dtype))
                except Exception as e:
                    raise ValueError(f"cannot read latent cache entry {path}: {e!r}; rebuild the cache"
                                     + (" with require_regions=True" if isinstance(e, KeyError) else "")) from e
            d[f"{key}_mu"] = torch.stack(mus)
            if self.with_sigma:
                d[f"{key}_sigma"] = torch.stack(sigmas)
            if self.with_regions:
                d[f"{key}_regions"] = torch.stack(regions)
        return d


class SelectLatentViewd(RandomizableTransform, MapTransform):
    """Pick one view of the latents :class:`LoadLatentd` read, and optionally sample the posterior.

    Writes ``data[output_key]`` (C * L, x, y, z), float32 (with the view's region fractions after it,
    (C * L + 2, x, y, z), when :class:`LoadLatentd` read them), and the chosen view's index under ``view_key``
    (for :class:`neonet_ext.transforms.PatchViewd` to apply the same view to a mask), and removes the
    stacked ``{key}_mu`` / ``{key}_sigma``.

    Args:
        keys: the key given to :class:`LoadLatentd` (one).
        output_key: where the latent goes (``image``, what the trainers read).
        random_view: draw the view uniformly; False: view 0, the patch as it is (validation).
        posterior_prob: probability of ``mu + posterior_scale * sigma * eps`` instead of ``mu``.
        posterior_scale: multiplies the posterior's sigma (1: a true posterior sample).
        view_key: key of the chosen view's index.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_key: Hashable = "image",
        random_view: bool = True,
        posterior_prob: float = 0.0,
        posterior_scale: float = 1.0,
        view_key: Hashable = "view",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=posterior_prob)
        if len(self.keys) != 1:
            raise ValueError(f"SelectLatentViewd writes one output: give one key, got {self.keys}.")
        self.output_key = output_key
        self.random_view = random_view
        self.posterior_scale = posterior_scale
        self.view_key = view_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        for key in self.keys:
            if f"{key}_mu" not in d:
                if self.allow_missing_keys:
                    continue
                raise KeyError(f"SelectLatentViewd: no '{key}_mu' in the data; load the latents with LoadLatentd first.")
            mu, sigma = d.pop(f"{key}_mu"), d.pop(f"{key}_sigma", None)
            self.randomize(None)
            view = int(self.R.randint(mu.shape[0])) if self.random_view else 0
            latent = mu[view].float()
            if self._do_transform:
                if sigma is None:
                    raise KeyError(f"SelectLatentViewd: posterior draws need '{key}_sigma'; load it with "
                                   "LoadLatentd(with_sigma=True) or set posterior_prob to 0.")
                eps = torch.from_numpy(self.R.standard_normal(latent.shape).astype("float32"))
                latent = latent + self.posterior_scale * sigma[view].float() * eps
            regions = d.pop(f"{key}_regions", None)
            if regions is not None:  # after the latent, as PattenNet.encode puts them for region pooling
                latent = torch.cat([latent, regions[view].float()])
            d[self.output_key] = latent
            d[self.view_key] = view
        return d
