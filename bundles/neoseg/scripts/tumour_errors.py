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
- tumour Dice by true tumour volume.

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
from neonet_ext.labels import TUMOUR
from neonet_ext.metrics import mask_dice
from neonet_ext.transforms.tumour_mask import FULL_CONNECTIVITY
from neonet_ext.utils.io import atomic_write

#: Upper edges (ml) of the true-volume bins of the Dice table; the last bin is open.
VOLUME_BINS_ML = (2.0, 5.0, 10.0, 30.0)


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
            row = case_errors(seg, case.label, case.tissues)
            row.update(case=f"seed{seed}/{case_id}", tumour_volume_ml=float(case.record["tumour_volume_ml"]))
            rows.append(row)
    if not rows:
        raise SystemExit(f"no label maps under {args.out} (run evaluate_heldout.py with the same arguments first)")

    totals = Counter()
    tissue_totals: Counter = Counter()
    for row in rows:
        totals.update({k: v for k, v in row.items() if k.startswith(("false_", "tumour_voxels")) and isinstance(v, int)})
        tissue_totals.update(row["false_positive_tissue"])
    bins: dict[str, list[float]] = {}
    for row in sorted(rows, key=lambda r: r["tumour_volume_ml"]):
        bins.setdefault(volume_bin(row["tumour_volume_ml"]), []).append(row["dice_tumour"])
    summary = {
        "seeds": args.seeds, "cases_per_cohort": args.cases, "n_cases": len(rows), "missing": missing,
        **{k: int(v) for k, v in totals.items()},
        "false_positive_tissue": dict(tissue_totals.most_common()),
        "dice_tumour_by_volume": {name: {"n": len(d), "mean": float(np.mean(d))} for name, d in bins.items()},
    }
    atomic_write(args.out / "tumour_errors.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))

    fp, fn = max(totals["false_positive"], 1), max(totals["false_negative"], 1)
    print(f"{len(rows)} cases (seeds {args.seeds}), {totals['tumour_voxels']} true tumour voxels")
    print(f"false positives {totals['false_positive']}: {totals['false_positive_touching'] / fp:.0%} touch the true "
          f"tumour; by tissue: " + ", ".join(f"{k} {v / fp:.0%}" for k, v in tissue_totals.most_common(6)))
    print(f"false negatives {totals['false_negative']}: {totals['false_negative_outer_layer'] / fn:.0%} in the true "
          "tumour's outer voxel layer")
    print("| true tumour volume | cases | tumour Dice |\n| --- | --- | --- |")
    for name, d in bins.items():
        print(f"| {name} | {len(d)} | {np.mean(d):.3f} |")
    if missing:
        print(f"{len(missing)} label maps missing, e.g. {missing[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
