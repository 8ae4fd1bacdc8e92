"""The four NeoSeg networks under one CPU training budget: the Dice each reaches on held-out cases.

    .venv/bin/python benchmarks/bench_neoseg_networks.py                  # ~1 h on 2 cores
    .venv/bin/python benchmarks/bench_neoseg_networks.py --epochs 2 --train-cases 5 --heldout-cases 2  # ~3 min

Each network is trained from scratch with the bundle's own command,
``train.json`` layered with ``networks/<name>.json``, for ``--epochs`` epochs (the budget:
the same number of updates for every network, so the Dice figures are reproducible on
any CPU and do not depend on what else the machine runs; the wall time each network took
is printed beside them). ``--budget SECONDS`` instead gives each network the same wall time
(``--time_limit``: training stops at the end of the first epoch past it; the clock starts
after the data is cached). Every network gets the same patch (``--patch``, default
64x64x32, a size SwinUNETR also accepts), the same cohort, batch and learning rate, and
validation after every epoch, whose best checkpoint is kept. That checkpoint is then scored
by ``evaluate.json`` on a held-out cohort generated with a seed never used in training.

Data: synthetic cohorts from :mod:`neonet_ext.data.synthetic` (default geometry 160x128x64,
int16): ``--train-cases`` with seed 0 (80% training, 20% validation), ``--heldout-cases``
with seed 777. Everything is written under ``--work`` (a temporary folder by default,
removed at the end).

Prints one row per network: epochs run, training wall time, best validation mean Dice,
held-out Dice for liver and tumour and their mean, HD95 (mm) for each, all on the network's
2x2x3 mm grid.
"""

from __future__ import annotations

import argparse
import csv
import re
import tempfile
import time
from pathlib import Path

from _common import REPO, run_child
from neonet_ext.data.synthetic import SyntheticCohortConfig, write_cohort_once
from neonet_ext.utils.bundle import bundle_run_command

CONFIGS = REPO / "bundles" / "neoseg" / "configs"
NETWORKS = ("segresnet", "unet", "dynunet", "swinunetr")


def bundle_run(configs: list[str], *overrides: str, log: Path) -> str:
    return run_child(bundle_run_command([CONFIGS / c for c in configs], *overrides), log).output


def run_network(name: str, args, work: Path) -> dict:
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    configs = ["train.json", f"networks/{name}.json"]
    patch = "[" + ",".join(str(p) for p in args.patch) + "]"
    common = ["--patch_size", patch, "--num_workers", "0"]
    start = time.perf_counter()
    log = bundle_run(
        configs, *common, "--dataset_dir", str(work / "train_cohort"), "--output_dir", str(out / "run"),
        "--ckpt_dir", str(out / "models"), "--val_interval", "1", "--resume", "False",
        *(["--epochs", "100000", "--time_limit", str(args.budget)] if args.budget else ["--epochs", str(args.epochs)]),
        log=out / "train.log",
    )
    train_wall = time.perf_counter() - start
    epochs = max(int(e) for e in re.findall(r"Saved checkpoint at epoch: (\d+)", log))
    best = max(float(v) for v in re.findall(r"val_mean_dice best value: ([0-9.]+)", log))
    bundle_run(
        [*configs, "evaluate.json"], *common, "--dataset_dir", str(work / "heldout_cohort"),
        "--ckpt_dir", str(out / "models"), "--output_dir", str(out / "eval"), log=out / "evaluate.log",
    )
    with open(out / "eval" / "metrics.csv") as f:
        metrics = {row[0]: float(row[1]) for row in csv.reader(f)}
    return {"network": name, "epochs": epochs, "train_s": train_wall, "best_val_dice": best, **metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15, help="training epochs per network")
    parser.add_argument("--budget", type=float, help="training wall-time budget per network, seconds (instead of --epochs)")
    parser.add_argument("--train-cases", type=int, default=24)
    parser.add_argument("--heldout-cases", type=int, default=8)
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 64, 32])
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    parser.add_argument("--work", type=Path, help="keep cohorts, logs and checkpoints here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        int16 = SyntheticCohortConfig(image_dtype="int16")
        write_cohort_once(work / "train_cohort", args.train_cases, 0, int16)
        write_cohort_once(work / "heldout_cohort", args.heldout_cases, 777, int16)
        budget = f"{args.budget:.0f} s" if args.budget else f"{args.epochs} epochs"
        print(f"budget {budget} per network, patch {args.patch}, {args.train_cases} training cases "
              f"(seed 0), {args.heldout_cases} held-out cases (seed 777)", flush=True)
        header = "| network | epochs | training wall (s) | best val mean Dice | held-out Dice liver | tumour | mean | HD95 liver (mm) | tumour (mm) |"
        rows = []
        for name in args.networks:
            r = run_network(name, args, work)
            rows.append(
                f"| {r['network']} | {r['epochs']} | {r['train_s']:.0f} | {r['best_val_dice']:.3f} | "
                f"{r['val_liver_dice']:.3f} | {r['val_tumour_dice']:.3f} | {r['val_mean_dice']:.3f} | "
                f"{r['val_liver_hd95_mm']:.1f} | {r['val_tumour_hd95_mm']:.1f} |"
            )
            print(rows[-1], flush=True)
        print("\n" + header)
        print("|" + " --- |" * (header.count("|") - 1))
        print("\n".join(rows))


if __name__ == "__main__":
    main()
