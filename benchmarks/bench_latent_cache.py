"""Training-step time of every stage that reads patches through the frozen NeoGen encoder, with and
without the latent cache, side by side.

    .venv/bin/python benchmarks/bench_latent_cache.py [--rounds 5]

Networks, augmentation and batch sizes come from the bundles' own configs (NeoCls ``train.json``;
NeoGen ``train_autoencoder.json`` + ``train_diffusion.json`` [+ ``train_controlnet.json``]), at
their shipped widths with random weights (timing does not depend on the values). Inputs are random
TLCR-shaped patches (2 x 64 x 64 x 32 for NeoCls, 1 x 64 x 64 x 32 for NeoGen).

- "through the encoder": what an update cost before the cache: the per-sample patch augmentation,
  then the frozen encoder's forward pass, then the trained network's forward, backward and step.
- "on cached latents": the view choice (and posterior draw) on cached latents, then the same
  forward, backward and step.
The stages are timed in turn every round (a shared machine's drifts hit both alike); medians.
It also prints what building the cache costs per patch (all views) and per entry.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from monai.bundle import ConfigParser

from neonet_ext.generative import ControlNetTrainingInferer, LatentDiffusionPrepareBatch
from neonet_ext.networks import PattenNetFromLatents
from neonet_ext.transforms import TLCR_ROI_SIZE, SelectLatentViewd
from neonet_ext.utils.timing import median_times_in_turn

REPO = Path(__file__).resolve().parents[1]


def parse(bundle: str, *configs: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(REPO / "bundles" / bundle / "configs" / name) for name in configs])
    parser["device"] = "$torch.device('cpu')"
    parser["bundle_root"] = str(REPO / "bundles" / bundle)
    return parser


def timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def neocls_steps(views: int) -> dict[str, Callable[[], None]]:
    parser = parse("neocls", "train.json")
    parser["network_def#autoencoder_checkpoint"] = None
    network = parser.get_parsed_content("network_def")
    batch = parser.get_parsed_content("batch_size")
    augmentation = parser.get_parsed_content("augmentation")
    optimizer = torch.optim.AdamW(network.trainable_parameters(), 3e-4)
    head = PattenNetFromLatents(network)
    loss = torch.nn.CrossEntropyLoss()
    labels = torch.arange(batch) % 2
    patches = torch.rand(batch, 2, *TLCR_ROI_SIZE)
    with torch.no_grad():
        z = network.encode(patches[:1])
    mu = torch.randn(batch, views, *z.shape[1:])
    select = SelectLatentViewd("latent", posterior_prob=parser.get_parsed_content("posterior_sampling_prob"))

    def update(model: torch.nn.Module, x: torch.Tensor) -> None:
        network.train()
        optimizer.zero_grad()
        loss(model(x), labels).backward()
        optimizer.step()

    def through_encoder() -> None:
        x = patches.clone()
        for i in range(batch):
            item = {"image": x[i]}
            for transform in augmentation:
                item = transform(item)
            x[i] = torch.as_tensor(item["image"])
        update(network, x)

    def on_cached_latents() -> None:
        x = torch.stack([select({"latent_mu": mu[i], "latent_sigma": mu[i].abs()})["image"] for i in range(batch)])
        update(head, x)

    return {"through the encoder": through_encoder, "on cached latents": on_cached_latents}


def neogen_steps(controlnet: bool) -> dict[str, Callable[[], None]]:
    configs = ["train_autoencoder.json", "train_diffusion.json"] + (["train_controlnet.json"] if controlnet else [])
    parser = parse("neogen", *configs)
    autoencoder = parser.get_parsed_content("autoencoder")
    diffusion_unet = parser.get_parsed_content("diffusion_unet")
    scheduler = parser.get_parsed_content("noise_scheduler")
    batch = parser.get_parsed_content("batch_size")
    if controlnet:
        network = parser.get_parsed_content("controlnet")
        inferer = ControlNetTrainingInferer(scheduler, diffusion_unet)
    else:
        network = diffusion_unet
        inferer = parser.get_parsed_content("diffusion_inferer")
    scale = parser.get_parsed_content("latent_scale") if controlnet else None
    if scale is None:
        from neonet_ext.generative import LatentScale

        scale = LatentScale(1.0)
    optimizer = torch.optim.Adam(network.parameters(), 1e-4)
    images = torch.rand(batch, 1, *TLCR_ROI_SIZE)
    with torch.no_grad():
        latents = autoencoder.encode(images)[0]
    batch_data = {"class_context": torch.eye(2)[torch.arange(batch) % 2].unsqueeze(1)}
    if controlnet:
        batch_data["patch_mask"] = (torch.rand(batch, 2, *TLCR_ROI_SIZE) > 0.5).float()
    options = {"condition_name": "class_context", "control_name": "patch_mask" if controlnet else None}
    encoding = LatentDiffusionPrepareBatch(autoencoder, scale, scheduler, **options)
    cached = LatentDiffusionPrepareBatch(None, scale, scheduler, **options)

    def update(prepare: LatentDiffusionPrepareBatch, x: torch.Tensor) -> None:
        network.train()
        z, target, _, kwargs = prepare({**batch_data, "image": x})
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(inferer(z, network, **kwargs), target).backward()
        optimizer.step()

    return {"through the encoder": lambda: update(encoding, images.flip(4)),
            "on cached latents": lambda: update(cached, latents)}


def cache_build_cost(views: int) -> tuple[float, float]:
    """Seconds to encode one NeoCls patch (2 channels) in all ``views``, and per entry."""
    parser = parse("neocls", "train.json")
    autoencoder = parser.get_parsed_content("autoencoder_def").eval()
    from neonet_ext.data.latent_cache import LatentCache
    from neonet_ext.transforms import patch_views

    cache = LatentCache(autoencoder, "/nonexistent", views=views, progress=False)
    patch = torch.rand(2, *TLCR_ROI_SIZE)
    view_list = patch_views(views)
    seconds = timed(lambda: cache.encode(torch.stack([v(patch) for v in view_list])))
    return seconds, seconds / views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--views", type=int, default=8, help="views per NeoCls patch in the cache")
    args = parser.parse_args()
    torch.manual_seed(0)
    stages = {
        "NeoCls PattenNet": neocls_steps(args.views),
        "NeoGen diffusion UNet": neogen_steps(controlnet=False),
        "NeoGen ControlNet": neogen_steps(controlnet=True),
    }
    medians = median_times_in_turn(
        {f"{stage}|{mode}": step for stage, steps in stages.items() for mode, step in steps.items()}, args.rounds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds, medians")
    print("| stage | update through the encoder | update on cached latents | speed-up |")
    print("| --- | --- | --- | --- |")
    for stage in stages:
        full, cached = (medians[f"{stage}|{mode}"] for mode in ("through the encoder", "on cached latents"))
        print(f"| {stage} | {full * 1000:.0f} ms | {cached * 1000:.0f} ms | {full / cached:.1f}x |")
    per_patch, per_entry = cache_build_cost(args.views)
    print(f"building the NeoCls cache: {per_patch:.2f} s a patch ({args.views} views, 2 channels), "
          f"{per_entry * 1000:.0f} ms an entry")


if __name__ == "__main__":
    main()
