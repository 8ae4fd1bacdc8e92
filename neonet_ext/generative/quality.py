"""How good are generated patches? Fidelity, diversity, mask adherence, class fidelity, memorisation.

    python -m neonet_ext.generative.quality --synthetic eval/synthetic_patches.json \\
        --real heldout/patches.json --train train/patches.json [--json report.json]

All three inputs are patch datalists (NeoSeg's ``patches.json``, NeoGen's
``synthetic_patches.json``) with ``patch_image``, ``patch_mask`` and ``pni``. ``--real`` is
held-out real patches (never used to train NeoGen); ``--train`` is NeoGen's training patches.
Comparisons are made with real patches of the same class as the synthetic ones.

Figures (images are the unmasked crops in [0, 1], 64x64x32 by default):

- ``mmd``: MONAI's unbiased linear-kernel MMD between synthetic and real crops (4x
  average-pooled), with ``mmd_real_vs_train`` (the same figure for held-out real versus
  training real) as the floor a perfect generator would reach.
- ``ms_ssim_synthetic`` / ``ms_ssim_real``: mean MS-SSIM over pairs of different patches
  (3 scales for 64x64x32 crops, fewer for small ones; 7-voxel window); lower means more diverse. A generator that collapses to one
  image scores near 1.
- ``tumour_mean`` / ``liver_mean`` / ``tumour_std``: intensity statistics inside the tumour
  mask and inside liver-not-tumour, synthetic vs real.
- ``contrast``: mask adherence, the mean over patches of (mean in tumour - mean in the
  liver shell within 3 voxels of the tumour). A real tumour is hypointense, so the value is
  negative; a generator that ignores the masks gives about 0.
- ``class_positive_rate``: a logistic regression trained on the real training patches (both
  classes, 2-channel TLCR patches pooled 8x) scores the synthetic patches; the share it calls
  positive is compared with the share of held-out real patches of the same class.
- ``nearest_train_distance``: the median RMS distance from each synthetic crop to its
  nearest training crop, against the same median for held-out real crops; a ratio well
  below 1 would mean copies of training cases.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.metrics import MMDMetric, MultiScaleSSIMMetric
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from neonet_ext.data.patches import load_patch_datalist
from neonet_ext.generative.sampling import masked_patch

__all__ = ["PatchSet", "load_patch_set", "quality_report"]


class PatchSet:
    """Crops (N, X, Y, Z), masks (N, 2, X, Y, Z) and classes (N,) of a patch datalist."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, classes: np.ndarray) -> None:
        if len(images) == 0:
            raise ValueError("a patch set needs at least one patch")
        self.images, self.masks, self.classes = images.astype(np.float32), masks.astype(bool), classes.astype(int)

    def of_class(self, c: int) -> PatchSet:
        keep = self.classes == c
        if not keep.any():
            raise ValueError(f"no patches of class {c}")
        return PatchSet(self.images[keep], self.masks[keep], self.classes[keep])

    def __len__(self) -> int:
        return len(self.images)

    def patches(self) -> np.ndarray:
        """(N, 2, X, Y, Z) TLCR patches formed from the crops and masks."""
        return masked_patch(torch.from_numpy(self.images[:, None]), torch.from_numpy(self.masks)).numpy()


def load_patch_set(datalist_file: str | Path) -> PatchSet:
    """Read every item of a patch datalist with a tumour (``tumour_found`` not false)."""
    items = [i for i in load_patch_datalist(datalist_file, required_keys=("patch_image", "patch_mask", "pni"))
             if i.get("tumour_found", True)]
    if not items:
        raise ValueError(f"{datalist_file}: no patches with a tumour")
    images = np.stack([np.asarray(nib.load(i["patch_image"]).dataobj, dtype=np.float32) for i in items])
    masks = np.stack([np.moveaxis(np.asarray(nib.load(i["patch_mask"]).dataobj), -1, 0) for i in items])
    return PatchSet(images, masks, np.array([int(i["pni"]) for i in items]))


