"""A disk cache of frozen-autoencoder latents, so that training on a frozen encoder encodes each patch once.

NeoCls's PattenNet and NeoGen's diffusion UNet and ControlNet all read patches through the
same frozen NeoGen autoencoder. Re-encoding every batch costs most of their update time on a
CPU. :class:`LatentCache` encodes every channel of every patch once per view
(:func:`neonet_ext.transforms.patch_views`) and keeps the posterior mean and sigma on disk.

An entry is keyed by the autoencoder's encoding weights, the patch file's bytes and the view,
and lives at ``<cache_dir>/<autoencoder sha1>/<patch sha1>-<view name>.pt``: other weights or an
edited patch simply miss, and are encoded anew. Entries are written atomically (an interrupted
build leaves none half-written) and read back with ``weights_only=True``; an entry that does not
load, names other keys or holds non-finite values is re-encoded, never trusted.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from monai.transforms import LoadImage
from monai.utils import convert_to_tensor

from neonet_ext.networks.nets.pattennet import region_fractions
from neonet_ext.transforms.views import PatchView, patch_views
from neonet_ext.utils.io import atomic_write, file_sha1

__all__ = ["LatentCache", "autoencoder_fingerprint"]

#: The AutoencoderKL submodules that make a posterior: what the cache depends on (the decoder is not).
ENCODING_MODULES = ("encoder", "quant_conv_mu", "quant_conv_log_sigma")
_ENTRY_KEYS = {"mu", "sigma", "autoencoder", "source", "view"}
#: written with every entry since region pooling; older entries lack it (see ``require_regions``)
_REGIONS_KEY = "regions"


def autoencoder_fingerprint(autoencoder: torch.nn.Module) -> str:
    """sha1 of the encoding path's parameter names, shapes and values (any change of weights or widths changes it)."""
    digest = hashlib.sha1()
    for name, tensor in sorted(autoencoder.state_dict().items()):
        if name.split(".")[0] in ENCODING_MODULES:
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class LatentCache:
    """
    Encode patch files with a frozen ``AutoencoderKL`` once per view, and point each datalist item at its entries.

    Each channel of a (C, X, Y, Z) patch is encoded on its own (as PattenNet and NeoGen encode them);
    an entry holds ``mu`` and ``sigma`` of shape (C * L, x, y, z), channel c's latent at
    ``[c * L, (c + 1) * L)``, and ``regions`` (2, x, y, z): the view's tissue and tumour fractions on
    the latent grid (:func:`neonet_ext.networks.region_fractions`, for PattenNet's region pooling). Calling the cache on a datalist returns copies of the items with
    ``latent_key`` set to the list of entry paths, one per view, in the order of ``views``.

    Args:
        autoencoder: the trained autoencoder (its ``encode`` gives posterior mean and sigma); it is put in
            eval mode and never changed.
        cache_dir: folder of the cache; entries of other autoencoders may share it.
        views: the views to encode: a sequence of :class:`PatchView`, or a number for
            :func:`patch_views` (1: the patch as it is).
        image_key: item key of the patch file (``patch`` for NeoCls, ``patch_image`` for NeoGen).
        latent_key: item key the entry paths are written to.
        autoencoder_checkpoint: optional weights loaded into ``autoencoder`` first (a NeoGen checkpoint).
        batch_size: channels encoded in one forward pass.
        device: where to encode (default: the autoencoder's device).
        progress: print a line per 10 % of a build and a summary.
        require_regions: entries without ``regions`` (written before they were) get them added (their latent
            is kept, not encoded again).

    Example::

        cache = LatentCache(autoencoder, "runs/latent_cache", views=4, image_key="patch")
        items = cache(datalist)  # items[i]["latent"] == [path of view 0, ..., path of view 3]
    """

    def __init__(
        self,
        autoencoder: torch.nn.Module,
        cache_dir: str | os.PathLike,
        views: Sequence[PatchView] | int = 1,
        image_key: str = "patch",
        latent_key: str = "latent",
        autoencoder_checkpoint: str | os.PathLike | None = None,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        progress: bool = True,
        require_regions: bool = False,
    ) -> None:
        if autoencoder_checkpoint is not None:
            from neonet_ext.engines.checkpoints import load_weights

            load_weights(autoencoder, autoencoder_checkpoint, what="NeoGen autoencoder")
        self.autoencoder = autoencoder.eval()
        self.views = patch_views(views) if isinstance(views, int) else list(views)
        if not self.views:
            raise ValueError("a latent cache needs at least one view.")
        self.cache_dir = Path(cache_dir)
        self.image_key = image_key
        self.latent_key = latent_key
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else next(autoencoder.parameters()).device
        self.progress = progress
        self.require_regions = require_regions
        self.fingerprint = autoencoder_fingerprint(autoencoder)
        self.folder = self.cache_dir / self.fingerprint[:16]
        self._loader = LoadImage(image_only=True, ensure_channel_first=True)
        self._file_hashes: dict[tuple[str, int, int], str] = {}

    # ------------------------------------------------------------------ keys and entries

    def source_fingerprint(self, path: str | os.PathLike) -> str:
        """The patch file's sha1, remembered per (path, size, mtime) for the life of the cache object."""
        stat = os.stat(path)
        key = (os.fspath(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._file_hashes:
            self._file_hashes[key] = file_sha1(path)
        return self._file_hashes[key]

    def entry_path(self, source_hash: str, view: PatchView) -> Path:
        return self.folder / f"{source_hash[:20]}-{view.name}.pt"

    def read_entry(self, path: str | os.PathLike, source_hash: str | None = None, view: PatchView | None = None,
                   require_regions: bool | None = None) -> dict[str, torch.Tensor] | None:
        """The entry at ``path`` when it is whole and was made for this autoencoder (and the given patch
        and view), and holds region fractions where they are required (default: ``self.require_regions``),
        else None."""
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return None
        except Exception:  # a truncated or foreign file: re-encoded by the caller
            return None
        if not isinstance(entry, Mapping) or set(entry) - {_REGIONS_KEY} != _ENTRY_KEYS:
            return None
        if (self.require_regions if require_regions is None else require_regions) and _REGIONS_KEY not in entry:
            return None
        if entry["autoencoder"] != self.fingerprint:
            return None
        if (source_hash is not None and entry["source"] != source_hash) or (view is not None and entry["view"] != view.spec):
            return None
        mu, sigma = entry["mu"], entry["sigma"]
        if not (isinstance(mu, torch.Tensor) and isinstance(sigma, torch.Tensor) and mu.shape == sigma.shape):
            return None
        if not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
            return None
        regions = entry.get(_REGIONS_KEY)
        if regions is not None and not (isinstance(regions, torch.Tensor) and regions.shape[1:] == mu.shape[1:]):
            return None
        return entry

    # ------------------------------------------------------------------ encoding

    @torch.no_grad()
    def encode(self, patch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and sigma of every channel of ``patch`` (N, C, X, Y, Z) -> two (N, C * L, x, y, z)."""
        self.autoencoder.eval()
        channels = patch.flatten(0, 1).unsqueeze(1).to(self.device)
        mus, sigmas = [], []
        for chunk in channels.split(self.batch_size):
            mu, sigma = self.autoencoder.encode(chunk)
            mus.append(mu.cpu())
            sigmas.append(sigma.cpu())
        shape = [patch.shape[0], -1]
        return torch.cat(mus).unflatten(0, shape).flatten(1, 2), torch.cat(sigmas).unflatten(0, shape).flatten(1, 2)

    def _write(self, path: Path, mu: torch.Tensor, sigma: torch.Tensor, regions: torch.Tensor, source_hash: str,
               view: PatchView) -> None:
        entry = {"mu": mu.contiguous().clone(), "sigma": sigma.contiguous().clone(), _REGIONS_KEY: regions.contiguous(),
                 "autoencoder": self.fingerprint, "source": source_hash, "view": view.spec}
        atomic_write(path, lambda tmp: torch.save(entry, tmp))

    def _missing(self, items: Sequence[Mapping], views: Sequence[PatchView]) -> Iterator[tuple[int, str, str, list[PatchView]]]:
        """(item index, patch path, patch sha1, views to encode) for every item with a missing or bad entry."""
        for index, item in enumerate(items):
            path = item[self.image_key]
            try:
                source_hash = self.source_fingerprint(path)
            except OSError as e:
                raise FileNotFoundError(f"latent cache: cannot read patch {path} ({e.strerror})") from e
            todo = []
            for view in views:
                entry_path = self.entry_path(source_hash, view)
                if not entry_path.exists():
                    todo.append(view)
                elif self.read_entry(entry_path, source_hash, view) is None:
                    if self.read_entry(entry_path, source_hash, view, require_regions=False) is None:
                        print(f"latent cache: entry {entry_path} for {path} is unreadable or was made for other "
                              "weights, patch or view; encoding it anew", flush=True)
                    todo.append(view)  # else it lacks region fractions only: build adds them
            if todo:
                yield index, path, source_hash, todo

    def build(self, items: Sequence[Mapping], num_views: int | None = None) -> int:
        """Encode every (item, view) without a valid entry, for the first ``num_views`` views (default all);
        return how many entries were written."""
        return sum(self._build(items, num_views))

    def _build(self, items: Sequence[Mapping], num_views: int | None) -> tuple[int, int]:
        """:meth:`build`; returns (entries encoded, entries that only had their region fractions added)."""
        missing = list(self._missing(items, self.views[:num_views]))
        if not missing:
            return 0, 0
        if not self.folder.exists():
            others = [p.name for p in self.cache_dir.glob("*") if p.is_dir() and p != self.folder]
            if others and self.progress:
                print(f"latent cache {self.cache_dir}: entries for other autoencoder weights ({', '.join(others)}) "
                      f"are not used; encoding with weights {self.folder.name}", flush=True)
        total = sum(len(todo) for *_, todo in missing)
        written, encoded, start, next_report = 0, 0, time.perf_counter(), 0.1
        for _, path, source_hash, todo in missing:
            try:
                patch = convert_to_tensor(self._loader(path), dtype=torch.float32, track_meta=False)
            except Exception as e:
                raise ValueError(f"latent cache: cannot load patch {path}: {e}") from e
            if patch.ndim != 4:
                raise ValueError(f"latent cache: patch {path} has shape {tuple(patch.shape)}, expected (C, X, Y, Z)")
            batch = torch.stack([view(patch) for view in todo])
            # an entry written before region fractions were keeps its latent: only the fractions are added
            posteriors = [self.read_entry(self.entry_path(source_hash, view), source_hash, view, require_regions=False)
                          for view in todo]
            to_encode = [i for i, entry in enumerate(posteriors) if entry is None]
            if to_encode:
                encoded += len(to_encode)
                for i, mu, sigma in zip(to_encode, *self.encode(batch[to_encode])):
                    posteriors[i] = {"mu": mu, "sigma": sigma}
            for view, view_patch, entry in zip(todo, batch, posteriors):
                regions = region_fractions(view_patch[None], entry["mu"].shape[1:])[0]
                self._write(self.entry_path(source_hash, view), entry["mu"], entry["sigma"], regions, source_hash, view)
            written += len(todo)
            if self.progress and written / total >= next_report:
                elapsed = time.perf_counter() - start
                print(f"latent cache: {written}/{total} entries written, {elapsed:.0f} s, "
                      f"about {elapsed / written * (total - written):.0f} s left", flush=True)
                next_report = written / total + 0.1
        return encoded, written - encoded

    def __call__(self, items: Sequence[Mapping], num_views: int | None = None) -> list[dict]:
        """Build what is missing, then return copies of ``items`` with ``latent_key``: one entry path per view.

        Args:
            items: datalist items holding ``image_key``.
            num_views: use only the first views (1: the patch as it is, e.g. for validation).
        """
        views = self.views[:num_views]
        encoded, completed = self._build(items, num_views)
        out = []
        for item in items:
            source_hash = self.source_fingerprint(item[self.image_key])
            out.append({**item, self.latent_key: [str(self.entry_path(source_hash, view)) for view in views]})
        if self.progress:
            print(f"latent cache {self.folder}: {len(items)} patches x {len(views)} views, "
                  f"{encoded} entries encoded, " + (f"{completed} given their region fractions, " if completed else "")
                  + f"{len(items) * len(views) - encoded - completed} reused", flush=True)
        return out
