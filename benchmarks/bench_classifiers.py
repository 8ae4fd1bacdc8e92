"""Forward time and size of PattenNet against the 3D baselines, side by side.

    .venv/bin/python benchmarks/bench_classifiers.py [--rounds 7] [--device cpu|cuda] [--batch 1]
    # PattenNet on another autoencoder and pooling, e.g. NeoGen 0.4's unfolded one with global mean pooling
    .venv/bin/python benchmarks/bench_classifiers.py --pooling avg \
        --autoencoder '{"block_size": 1, "channels": [32, 64, 64], "latent_channels": 4}'

Input: random TLCR-shaped patches (B, 2, 64, 64, 32). PattenNet uses NeoGen's
AutoencoderKL (``NEOGEN_AUTOENCODER``, or ``neogen_autoencoder(**AUTOENCODER)`` with ``--autoencoder``);
its frozen encoder is PattenNet's params minus trainable. Models are timed in
turn every round (eval mode, no_grad), so drifts of a shared machine hit all alike.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from neonet_ext.networks import PattenNet, get_classifier, neogen_autoencoder
from neonet_ext.transforms import TLCR_ROI_SIZE

BASELINES = ("efficientnet-b0", "densenet121", "resnet50", "swin-transformer")


def time_classifiers(rounds: int = 7, batch: int = 1, device: str = "cpu", autoencoder: dict | None = None,
                     pooling: str = "regions") -> list[tuple[str, int, int, float]]:
    """``(name, parameters, trainable parameters, median forward ms)`` of PattenNet and each baseline,
    timed in turn every round on one random (batch, 2, *TLCR_ROI_SIZE) input.

    Args:
        autoencoder: ``neogen_autoencoder`` arguments of PattenNet's encoder (default NeoGen's).
        pooling: PattenNet's ``pooling``.
    """
    torch.manual_seed(0)
    dev = torch.device(device)
    models = {f"PattenNet ({pooling})": PattenNet(neogen_autoencoder(**(autoencoder or {})), pooling=pooling)}
    models.update({name: get_classifier(name) for name in BASELINES})
    x = torch.randn(batch, 2, *TLCR_ROI_SIZE, device=dev)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model.to(dev).eval()(x)
        for _ in range(rounds):
            for name, model in models.items():
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                model(x)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - t0)
    return [
        (name, sum(p.numel() for p in m.parameters()), sum(p.numel() for p in m.parameters() if p.requires_grad),
         float(np.median(times[name])) * 1e3)
        for name, m in models.items()
    ]


def print_table(rows: list[tuple[str, int, int, float]]) -> None:
    print(f"{'model':20s} {'params':>10s} {'trainable':>10s} {'median ms':>10s}")
    for name, params, trainable, ms in rows:
        print(f"{name:20s} {params / 1e6:9.2f}M {trainable / 1e6:9.2f}M {ms:10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--autoencoder", type=json.loads, default={},
                        help="neogen_autoencoder arguments of PattenNet's encoder, as JSON")
    parser.add_argument("--pooling", default="regions", help="PattenNet's pooling")
    args = parser.parse_args()
    rows = time_classifiers(args.rounds, args.batch, args.device, args.autoencoder, args.pooling)
    dev = torch.device(args.device)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"classifier forward: input ({args.batch}, 2, {', '.join(map(str, TLCR_ROI_SIZE))}), {args.rounds} rounds, {where}; "
          f"PattenNet's autoencoder {args.autoencoder or 'NeoGen default'}")
    print_table(rows)


if __name__ == "__main__":
    main()
