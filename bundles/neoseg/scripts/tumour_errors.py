"""Where NeoSeg's tumour Dice is lost on held-out synthetic cohorts: by tumour size, at the boundary or away
from it, and on which tissue of the generator.

    python bundles/neoseg/scripts/tumour_errors.py --out output/neoseg_heldout --seeds 1001 1002 --cases 48

Reads the label maps that ``evaluate_heldout.py`` wrote with the same ``--out``, ``--seeds`` and ``--cases``
(``OUT/seed_<S>/neoseg/<case>/<case>_seg.nii.gz``) and regenerates each case with the generator's tissue masks
(``OUT/seed_<S>/cohort/labelsTr`` must hold the same label map, so a cohort made with other settings is refused).
On each input grid it counts:

- false-positive tumour voxels (tumour in the output, not in the truth), how many of them touch the true tumour
  (26-neighbours: a boundary placed one voxel out), and the generator tissue each belongs to (liver
  parenchyma, a portal or hepatic vein, a bile duct, ...);
- false-negative tumour voxels, and how many lie in the true tumour's outer voxel layer;
- tumour Dice by true tumour volume;
- beside it, the tumour Dice of an intensity oracle: a threshold on the case's image (as NeoSeg read it, from
  ``OUT/seed_<S>/cohort/imagesTr``) that is told where the true boundary lies to within
  ``ORACLE_BAND_VOXELS`` voxels (:func:`intensity_oracle`). It is a reference for what the input grid's voxels
  show of the boundary, not a bound: a model that knows the tumour's shape may do better.

Prints the tables and writes ``OUT/tumour_errors.json``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from neonet_ext.data.synthetic import generate_case, scoring_cohort_config
from neonet_ext.labels import LIVER, TUMOUR
from neonet_ext.metrics import mask_dice
from neonet_ext.transforms.tumour_mask import FULL_CONNECTIVITY
from neonet_ext.utils.io import atomic_write

#: Upper edges (ml) of the true-volume bins of the Dice table; the last bin is open.
VOLUME_BINS_ML = (2.0, 5.0, 10.0, 30.0)
#: The intensity oracle is told the true tumour boundary to within this many voxels (face-connected steps,
#: scipy's default structure).
ORACLE_BAND_VOXELS = 2
#: Its thresholds, as fractions of the way from the tumour core's median intensity to the nearby liver's.
ORACLE_FRACTIONS = tuple(np.round(np.linspace(0.2, 0.8, 13), 2))


def intensity_oracle(image: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """Tumour Dice of an intensity threshold that is told where the true boundary lies.

    ``image`` and ``label`` (X, Y, Z) on one grid. Voxels more than ``ORACLE_BAND_VOXELS`` steps inside the
    true tumour are tumour, voxels more than that outside are not; in the band between, a voxel is tumour when
    it is darker (the HBP tumour is darker than liver) than ``t_core + f * (t_liver - t_core)``: ``t_core`` the
    median of the tumour beyond the band (of the whole tumour if none is), ``t_liver`` the median of the liver
    two more steps out (of all liver if none is there). Returns ``{"midpoint": Dice at f = 0.5, "best": the
    best Dice over ORACLE_FRACTIONS}``; NaN without a tumour.
    """
    truth = label == TUMOUR
    if not truth.any():
        return {"midpoint": float("nan"), "best": float("nan")}
    band = ORACLE_BAND_VOXELS
    core = ndimage.binary_erosion(truth, iterations=band)
    outside = ndimage.binary_dilation(truth, iterations=band)
    near_liver = ndimage.binary_dilation(truth, iterations=2 * band) & ~outside & (label == LIVER)
    t_core = np.median(image[core if core.any() else truth])
    t_liver = np.median(image[near_liver if near_liver.any() else label == LIVER])
    in_band = outside & ~core
    dice = {f: mask_dice(core | (in_band & (image < t_core + f * (t_liver - t_core))), truth) for f in ORACLE_FRACTIONS}
    return {"midpoint": dice[0.5], "best": max(dice.values())}


def case_errors(seg: np.ndarray, label: np.ndarray, tissues: dict[str, np.ndarray]) -> dict:
    """Tumour errors of one case: ``seg`` and ``label`` (X, Y, Z) label maps on one grid, ``tissues`` the
    generator's bool masks of the same shape."""
    truth, pred = label == TUMOUR, seg == TUMOUR
    false_pos, false_neg = pred & ~truth, truth & ~pred
    shell = ndimage.binary_dilation(truth, FULL_CONNECTIVITY) & ~truth
    outer_layer = truth & ~ndimage.binary_erosion(truth, FULL_CONNECTIVITY)
    return {
        "tumour_voxels": int(truth.sum()), "dice_tumour": mask_dice(pred, truth),
        "false_positive": int(false_pos.sum()), "false_positive_touching": int((false_pos & shell).sum()),
        "false_negative": int(false_neg.sum()), "false_negative_outer_layer": int((false_neg & outer_layer).sum()),
        "false_positive_tissue": {name: int((false_pos & mask).sum()) for name, mask in tissues.items()
                                  if (false_pos & mask).any()},
    }


