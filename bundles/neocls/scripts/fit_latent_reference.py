"""Fit the input gate's latent reference: where training patches lie in PattenNet's latent space.

    python bundles/neocls/scripts/fit_latent_reference.py --patches output/train/patches.json \\
        --out bundles/neocls/models/latent_reference.json --max_cases 500

Reads the patches datalist (NeoSeg's ``patches.json`` or any NeoCls patch datalist), encodes each
patch with the frozen encoder of the PattenNet that ``--config_file``/``--checkpoint`` build, and
writes a :class:`neonet_ext.engines.LatentReference` (features' mean and precision, the accepted
distance, and the encoder's sha1: other weights refuse it). Fit it again whenever PattenNet's
encoder changes, on patches of the cohort the weights were trained on.

``--score`` datalists are then scored with the new reference: the distances' quantiles and the
share beyond the threshold are printed (on held-out cases of the training population, that share
is the gate's false refusal rate from this check).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.transforms import LoadImage

from neonet_ext.data import load_patch_datalist
from neonet_ext.engines import LatentOutlierScore, fit_latent_reference

BUNDLE = Path(__file__).resolve().parents[1]


def patches(datalist_file: str, max_cases: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(patch, masks or None) of each item, with a progress line every 10 %."""
    items = load_patch_datalist(datalist_file, required_keys=["patch"])[:max_cases]
    load = LoadImage(image_only=True, ensure_channel_first=True)
    start = time.monotonic()
    for i, item in enumerate(items, 1):
        yield load(item["patch"]), (load(item["patch_mask"]) if item.get("patch_mask") else None)
        if i % max(1, len(items) // 10) == 0 or i == len(items):
            print(f"  {i}/{len(items)} patches encoded ({time.monotonic() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", required=True, help="patch datalist of the training cohort")
    parser.add_argument("--out", default=str(BUNDLE / "models" / "latent_reference.json"))
    parser.add_argument("--config_file", default=str(BUNDLE / "configs" / "inference.json"))
    parser.add_argument("--checkpoint", default=str(BUNDLE / "models" / "model.pt"))
    parser.add_argument("--max_cases", type=int, default=None, help="fit on the first N items only")
    parser.add_argument("--quantile", type=float, default=0.99)
    parser.add_argument("--margin", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", nargs="*", default=[], help="patch datalists to score with the new reference")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    config = ConfigParser()
    config.read_config(args.config_file)
    config.update({"checkpoint": args.checkpoint, "device": "$torch.device('cpu')"})
    network = config.get_parsed_content("network").eval()
    print(f"fitting on {args.patches} with the encoder of {args.checkpoint}", flush=True)
    reference = fit_latent_reference(network.latent_encoder, patches(args.patches, args.max_cases),
                                     quantile=args.quantile, margin=args.margin, seed=args.seed)
    reference.save(args.out)
    calibration = reference.calibration
    print(f"wrote {args.out}: {calibration['fitted_patches']} patches fitted, {calibration['held_back_patches']} held back; "
          f"threshold {reference.threshold:.2f} = {args.margin} x their {args.quantile} quantile "
          f"({calibration['held_back_quantile_distance']:.2f}; largest {calibration['held_back_max_distance']:.2f})")

    score = LatentOutlierScore(network, args.out)
    for datalist in args.score:
        distances = np.array([d for d in (score(p, m) for p, m in patches(datalist, args.max_cases)) if d is not None])
        q50, q95, q99 = np.quantile(distances, [0.5, 0.95, 0.99])
        print(f"{datalist}: {len(distances)} patches, distance median {q50:.2f}, 95% {q95:.2f}, 99% {q99:.2f}, "
              f"largest {distances.max():.2f}; beyond the threshold: {int((distances > score.threshold).sum())}")


if __name__ == "__main__":
    main()
