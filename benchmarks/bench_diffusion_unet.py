"""What a training step of NeoGen's diffusion UNet costs on this CPU, for latent grids and UNet depths side by side.

    .venv/bin/python benchmarks/bench_diffusion_unet.py [--rounds 5] [--batch_size 8]

Each variant is ``neonet_ext.networks.neogen_diffusion_unet`` (random weights) on one random batch of
latents: v-prediction MSE against random targets, backward, Adam; under bfloat16 autocast where this
CPU runs bfloat16 natively, as ``--amp True`` trains it, float32 elsewhere (``--amp``/``--no-amp`` force it). The variants are the latents of the two autoencoders (4x down-sampling, 4 channels:
4x16x16x8; 2x down-sampling, 8 channels: 8x32x32x16, for 64x64x32 crops), each with the UNet's three
levels and, on the larger grid, a fourth (attention only at the two coarsest), or the larger latent with each
2x2x2 block folded into channels (``block_size=2``: the UNet runs on 64x16x16x8). Timed in
turn every round; medians.
"""

from __future__ import annotations

import argparse

import torch

from neonet_ext.engines import cpu_has_fast_bfloat16
from neonet_ext.networks import neogen_diffusion_unet
from neonet_ext.utils.timing import median_table, median_times_in_turn

THREE_LEVELS: dict = {}
FOUR_LEVELS = {"channels": (32, 64, 64, 64), "attention_levels": (False, False, True, True), "num_head_channels": (0, 0, 32, 32)}
VARIANTS = {
    "4x16x16x8, 3 levels": ((4, 16, 16, 8), THREE_LEVELS),
    "8x32x32x16, 3 levels": ((8, 32, 32, 16), THREE_LEVELS),
    "8x32x32x16, 4 levels": ((8, 32, 32, 16), FOUR_LEVELS),
    "8x32x32x16 folded to 64x16x16x8, 3 levels": ((8, 32, 32, 16), {"block_size": 2}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=cpu_has_fast_bfloat16(),
                        help="bfloat16 autocast (default: where this CPU runs it natively)")
    args = parser.parse_args()
    torch.manual_seed(0)

    def step(unet: torch.nn.Module, optimizer: torch.optim.Optimizer, latents: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        timesteps = torch.randint(0, 1000, (len(latents),))
        context = torch.nn.functional.one_hot(torch.randint(0, 2, (len(latents),)), 2).float().unsqueeze(1)
        with torch.autocast("cpu", enabled=args.amp):
            prediction = unet(latents, timesteps=timesteps, context=context)
        loss = torch.nn.functional.mse_loss(prediction.float(), torch.randn_like(latents))
        loss.backward()
        optimizer.step()

    steps = {}
    for name, (shape, overrides) in VARIANTS.items():
        unet = neogen_diffusion_unet(latent_channels=shape[0], num_classes=2, **overrides).train()
        optimizer = torch.optim.Adam(unet.parameters(), 1e-4)
        latents = torch.randn(args.batch_size, *shape)
        steps[name] = lambda u=unet, o=optimizer, x=latents: step(u, o, x)
    medians = median_times_in_turn(steps, args.rounds)
    print(f"NeoGen diffusion UNet training step, batch {args.batch_size}, "
          f"{'bfloat16 autocast' if args.amp else 'float32'}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"medians of {args.rounds}")
    print(median_table(medians, "latent, UNet", "seconds per step"))


if __name__ == "__main__":
    main()
