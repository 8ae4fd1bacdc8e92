"""How PattenNet's held-out AUC grows with the number of training patients, next to the sign reader's.

    python bundles/neocls/scripts/training_size.py --out output/neocls_size --sizes 96 288 --heldout 144 --epochs 12
    # two held-out cohorts: 144 cases of seed 2001 and 500 of seed 2002
    python bundles/neocls/scripts/training_size.py ... --heldout 144 500 --heldout_seed 2001 2002

One synthetic training cohort (seed 0, as many cases as the largest size) and one or more held-out
cohorts (``--heldout`` cases of each ``--heldout_seed``, never used for training) are generated, and TLCR cuts each case's
patch around its ground-truth labels (``neonet_ext.study.patches.ground_truth_patches``), so
that NeoSeg's errors and NeoGen's synthetic patches are both left out: the comparison isolates
the training-set size. For each size n, PattenNet trains with ``configs/train.json`` on the
first n patients (real patches only, the bundle's validation split and seed) for a fixed
number of epochs, and the last epoch's weights are scored on each held-out cohort's patches with
``configs/evaluate.json`` (a size whose last epoch's checkpoint is there is not trained again, only
scored on the cohorts it has no scores for). The sign reader (``neonet_ext.data.synthetic.sign_reader_auc``) is
fit on the same training patients' exact imaging signs and scored on the held-out ones.

With ``--synthetic_ratio r`` each size trains on real + synthetic patches as ``train.json`` mixes them:
NeoGen (``--neogen_models``, its ``inference.json`` with ``--neogen_override`` layered) generates the
``round(r x (n_negative - n_positive))`` PNI+ patches from the masks of that size's training-split PNI+
patients into ``OUT/n<n>/synthetic/`` (kept and reused when it holds enough), so nothing of a validation or
held-out patient reaches training.

Writes ``OUT/results.csv`` and ``OUT/results.md`` (a row per size and held-out cohort: PattenNet AUC
with its bootstrap 95% CI, the reader's AUC, the oracle, the ratios, the training's wall minutes) and
``OUT/learning_curve.png`` (on the first held-out cohort); extra arguments after ``--`` go to
the training and evaluation runs alike, so that both build the same network (e.g.
``-- --batch_size 4 --network_def#strides "[2,2]"``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from neonet_ext.data import load_patch_datalist, patches_with_tumour, split_cases, synthetic_needed, write_patch_datalist
from neonet_ext.data.synthetic import scoring_cohort_config, sign_reader_auc, write_cohort_once
from neonet_ext.engines import latest_checkpoint
from neonet_ext.roc import roc_auc
from neonet_ext.utils.bundle import bundle_run_command
from neonet_ext.utils.io import atomic_write
from neonet_ext.utils.tables import write_csv
from neonet_ext.visualize import save_learning_curve

BUNDLE = Path(__file__).resolve().parents[1]
NEOSEG = BUNDLE.parent / "neoseg"
NEOGEN = BUNDLE.parent / "neogen"


def cohort_patches(folder: Path, cases: int, seed: int) -> tuple[Path, pd.DataFrame]:
    """Generate a cohort (one permuted block: the study's PNI+ share) and cut its ground-truth patches."""
    from neonet_ext.study.patches import ground_truth_patches

    cohort, patches = folder / "cohort", folder / "patches"
    dataset = write_cohort_once(cohort, cases, seed, scoring_cohort_config(cases))
    if not (patches / "patches.json").is_file():
        print(f"== ground-truth patches -> {patches}", flush=True)
        ground_truth_patches(str(dataset), str(patches), str(NEOSEG))
    latents = pd.read_csv(cohort / "cohort.csv", dtype={"case_id": str}).set_index("case_id")
    return patches / "patches.json", latents


def run_bundle(config_files: list[str], overrides: list[str], log: Path) -> None:
    with log.open("w") as f:
        result = subprocess.run(bundle_run_command(config_files, *overrides), stdout=f, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"bundle run failed (exit {result.returncode}): see {log}")


def synthetic_positives(run: Path, train_split: list[dict], ratio: float, neogen_models: str,
                        neogen_layers: list[str]) -> Path:
    """NeoGen's PNI+ patches for ``train.json``'s ``--synthetic_ratio ratio`` on ``train_split``, generated from the
    masks of its PNI+ patients into ``run/synthetic/`` unless a datalist there already holds enough."""
    needed = synthetic_needed(sum(item["pni"] == 0 for item in train_split), sum(item["pni"] == 1 for item in train_split),
                              ratio)
    folder = run / "synthetic"
    datalist = folder / "synthetic_patches.json"
    if datalist.is_file() and sum(item["pni"] == 1 for item in load_patch_datalist(datalist, required_keys=["patch", "pni"])) >= needed:
        return datalist
    positives = write_patch_datalist([item for item in train_split if item["pni"] == 1], run / "train_positives.json")
    print(f"== generating {needed} synthetic PNI+ patches with NeoGen ({neogen_models}) -> {folder}", flush=True)
    run_bundle([str(NEOGEN / "configs" / "inference.json"), *neogen_layers],
               ["--datalist_file", str(positives), "--ckpt_dir", neogen_models, "--class_index", "1",
                "--num_samples", str(needed), "--seed", "0", "--output_dir", str(folder)], run / "synthetic.log")
    return datalist


DEFAULT_HELDOUT_SEED = 2001


class HeldOutCohort(NamedTuple):
    seed: int
    suffix: str  # of its folders: heldout<suffix>/ and, in each run, eval<suffix>/
    patches_file: Path
    items: list[dict]  # the cases with a tumour patch
    latents: pd.DataFrame  # their generator latents (signs, pni, pni_risk)
    oracle_auc: float


def heldout_suffix(seed: int) -> str:
    """The default held-out cohort keeps the plain folder names (``heldout``, ``eval``); others end in their seed."""
    return "" if seed == DEFAULT_HELDOUT_SEED else f"_{seed}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 288], help="training patients per run")
    parser.add_argument("--heldout", type=int, nargs="+", default=[144], help="patients of each held-out cohort")
    parser.add_argument("--heldout_seed", type=int, nargs="+", default=[DEFAULT_HELDOUT_SEED],
                        help="seed of each held-out cohort")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--learning_rate", type=float, default=0.001)
    parser.add_argument("--override", help="a config file layered on train.json for training and evaluation alike "
                                           "(e.g. other network widths)")
    parser.add_argument("--synthetic_ratio", type=float, default=0.0,
                        help="train on real + NeoGen PNI+ patches at this ratio (train.json's --synthetic_ratio)")
    parser.add_argument("--neogen_models", default=str(NEOGEN / "models"), help="NeoGen's weights for --synthetic_ratio")
    parser.add_argument("--neogen_override", nargs="+", default=[], help="config files layered on NeoGen's inference.json")
    args, extra = parser.parse_known_args(argv)
    if len(args.heldout) != len(args.heldout_seed):
        parser.error(f"--heldout gives {len(args.heldout)} cohort sizes but --heldout_seed {len(args.heldout_seed)} seeds")
    extra = [a for a in extra if a != "--"]
    layers = [args.override] if args.override else []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_file, train_latents = cohort_patches(out / "train", max(args.sizes), 0)
    heldout = []
    for cases, seed in zip(args.heldout, args.heldout_seed):
        suffix = heldout_suffix(seed)
        test_file, test_latents = cohort_patches(out / f"heldout{suffix}", cases, seed)
        test_items = patches_with_tumour(load_patch_datalist(test_file, required_keys=["patch", "pni"]))
        test_latents = test_latents.loc[[item["case_id"] for item in test_items]]
        oracle = roc_auc(test_latents["pni"], test_latents["pni_risk"])
        heldout.append(HeldOutCohort(seed, suffix, test_file, test_items, test_latents, oracle))
    all_train = load_patch_datalist(train_file, required_keys=["patch", "pni"])

    rows = []
    for n in sorted(args.sizes):
        run = out / f"n{n}"
        run.mkdir(exist_ok=True)
        datalist = run / "patches.json"
        write_patch_datalist(all_train[:n], datalist)
        # the bundle's own split: the reader learns from the same patients PattenNet trains on
        train_split, _ = split_cases(patches_with_tumour(all_train[:n]), 0.2, seed=0, stratify_by="pni")
        checkpoints = run / "runs" / "checkpoints"
        timing = run / "training_minutes.json"
        if not (checkpoints / f"checkpoint_epoch={args.epochs}.pt").is_file():  # else trained by an earlier call
            synthetic = []
            if args.synthetic_ratio > 0:
                synthetic_file = synthetic_positives(run, train_split, args.synthetic_ratio, args.neogen_models,
                                                     args.neogen_override)
                synthetic = ["--synthetic_datalist_file", str(synthetic_file), "--synthetic_ratio", str(args.synthetic_ratio)]
            start = time.perf_counter()
            print(f"== n={n}: training PattenNet for {args.epochs} epochs on {len(train_split)} patients", flush=True)
            run_bundle([str(BUNDLE / "configs" / "train.json"), *layers],
                       ["--datalist_file", str(datalist), "--output_dir", str(run / "runs"), "--ckpt_dir", str(run / "models"),
                        "--epochs", str(args.epochs), "--learning_rate", str(args.learning_rate), "--resume", "False",
                        *synthetic, *extra],
                       run / "train.log")
            atomic_write(timing, lambda tmp: tmp.write_text(json.dumps({"minutes": round((time.perf_counter() - start) / 60, 2)})))
        training_minutes = json.loads(timing.read_text())["minutes"] if timing.is_file() else None  # None: trained before it was timed
        for seed, suffix, test_file, test_items, test_latents, oracle in heldout:  # scored where not yet
            evaluation = run / f"eval{suffix}"
            if not (evaluation / "metrics.json").is_file():
                run_bundle([str(BUNDLE / "configs" / "train.json"), *layers, str(BUNDLE / "configs" / "evaluate.json")],
                           ["--datalist_file", str(test_file), "--output_dir", str(evaluation),
                            "--checkpoint", latest_checkpoint(str(checkpoints)), *extra], run / f"eval{suffix}.log")
            metrics = json.loads((evaluation / "metrics.json").read_text())
            reader = sign_reader_auc(train_latents.loc[[item["case_id"] for item in train_split]], test_latents)
            rows.append({"n_patients": n, "n_train": len(train_split), "synthetic_ratio": args.synthetic_ratio, "heldout_seed": seed, "n_heldout": len(test_items),
                         "pattennet_auc": metrics["roc_auc"], "ci95_low": metrics["roc_auc_ci95_low"],
                         "ci95_high": metrics["roc_auc_ci95_high"], "sign_reader_auc": reader, "oracle_auc": oracle,
                         "auc_over_oracle": metrics["roc_auc"] / oracle, "auc_over_sign_reader": metrics["roc_auc"] / reader,
                         "training_minutes": training_minutes})
            print(f"== n={n}, held-out seed {seed}: PattenNet AUC {metrics['roc_auc']:.3f}, sign reader {reader:.3f}, "
                  f"oracle {oracle:.3f}", flush=True)

    write_csv(out / "results.csv", list(rows[0]), rows, float_format="{}")
    table = ["| patients (training split) | held-out (seed) | PattenNet AUC (95% CI) | sign reader | oracle | "
             "PattenNet / oracle | PattenNet / reader |", "| --- | --- | --- | --- | --- | --- | --- |"]
    table += [f"| {r['n_patients']} ({r['n_train']}) | {r['n_heldout']} ({r['heldout_seed']}) | {r['pattennet_auc']:.3f} "
              f"({r['ci95_low']:.3f}–{r['ci95_high']:.3f}) | {r['sign_reader_auc']:.3f} | {r['oracle_auc']:.3f} | "
              f"{r['auc_over_oracle']:.2f} | {r['auc_over_sign_reader']:.2f} |" for r in rows]
    text = "\n".join(table) + "\n"
    atomic_write(out / "results.md", lambda tmp: tmp.write_text(text))
    first = [r for r in rows if r["heldout_seed"] == args.heldout_seed[0]]
    save_learning_curve([r["n_patients"] for r in first], [r["pattennet_auc"] for r in first],
                        [(r["ci95_low"], r["ci95_high"]) for r in first], [r["sign_reader_auc"] for r in first],
                        out / "learning_curve.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
