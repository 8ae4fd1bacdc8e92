"""``python -m neonet_ext.study``: run (or continue) the study and write its tables."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from neonet_ext.study.grid import BASELINES, PATTENNET
from neonet_ext.study.profiles import PROFILE_NAMES, load_profile
from neonet_ext.study.runner import PATCH_SOURCES, Study


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neonet_ext.study",
        description="The seed's two tables (models x synthetic ratios, PattenNet ablations) by 5-fold cross-validation "
                    "on one cohort. Killed halfway, the same command continues where it stopped.",
    )
    parser.add_argument("--cohort", help="Decathlon-style dataset folder (dataset.json with 'training' items: image, "
                                         "label, pni); default: the profile's synthetic cohort, made in OUT/cohort")
    parser.add_argument("--profile", default="quick",
                        help=f"sizes and budgets: {', '.join(PROFILE_NAMES)} (default quick), or a profile JSON file")
    parser.add_argument("--out", required=True, help="the study's folder (results, tables, MLflow store mlruns.db)")
    parser.add_argument("--patches", choices=PATCH_SOURCES, default="neoseg",
                        help="cut the TLCR patches around NeoSeg's segmentation (default) or the ground-truth labels")
    parser.add_argument("--shared-generator", action="store_true",
                        help="train one NeoGen on all patients instead of one per fold; faster, but LEAKY (the results say so)")
    parser.add_argument("--models", nargs="+", metavar="MODEL", choices=(*BASELINES, PATTENNET),
                        help="a partial grid of these models only (default: the profile's, all of table 1)")
    parser.add_argument("--workers", type=int, help="bundle runs at a time on this machine (default: the profile's)")
    parser.add_argument("--address", help="run on this Ray cluster (host:port of its head, ray://host:port, or auto) "
                                          "instead of a local Ray instance; its nodes must see --out and the bundles "
                                          "at the same paths")
    parser.add_argument("--gpus-per-task", type=float, default=0, help="GPUs Ray gives each bundle run (default 0)")
    parser.add_argument("--folds-only", action="store_true",
                        help="stop after cutting the patches and writing the folds: OUT/cohort_summary.json gives the "
                             "cohort's size and, for a synthetic cohort, the oracle and sign-reader AUCs under these "
                             "folds (minutes; the full run reuses this work)")
    parser.add_argument("--no-tracking", action="store_true", help="do not log runs to MLflow (OUT/mlruns.db)")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile)
        if args.models:
            profile = profile.with_models(args.models)
        if args.workers:
            import dataclasses

            profile = dataclasses.replace(profile, workers=args.workers)
        study = Study(args.out, profile, cohort=args.cohort, patch_source=args.patches,
                      shared_generator=args.shared_generator, tracking=not args.no_tracking,
                      address=args.address, gpus_per_task=args.gpus_per_task)
        if args.folds_only:
            study.references()
            return 0
        return study.run()
    except (FileNotFoundError, ValueError, RuntimeError, ConnectionError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
