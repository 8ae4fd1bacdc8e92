"""Score the NeoCls chain on held-out synthetic cohorts, against the cohort's oracle.

    python bundles/neocls/scripts/evaluate_heldout.py --out output/neocls_heldout --seeds 1001 1002 --cases 48

For each seed a synthetic cohort is generated (seeds the shipped weights never saw: NeoSeg,
NeoGen and NeoCls train on seed 0; one permuted block per cohort, so each has the study's
PNI+ share), and the whole chain runs on its raw volumes with
``configs/inference.json`` (NeoSeg -> TLCR -> PattenNet). The probabilities are then scored
against the cohort's PNI labels: ROC AUC with a bootstrap 95% CI, the oracle AUC (the
generator's latent ``pni_risk``, the best any model could rank), the sign-reader AUC (a
logistic model on the exact imaging signs of the cohort the shipped weights trained on,
``--reader_seed``/``--reader_cases``: what a flawless reader of the image could reach),
PattenNet's ratio to each, the expected calibration error, and a reliability plot. Cases the input gate refuses
(no tumour found among them) get no probability and are counted, not scored: every case of a synthetic
cohort is what NeoNet was made for, so each refusal is a false one (``false_refusal_rate``, with the
reasons counted in ``refusal_reasons``).

Writes ``OUT/metrics.json``, ``OUT/predictions.csv`` (``case``, ``pni_probability``, ``pni``),
``OUT/reliability.png`` and each cohort's chain outputs under ``OUT/seed_<S>/``; extra
arguments after ``--`` go to ``monai.bundle run`` (e.g. ``-- --checkpoint other.pt``).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from neonet_ext.data.synthetic import sample_cohort_latents, scoring_cohort_config, sign_reader_auc, write_cohort_once
from neonet_ext.engines import ClassificationReport
from neonet_ext.roc import roc_auc
from neonet_ext.utils.io import atomic_write

BUNDLE = Path(__file__).resolve().parents[1]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_cohort(out: Path, seed: int, cases: int, config_file: str, extra: list[str]) -> list[dict]:
    """Generate one cohort, run the chain on it; rows of (case, probability, error, pni, pni_risk, latents)."""
    cohort = out / "cohort"
    write_cohort_once(cohort, cases, seed, scoring_cohort_config(cases))
    # a re-run keeps the cases an earlier (perhaps interrupted) run finished with the same input and weights;
    # a failed case makes the run exit non-zero; its row still says why, and it is not scored
    subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", config_file,
                    "--dataset_dir", str(cohort / "imagesTr"),
                    "--output_dir", str(out / "chain"), *extra], check=False)
    truth = {row["case_id"]: row for row in read_csv(cohort / "cohort.csv")}
    rows = []
    for row in read_csv(out / "chain" / "predictions.csv"):
        case = truth[row["case"]]
        rows.append({"case": f"seed{seed}/{row['case']}", "probability": row["pni_probability"],
                     "error": row["error"], "refused": row.get("refused", ""),
                     "pni": int(case["pni"]), "pni_risk": float(case["pni_risk"]),
                     "attention_in_tumour_rim": row.get("attention_in_tumour_rim", ""),
                     "tumour_rim_share": row.get("tumour_rim_share", ""), "latents": case})
    return rows


def attention_summary(rows: list[dict]) -> dict[str, float | int]:
    """Mean share of the attention mass within the tumour and its 10 mm rim, and mean share of the patch
    that region takes, over the cases with a map (an even map scores the second)."""
    pairs = [(float(r["attention_in_tumour_rim"]), float(r["tumour_rim_share"])) for r in rows
             if r.get("attention_in_tumour_rim") not in ("", None)]
    if not pairs:
        return {"n_attention_maps": 0}
    mass, region = np.mean(pairs, axis=0)
    return {"n_attention_maps": len(pairs), "attention_in_tumour_rim_mean": float(mass),
            "tumour_rim_share_mean": float(region), "attention_over_region_share": float(mass / region)}


def refusal_summary(rows: list[dict]) -> dict[str, object]:
    """How many cases the input gate refused, and how often each reason came (its words before any number)."""
    refused = [r["refused"] for r in rows if r.get("refused")]
    reasons: dict[str, int] = {}
    for text in refused:
        for reason in text.split("; "):
            name = reason.split(" of ")[0] if reason.startswith("segmented liver") else reason.split(" (")[0]
            reasons[name] = reasons.get(name, 0) + 1
    return {"n_refused": len(refused), "false_refusal_rate": len(refused) / len(rows) if rows else float("nan"),
            "refusal_reasons": dict(sorted(reasons.items()))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("output/neocls_heldout"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1001, 1002])
    parser.add_argument("--cases", type=int, default=48, help="cases per cohort")
    parser.add_argument("--config_file", default=str(BUNDLE / "configs" / "inference.json"),
                        help="the chain's config (a list \"['a.json','b.json']\" layers overrides)")
    parser.add_argument("--reader_seed", type=int, default=0, help="seed of the sign reader's training cohort")
    parser.add_argument("--reader_cases", type=int, default=96, help="cases of the sign reader's training cohort")
    parser.add_argument("bundle_args", nargs="*", help="after --: overrides for monai.bundle run")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    rows = [r for seed in args.seeds for r in run_cohort(args.out / f"seed_{seed}", seed, args.cases, args.config_file, args.bundle_args)]
    scored = [r for r in rows if r["probability"] not in ("", None)]
    labels = np.array([r["pni"] for r in rows])
    report = ClassificationReport(args.out, seed=0)
    report.rows = [(r["case"], float(r["probability"]), r["pni"]) for r in scored]
    figures = report.write()
    oracle = roc_auc(labels, [r["pni_risk"] for r in rows])
    oracle_scored = roc_auc([r["pni"] for r in scored], [r["pni_risk"] for r in scored])
    reader = sign_reader_auc(sample_cohort_latents(args.reader_cases, args.reader_seed),
                             pd.DataFrame([r["latents"] for r in scored]))
    figures.update({
        "seeds": args.seeds, "cases_per_cohort": args.cases, "n_generated": len(rows),
        "n_without_probability": len(rows) - len(scored),
        "failed_cases": [r["case"] for r in rows if r["error"]],
        **refusal_summary(rows),
        "oracle_auc": oracle, "oracle_auc_scored_cases": oracle_scored,
        "auc_over_oracle": figures["roc_auc"] / oracle_scored,
        "sign_reader_auc_scored_cases": reader, "sign_reader_over_oracle": reader / oracle_scored,
        "auc_over_sign_reader": figures["roc_auc"] / reader,
        # where the attention maps look: their mass within tumour + 10 mm against that region's share of the patch
        **attention_summary(scored),
        "wall_seconds": round(time.perf_counter() - start, 1),
    })
    atomic_write(args.out / "metrics.json", lambda tmp: tmp.write_text(json.dumps(figures, indent=2) + "\n"))
    print(f"oracle AUC {oracle_scored:.3f} on the scored cases ({oracle:.3f} on all {len(rows)}); "
          f"PattenNet / oracle = {figures['auc_over_oracle']:.3f}; sign reader {reader:.3f} "
          f"({reader / oracle_scored:.3f} x oracle); attention in tumour + 10 mm "
          f"{figures.get('attention_in_tumour_rim_mean', float('nan')):.2f} of its mass on "
          f"{figures.get('tumour_rim_share_mean', float('nan')):.2f} of the patch; {len(rows) - len(scored)} cases without a "
          f"probability ({figures['n_refused']} refused by the input gate: {figures['refusal_reasons']}); {args.out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
