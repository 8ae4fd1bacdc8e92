"""`make demo`: the whole NeoNet chain, MRI -> NeoSeg -> TLCR -> NeoCls, on the shipped synthetic sample.

    python -m neonet_ext.demo --out output/demo [--dataset_dir DIR]

Runs the command a user runs::

    python -m monai.bundle run --config_file bundles/neocls/configs/inference.json --output_dir OUT

(on NeoSeg's two-case sample unless ``--dataset_dir`` names another folder of volumes), then
prints one line per case: the PNI probability, the tumour volume, the true PNI status when
the folder's cohort has one (``cohort.csv`` beside it, as the synthetic generator writes),
and the one-page PNG to look at. The exit status is the chain's.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

from neonet_ext.utils.bundle import bundle_root


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("output/demo"), help="output folder")
    parser.add_argument("--dataset_dir", type=Path, help="folder of HBP volumes (default: NeoSeg's sample)")
    args = parser.parse_args(argv)

    neocls = Path(bundle_root("neocls"))
    dataset_dir = args.dataset_dir or neocls.parent / "neoseg" / "sample_data" / "imagesTr"
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(neocls / "configs" / "inference.json"),
               "--dataset_dir", str(dataset_dir), "--output_dir", str(args.out)]
    print("$ " + " ".join(command[1:]).replace(str(Path.cwd()) + "/", ""), flush=True)
    status = subprocess.run(command).returncode
    table = args.out / "predictions.csv"
    if not table.is_file():
        return status or 1

    cohort = dataset_dir.parent / "cohort.csv"
    truth = {row["case_id"]: row["pni"] for row in read_rows(cohort)} if cohort.is_file() else {}
    print(f"\n{'case':12s} {'PNI probability':>16s} {'tumour ml':>10s} {'true PNI':>9s}  one-page report")
    for row in read_rows(table):
        case = row["case"]
        if row["error"]:
            print(f"{case:12s} FAILED: {row['error']}")
            continue
        probability = row["pni_probability"] or "no tumour"
        volume = f"{float(row['tumour_volume_ml']):.1f}" if row["tumour_volume_ml"] else ""
        true = {"1": "PNI+", "0": "PNI-"}.get(truth.get(case, ""), "?")
        print(f"{case:12s} {probability:>16s} {volume:>10s} {true:>9s}  {args.out / case / f'{case}_report.png'}")
    print(f"\nall outputs (segmentation, TLCR patch, attention map, report) in {args.out}/<case>/; table {table}")
    print("Demo weights trained on synthetic data: research and demonstration only, not for clinical use.")
    return status


if __name__ == "__main__":
    sys.exit(main())
