"""Where a NeoSeg training update's time goes on this CPU, and what bfloat16 autocast saves, side by side.

    .venv/bin/python benchmarks/bench_neoseg_training.py [--rounds 3] [--network segresnet]

Everything comes from the bundle's own ``train.json`` (and ``networks/<name>.json``): the network,
the loss, the optimiser, the batch (``batch_size`` volumes x ``num_samples`` class-centred patches of
``patch_size``) and the augmentation. Data: the shipped sample's two cases, cached as ``CacheDataset``
caches them (loading, orientation, spacing, normalisation, body crop done once), so the "data" column
is the per-update random part (class-centred crops, affine, intensity) that runs every update.
Compute: forward, loss, backward and optimiser step on a random batch, float32 against the
``AutocastInferer`` bfloat16 forward that ``train.json`` uses on CPUs with native bfloat16.
Modes are timed in turn every round; medians.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from monai.inferers import SimpleInferer

from neonet_ext.engines import AutocastInferer, cpu_has_fast_bfloat16
from neonet_ext.utils.timing import median_times_in_turn

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "neoseg" / "configs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--network", default="segresnet", help="an override file under configs/networks/")
    args = parser.parse_args()
    config = ConfigParser()
    config.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "networks" / f"{args.network}.json")])
    config.update({"bundle_root": str(REPO / "bundles" / "neoseg"), "device": "$torch.device('cpu')", "num_workers": 0})
    torch.manual_seed(0)
    network = config.get_parsed_content("network")
    loss = config.get_parsed_content("loss")
    optimizer = config.get_parsed_content("optimizer")
    batch_size, num_samples = config.get_parsed_content("batch_size"), config.get_parsed_content("num_samples")
    patch_size = config.get_parsed_content("patch_size")
    dataset = config.get_parsed_content("train#dataset")
    images = torch.rand(batch_size * num_samples, 1, *patch_size)
    labels = torch.randint(0, 3, (batch_size * num_samples, 1, *patch_size))
    inferers = {"float32": SimpleInferer(), "bfloat16 autocast": AutocastInferer(SimpleInferer())}

    def update(inferer) -> None:
        network.train()
        optimizer.zero_grad()
        loss(inferer(images, network), labels).backward()
        optimizer.step()

    def data() -> None:
        for i in range(batch_size):
            dataset[i % len(dataset)]

    steps = {"data (random part of a batch)": data, **{name: (lambda i=i: update(i)) for name, i in inferers.items()}}
    medians = median_times_in_turn(steps, args.rounds)
    print(f"{args.network}: batch of {batch_size} volumes x {num_samples} patches of {'x'.join(map(str, patch_size))}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bfloat16: {cpu_has_fast_bfloat16()}; "
          f"medians of {args.rounds} rounds")
    print("| part | seconds per update | volumes per second |\n| --- | --- | --- |")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.2f} | {batch_size / seconds:.2f} |")
    data_s = medians["data (random part of a batch)"]
    for name in inferers:
        total = data_s + medians[name]
        print(f"update with {name} (data + compute, one process): {total:.2f} s, {batch_size / total:.2f} volumes/s")
    print(f"bfloat16 autocast speed-up of the compute: {medians['float32'] / medians['bfloat16 autocast']:.2f}x")


if __name__ == "__main__":
    main()
