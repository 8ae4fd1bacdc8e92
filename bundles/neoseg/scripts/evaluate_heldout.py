"""NeoSeg on held-out synthetic cohorts, scored on each input's own grid: Dice, HD95 and missed tumours.

    python bundles/neoseg/scripts/evaluate_heldout.py --out output/neoseg_heldout --seeds 777 --cases 48

For each seed a cohort the weights never saw is generated (``scoring_cohort_config``: int16
images, as scanners write them), ``configs/inference.json`` segments its raw volumes, and each
saved label map (``<case>_seg.nii.gz``, on the input's grid and affine) is compared with the
generator's ground truth on that grid:

- Dice of liver (label 1, tumour excluded) and tumour (label 2), and their mean;
- HD95 in mm of each (from the voxel size);
- detection: a case whose ground truth has a tumour is a missed tumour when its label map has
  no tumour voxel on the true tumour: none at all (NeoCls then gets no probability for it), or
  only elsewhere (NeoCls then reads the wrong place).

``--noise_free`` scores the cohorts' noise-free twins instead (same phantoms and label maps).

Writes ``OUT/cases.csv`` (one row per case) and ``OUT/metrics.json`` (means, counts), prints a
table. Arguments after ``--`` go to the inference runs (e.g. ``-- --checkpoint other.pt``);
``--config_file`` layers other configs (a list ``"['a.json','b.json']"``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from monai.metrics import compute_hausdorff_distance

from neonet_ext.data.synthetic import scoring_cohort_config, write_cohort_once
from neonet_ext.labels import LIVER, TUMOUR
from neonet_ext.metrics import mask_dice
from neonet_ext.utils.io import atomic_write

BUNDLE = Path(__file__).resolve().parents[1]


def hd95_mm(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float:
    if not pred.any() or not truth.any():
        return float("nan")
    y_pred, y = (torch.from_numpy(m[None, None]) for m in (pred, truth))
    return float(compute_hausdorff_distance(y_pred, y, percentile=95, spacing=list(spacing))[0, 0])


def score_case(seg_file: Path, label_file: Path) -> dict[str, float | bool]:
    seg_image, label_image = nib.load(seg_file), nib.load(label_file)
    if seg_image.shape != label_image.shape or not np.allclose(seg_image.affine, label_image.affine, atol=1e-3):
        raise ValueError(f"{seg_file} is not on its input's grid ({seg_image.shape} vs {label_image.shape})")
    seg, label = np.asarray(seg_image.dataobj), np.asarray(label_image.dataobj)
    spacing = tuple(float(s) for s in label_image.header.get_zooms()[:3])
    row: dict[str, float | bool] = {}
    for name, value in (("liver", LIVER), ("tumour", TUMOUR)):
        pred, truth = seg == value, label == value
        row[f"dice_{name}"] = mask_dice(pred, truth)
        row[f"hd95_{name}_mm"] = hd95_mm(pred, truth, spacing)
    row["dice_mean"] = (row["dice_liver"] + row["dice_tumour"]) / 2
    row["tumour_in_truth"] = bool((label == TUMOUR).any())
    row["tumour_found"] = bool((seg == TUMOUR).any())
    row["tumour_hit"] = bool(((seg == TUMOUR) & (label == TUMOUR)).any())
    return row


def run_cohort(out: Path, seed: int, cases: int, config_file: str, extra: list[str], noise_free: bool = False) -> list[dict]:
    cohort = out / "cohort"
    write_cohort_once(cohort, cases, seed, scoring_cohort_config(cases, noise_free))
    segmentations = out / "neoseg"
    # a re-run keeps the cases an earlier (perhaps interrupted) run finished with the same input and weights;
    # a failed case makes the run exit non-zero; it is then missing below and reported
    subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file,
                    "--dataset_dir", str(cohort / "imagesTr"), "--output_dir", str(segmentations), *extra],
                   check=False)
    rows = []
    for label_file in sorted((cohort / "labelsTr").glob("*.nii.gz")):
        case = label_file.name.split(".")[0]
        seg_file = segmentations / case / f"{case}_seg.nii.gz"
        row: dict = {"case": f"seed{seed}/{case}"}
        if seg_file.is_file():
            row.update(score_case(seg_file, label_file))
        else:
            row["error"] = f"no segmentation {seg_file}"
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("output/neoseg_heldout"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[777])
    parser.add_argument("--cases", type=int, default=48, help="cases per cohort")
    parser.add_argument("--config_file", default=str(BUNDLE / "configs" / "inference.json"))
    parser.add_argument("--noise_free", action="store_true",
                        help="the cohorts' noise-free twins (same phantoms and labels, no noise); use another --out")
    parser.add_argument("bundle_args", nargs="*", help="after --: overrides for monai.bundle run")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = [r for seed in args.seeds
            for r in run_cohort(args.out / f"seed_{seed}", seed, args.cases, args.config_file, args.bundle_args,
                                args.noise_free)]
    table = pd.DataFrame(rows)
    scored = table[table["error"].isna()] if "error" in table else table
    with_tumour = scored[scored["tumour_in_truth"]]
    metrics = {
        "seeds": args.seeds, "cases_per_cohort": args.cases, "noise_free": args.noise_free, "n_cases": len(table), "n_scored": len(scored),
        "dice_liver": float(scored["dice_liver"].mean()), "dice_tumour": float(with_tumour["dice_tumour"].mean()),
        "hd95_liver_mm": float(scored["hd95_liver_mm"].mean()), "hd95_tumour_mm": float(with_tumour["hd95_tumour_mm"].mean()),
        "n_with_tumour": len(with_tumour), "missed_tumours": int((~with_tumour["tumour_hit"]).sum()),
        "missed_cases": with_tumour.loc[~with_tumour["tumour_found"], "case"].tolist(),
        "found_elsewhere_cases": with_tumour.loc[with_tumour["tumour_found"] & ~with_tumour["tumour_hit"], "case"].tolist(),
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    metrics["dice_mean"] = (metrics["dice_liver"] + metrics["dice_tumour"]) / 2
    metrics["detection_rate"] = 1 - metrics["missed_tumours"] / max(1, metrics["n_with_tumour"])
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "cases.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(args.out / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=2) + "\n"))
    print(f"{metrics['n_scored']} of {metrics['n_cases']} cases scored on their input grids (seeds {args.seeds})")
    print("| | liver | tumour | mean |\n| --- | --- | --- | --- |")
    print(f"| Dice | {metrics['dice_liver']:.3f} | {metrics['dice_tumour']:.3f} | {metrics['dice_mean']:.3f} |")
    print(f"| HD95 (mm) | {metrics['hd95_liver_mm']:.1f} | {metrics['hd95_tumour_mm']:.1f} | |")
    print(f"missed tumours: {metrics['missed_tumours']} of {metrics['n_with_tumour']} "
          f"(detection rate {metrics['detection_rate']:.3f}): no tumour in {metrics['missed_cases']}, "
          f"a tumour only off the true one in {metrics['found_elsewhere_cases']}; {args.out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
