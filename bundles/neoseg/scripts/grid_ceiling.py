"""What NeoSeg's 2x2x3 mm grid lets a perfect network score on the input grid, for each kind of training target.

    python bundles/neoseg/scripts/grid_ceiling.py --dataset_dir output/cohort [--max_cases 24] [--spacing 2 2 3]

A perfect network reproduces its training target on the network grid; the label map a user gets is the
argmax of that output resampled linearly to the input grid (``InputGridArgmaxd``). Per case, the true
label map (``labelsTr``) is brought to the network grid (RAS, ``--spacing``) as:

- ``nearest labels``: the label map resampled by nearest neighbour (one-hot of it as the network output),
  which is what ``train.json`` trains on before bundle 0.5.0;
- ``class fractions``: the one-hot label map resampled linearly (each class's share of a network voxel);

then resampled back linearly (border padding) and its argmax compared with the truth: Dice of liver and
tumour, averaged over cases, and over the cases whose tumour is under 3.4 ml. ``nearest, then nearest``
is the inversion before bundle 0.3.0 (labels both ways).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, Orientation, Spacing, SpatialResample

from neonet_ext.metrics import mask_dice

SMALL_TUMOUR_ML = 3.4


def one_hot(label: MetaTensor, classes: int = 3) -> MetaTensor:
    return MetaTensor(torch.cat([(label == c).float() for c in range(classes)]), affine=label.affine)


def case_ceilings(path: Path, spacing: tuple[float, float, float]) -> tuple[dict[str, tuple[float, float]], float]:
    """{target: (liver Dice, tumour Dice)} on the input grid, and the tumour volume (ml)."""
    label = LoadImage(reader="NibabelReader", image_only=True, ensure_channel_first=True)(str(path))
    affine, shape = label.affine.clone(), label.shape[1:]
    oriented = Orientation("RAS", labels=None)(label)
    nearest = Spacing(spacing, mode="nearest")(oriented)
    targets = {
        "nearest labels": one_hot(nearest),
        "class fractions": Spacing(spacing, mode="bilinear")(one_hot(oriented)),
    }
    truth = label[0].numpy()
    scores = {}
    for name, target in targets.items():
        back = SpatialResample(mode="bilinear", padding_mode="border")(target, dst_affine=affine, spatial_size=shape)
        labels = back.argmax(0).numpy()
        scores[name] = (mask_dice(labels == 1, truth == 1), mask_dice(labels == 2, truth == 2))
    back = SpatialResample(mode="nearest", padding_mode="border")(nearest.float(), dst_affine=affine, spatial_size=shape)[0]
    scores["nearest, then nearest"] = (mask_dice(back.numpy() == 1, truth == 1), mask_dice(back.numpy() == 2, truth == 2))
    voxel_ml = float(np.prod(np.asarray(label.pixdim))) / 1000
    return scores, float((truth == 2).sum() * voxel_ml)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_dir", type=Path, required=True)
    parser.add_argument("--max_cases", type=int, help="only the first N label maps (sorted by name)")
    parser.add_argument("--spacing", type=float, nargs=3, default=[2.0, 2.0, 3.0])
    args = parser.parse_args()
    paths = sorted((args.dataset_dir / "labelsTr").glob("*.nii.gz"))[: args.max_cases]
    if not paths:
        raise SystemExit(f"{args.dataset_dir / 'labelsTr'}: no *.nii.gz label maps")
    rows = [case_ceilings(path, tuple(args.spacing)) for path in paths]
    small = [scores for scores, volume in rows if 0 < volume < SMALL_TUMOUR_ML]
    print(f"{len(rows)} label maps of {args.dataset_dir}; network grid {'x'.join(f'{s:g}' for s in args.spacing)} mm; "
          f"{len(small)} tumours under {SMALL_TUMOUR_ML} ml")
    print("| network target | Dice liver | Dice tumour | mean | Dice tumour, tumours < 3.4 ml |\n| --- | --- | --- | --- | --- |")
    for name in rows[0][0]:
        liver = np.mean([scores[name][0] for scores, _ in rows])
        tumour = np.mean([scores[name][1] for scores, _ in rows])
        small_tumour = f"{np.mean([scores[name][1] for scores in small]):.3f}" if small else "-"
        print(f"| {name} | {liver:.4f} | {tumour:.3f} | {(liver + tumour) / 2:.3f} | {small_tumour} |")


if __name__ == "__main__":
    main()
