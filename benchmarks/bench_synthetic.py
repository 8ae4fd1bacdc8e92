"""Synthetic cohort: oracle AUC against --effect, and generation time per case.

    .venv/bin/python benchmarks/bench_synthetic.py [--draws 2000] [--cases 3]

The oracle AUC is the ROC AUC of the generator's latent ``pni_risk`` for ``pni``
(what a perfect reader of the imaging signs could reach at most), from
``sample_cohort_latents`` (no images). Times are for ``generate_case`` in memory,
default (160x128x64) and full-size (320x260x80) geometry, writing excluded.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neonet_ext.data.synthetic import SyntheticCohortConfig, generate_case, sample_cohort_latents
from neonet_ext.roc import roc_auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"oracle AUC over {args.draws} latent draws, seed {args.seed}")
    for effect in (0.0, 0.5, 1.0, 1.5, 2.0):
        latents = sample_cohort_latents(args.draws, args.seed, SyntheticCohortConfig(effect=effect))
        print(f"  effect {effect:3.1f}: {roc_auc(latents['pni'], latents['pni_risk']):.3f}")

    for name, config in (("default", SyntheticCohortConfig()), ("full-size", SyntheticCohortConfig.full_size())):
        generate_case(0, args.seed, config)  # warm-up
        times = []
        for index in range(1, args.cases + 1):
            t0 = time.perf_counter()
            generate_case(index, args.seed, config)
            times.append(time.perf_counter() - t0)
        print(f"generate_case {name} {config.shape}: median {np.median(times):.2f} s over {args.cases} cases")


if __name__ == "__main__":
    main()
