"""Command line of the synthetic cohort: ``python -m neonet_ext.data.synthetic --out DIR ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from neonet_ext.data import synthetic
from neonet_ext.data.synthetic.cohort import GENERATOR_MODULE, _write_cohort, summary_line
from neonet_ext.data.synthetic.config import SyntheticCohortConfig

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    defaults = SyntheticCohortConfig()
    parser = argparse.ArgumentParser(
        prog="python -m neonet_ext.data.synthetic", description=synthetic.__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--cases", type=int, default=128, help="number of cases (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--effect", type=float, default=defaults.effect, help="PNI signal strength (0 none, 2 strong)")
    parser.add_argument("--prevalence", type=float, default=defaults.prevalence, help="PNI+ fraction (default 44/128)")
    parser.add_argument("--block-size", type=int, default=defaults.block_size, help="PNI permuted block size")
    parser.add_argument("--full-size", action="store_true", help="scanner-like 320x260x80 matrix at ~1.2 mm")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), help="volume size in voxels")
    parser.add_argument("--inplane-spacing", type=float, nargs=2, metavar=("LO", "HI"), help="in-plane spacing, mm")
    parser.add_argument("--slice-spacing", type=float, nargs=2, metavar=("LO", "HI"), help="slice spacing range, mm")
    parser.add_argument("--snr", type=float, nargs=2, metavar=("LO", "HI"), help="liver SNR range")
    parser.add_argument("--int16", action="store_true", help="write images as int16, as many scanners do")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    args = parser.parse_args(argv)

    overrides = {"effect": args.effect, "prevalence": args.prevalence, "block_size": args.block_size}
    if args.int16:
        overrides["image_dtype"] = "int16"
    for name, value in (
        ("shape", args.shape),
        ("inplane_spacing_mm", args.inplane_spacing),
        ("slice_spacing_mm", args.slice_spacing),
        ("snr", args.snr),
    ):
        if value is not None:
            overrides[name] = tuple(value)
    if args.cases < 1 or args.seed < 0:
        parser.error("--cases must be >= 1 and --seed >= 0.")
    try:
        config = SyntheticCohortConfig.full_size(**overrides) if args.full_size else SyntheticCohortConfig(**overrides)
    except ValueError as e:
        parser.error(str(e))
    # Generator 1.0.0 recorded the running module's __name__ in dataset.json: "__main__" from the
    # command line, the package's name when main() is called in Python. Kept, so the bytes stay.
    module_name = "__main__" if __name__ == "__main__" else GENERATOR_MODULE
    summary = _write_cohort(args.out, args.cases, args.seed, config, not args.quiet, module_name)
    if args.quiet:
        print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