def _pooled(images: np.ndarray, factor: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    x = x[:, None] if x.ndim == 4 else x
    return torch.nn.functional.avg_pool3d(x, factor)


def mmd(a: np.ndarray, b: np.ndarray, pool: int = 4) -> float:
    """Unbiased linear-kernel MMD of two sets of crops (N, X, Y, Z), equal sizes taken from the front."""
    n = min(len(a), len(b))
    if n < 2:
        return float("nan")
    return float(MMDMetric()(_pooled(a[:n], pool), _pooled(b[:n], pool)))


def mean_pairwise_ms_ssim(images: np.ndarray, max_pairs: int = 45) -> float:
    """Mean MS-SSIM over up to ``max_pairs`` pairs of different crops (N, X, Y, Z)."""
    pairs = list(itertools.combinations(range(len(images)), 2))[:max_pairs]
    if not pairs:
        return float("nan")
    smallest = min(images.shape[1:])
    scales = next((s for s in (3, 2, 1) if smallest > 6 * 2 ** (s - 1)), 1)  # each scale halves; 7-voxel window
    metric = MultiScaleSSIMMetric(spatial_dims=3, kernel_size=7, weights=(1.0 / scales,) * scales)
    x = torch.from_numpy(images[[i for i, _ in pairs]])[:, None]
    y = torch.from_numpy(images[[j for _, j in pairs]])[:, None]
    return float(metric(x, y).mean())


def region_statistics(patches: PatchSet) -> dict[str, float]:
    """Means over patches of the mean and std inside tumour, mean in liver-not-tumour, and tumour contrast."""
    tumour_means, tumour_stds, liver_means, contrasts = [], [], [], []
    for image, (tissue, tumour) in zip(patches.images, patches.masks):
        liver = tissue & ~tumour
        shell = ndimage.binary_dilation(tumour, iterations=3) & liver
        tumour_means.append(image[tumour].mean())
        tumour_stds.append(image[tumour].std())
        if liver.any():
            liver_means.append(image[liver].mean())
        if shell.any():
            contrasts.append(image[tumour].mean() - image[shell].mean())
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {"tumour_mean": mean(tumour_means), "tumour_std": mean(tumour_stds), "liver_mean": mean(liver_means),
            "contrast": mean(contrasts)}


def nearest_distances(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """RMS distance from each query crop to its nearest reference crop."""
    q = torch.from_numpy(queries.reshape(len(queries), -1))
    r = torch.from_numpy(references.reshape(len(references), -1))
    return (torch.cdist(q, r).min(dim=1).values / q.shape[1] ** 0.5).numpy()


def class_classifier(train: PatchSet, pool: int = 8):
    """Logistic regression on 8x-pooled 2-channel TLCR patches of the training set."""
    if len(set(train.classes.tolist())) < 2:
        raise ValueError("the training patches must hold both classes to fit the class-fidelity classifier")
    features = _pooled(train.patches(), pool).flatten(1).numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))
    return model.fit(features, train.classes)


def quality_report(synthetic: PatchSet, real: PatchSet, train: PatchSet) -> dict[str, float | int]:
    """All figures for the synthetic patches of one class against real ones of that class."""
    classes = set(synthetic.classes.tolist())
    if len(classes) != 1:
        raise ValueError(f"the synthetic patches hold several classes {sorted(classes)}: evaluate one class at a time")
    (cls,) = classes
    real_c, train_c = real.of_class(cls), train.of_class(cls)
    classifier = class_classifier(train)
    positive = lambda s: float(classifier.predict(_pooled(s.patches(), 8).flatten(1).numpy()).mean())  # noqa: E731
    report: dict[str, float | int] = {"class": cls, "n_synthetic": len(synthetic), "n_real": len(real_c),
                                      "n_train": len(train_c)}
    report["mmd"] = mmd(synthetic.images, real_c.images)
    report["mmd_real_vs_train"] = mmd(real_c.images, train_c.images)
    report["ms_ssim_synthetic"] = mean_pairwise_ms_ssim(synthetic.images)
    report["ms_ssim_real"] = mean_pairwise_ms_ssim(real_c.images)
    for name, stats in (("synthetic", region_statistics(synthetic)), ("real", region_statistics(real_c))):
        report.update({f"{k}_{name}": v for k, v in stats.items()})
    report["class_positive_rate_synthetic"] = positive(synthetic)
    report["class_positive_rate_real"] = positive(real_c)
    report["nearest_train_distance_synthetic"] = float(np.median(nearest_distances(synthetic.images, train.images)))
    report["nearest_train_distance_real"] = float(np.median(nearest_distances(real_c.images, train.images)))
    return report


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", required=True, type=Path, help="NeoGen's synthetic_patches.json (one class)")
    parser.add_argument("--real", required=True, type=Path, help="held-out real patch datalist")
    parser.add_argument("--train", required=True, type=Path, help="NeoGen's training patch datalist")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--grid", type=Path, help="also draw a PNG grid of real and synthetic crops with their masks")
    parser.add_argument("--grid-columns", type=int, default=6)
    args = parser.parse_args(argv)
    synthetic, real, train = load_patch_set(args.synthetic), load_patch_set(args.real), load_patch_set(args.train)
    report = quality_report(synthetic, real, train)
    if args.grid:
        from neonet_ext.visualize import save_patch_grid

        n = args.grid_columns
        real_c = real.of_class(int(report["class"]))
        save_patch_grid([(f"real class {report['class']}", real_c.images[:n], real_c.masks[:n]),
                         (f"generated class {report['class']}", synthetic.images[:n], synthetic.masks[:n])], args.grid)
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