def volume_bin(volume_ml: float) -> str:
    lower = 0.0
    for upper in VOLUME_BINS_ML:
        if volume_ml < upper:
            return f"{lower:g}-{upper:g} ml"
        lower = upper
    return f">= {lower:g} ml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("output/neoseg_heldout"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[777])
    parser.add_argument("--cases", type=int, default=48, help="cases per cohort, as evaluate_heldout.py made them")
    args = parser.parse_args(argv)
    config = scoring_cohort_config(args.cases)
    rows, missing = [], []
    for seed in args.seeds:
        for index in range(args.cases):
            case_id = f"case_{index:03d}"
            seg_file = args.out / f"seed_{seed}" / "neoseg" / case_id / f"{case_id}_seg.nii.gz"
            if not seg_file.is_file():
                missing.append(str(seg_file))
                continue
            label_file = args.out / f"seed_{seed}" / "cohort" / "labelsTr" / f"{case_id}.nii.gz"
            if not label_file.is_file():
                raise SystemExit(f"{label_file}: missing; run evaluate_heldout.py with the same arguments first")
            case = generate_case(index, seed, config, return_tissues=True)
            if not np.array_equal(np.asarray(nib.load(label_file).dataobj), case.label):
                raise SystemExit(f"{label_file}: not case {index} of the cohort (seed {seed}, {args.cases} cases) that "
                                 "evaluate_heldout.py makes; pass its --seeds and --cases")
            seg = np.asarray(nib.load(seg_file).dataobj)
            if seg.shape != case.label.shape:
                raise SystemExit(f"{seg_file}: shape {seg.shape}, not its input's {case.label.shape}")
            image_file = label_file.parents[1] / "imagesTr" / label_file.name
            if not image_file.is_file():
                raise SystemExit(f"{image_file}: missing; the intensity oracle reads the image NeoSeg segmented")
            oracle = intensity_oracle(np.asarray(nib.load(image_file).dataobj, np.float32), case.label)
            row = case_errors(seg, case.label, case.tissues)
            row.update(case=f"seed{seed}/{case_id}", tumour_volume_ml=float(case.record["tumour_volume_ml"]),
                       oracle_midpoint=oracle["midpoint"], oracle_best=oracle["best"])
            rows.append(row)
    if not rows:
        raise SystemExit(f"no label maps under {args.out} (run evaluate_heldout.py with the same arguments first)")

    totals = Counter()
    tissue_totals: Counter = Counter()
    for row in rows:
        totals.update({k: v for k, v in row.items() if k.startswith(("false_", "tumour_voxels")) and isinstance(v, int)})
        tissue_totals.update(row["false_positive_tissue"])
    scored = ("dice_tumour", "oracle_midpoint", "oracle_best")

    def means(d: np.ndarray) -> dict:
        return {"n": len(d), **dict(zip(scored, map(float, d.mean(axis=0))))} if len(d) else {"n": 0}

    with_tumour = sorted((row for row in rows if row["tumour_voxels"]), key=lambda r: r["tumour_volume_ml"])
    every = np.array([[row[k] for k in scored] for row in with_tumour]).reshape(-1, len(scored))
    names = [volume_bin(row["tumour_volume_ml"]) for row in with_tumour]
    bins = {name: every[[n == name for n in names]] for name in dict.fromkeys(names)}
    # where NeoSeg put some tumour on the true one: its boundary against the oracle's, detection aside
    found = every[every[:, 0] > 0]
    summary = {
        "seeds": args.seeds, "cases_per_cohort": args.cases, "n_cases": len(rows), "missing": missing,
        **{k: int(v) for k, v in totals.items()},
        "false_positive_tissue": dict(tissue_totals.most_common()),
        "dice_tumour_by_volume": {name: means(d) for name, d in bins.items()},
        "all_tumours": means(every), "found_tumours": means(found),
    }
    atomic_write(args.out / "tumour_errors.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))

    fp, fn = max(totals["false_positive"], 1), max(totals["false_negative"], 1)
    print(f"{len(rows)} cases (seeds {args.seeds}), {totals['tumour_voxels']} true tumour voxels")
    print(f"false positives {totals['false_positive']}: {totals['false_positive_touching'] / fp:.0%} touch the true "
          f"tumour; by tissue: " + ", ".join(f"{k} {v / fp:.0%}" for k, v in tissue_totals.most_common(6)))
    print(f"false negatives {totals['false_negative']}: {totals['false_negative_outer_layer'] / fn:.0%} in the true "
          "tumour's outer voxel layer")
    print("| true tumour volume | cases | tumour Dice | intensity oracle, midpoint | intensity oracle, best threshold |\n"
          "| --- | --- | --- | --- | --- |")
    for name, d in [*bins.items(), ("all", every), ("tumours NeoSeg found", found)]:
        if len(d):
            print(f"| {name} | {len(d)} | " + " | ".join(f"{m:.3f}" for m in np.mean(d, axis=0)) + " |")
    if missing:
        print(f"{len(missing)} label maps missing, e.g. {missing[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
