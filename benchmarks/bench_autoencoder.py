"""What an update of NeoGen's autoencoder costs on this CPU, for several widths side by side.

    .venv/bin/python benchmarks/bench_autoencoder.py [--networks 32-64-64/4 32-64/8 b2:64/8] [--rounds 5]

Each network is NeoGen's ``AutoencoderKL`` (``neonet_ext.networks.neogen_autoencoder``) with the
channels of its levels and its latent channels given as ``C1-C2[-C3]/LATENT``, prefixed ``bN:`` for a
``SpaceToDepthAutoencoderKL`` folding NxNxN blocks into channels first, suffixed ``rR`` for R residual
blocks a level (1 without), random weights,
trained on one random batch (``--batch_size`` crops of ``--crop`` voxels, as stage 1's
``--train_crop_size``): the generator update of ``AutoencoderGANTrainer`` before its adversarial
epochs (L1 + KL, backward, Adam). bfloat16 autocast (``--amp True``) where this CPU runs bfloat16
natively, float32 elsewhere (``--amp``/``--no-amp`` force it); ``--channels_last`` adds each network
again in the channels-last memory format. The networks are timed in turn every round; medians.
"""

from __future__ import annotations

import argparse

import torch

from neonet_ext.engines import cpu_has_fast_bfloat16
from neonet_ext.generative.autoencoder import kl_divergence
from neonet_ext.networks import neogen_autoencoder
from neonet_ext.utils.timing import median_table, median_times_in_turn


def parse_network(spec: str) -> tuple[int, tuple[int, ...], int, int]:
    """``"32-64/8"`` -> (1, (32, 64), 8, 1), ``"b2:64/8r2"`` -> (2, (64,), 8, 2): the folded block's side, the
    channels of each level, the latent channels and the residual blocks per level."""
    try:
        block, _, network = spec.rpartition(":")
        levels, latent = network.split("/")
        latent, _, res_blocks = latent.partition("r")
        return (int(block.removeprefix("b") or 1), tuple(int(c) for c in levels.split("-")), int(latent),
                int(res_blocks or 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a network is [bN:]C1-C2[-C3...]/LATENT[rRES_BLOCKS], e.g. 32-64/8 or "
                                         f"b2:64/8r2; got {spec!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", type=parse_network, nargs="+",
                        default=[parse_network(s) for s in ("32-64-64/4", "32-64-64/8", "32-64-64/16", "32-64-64/32")])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--crop", type=int, nargs=3, default=[32, 32, 32])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=cpu_has_fast_bfloat16())
    parser.add_argument("--channels_last", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    images = torch.rand(args.batch_size, 1, *args.crop)

    def update(autoencoder: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", enabled=args.amp):
            recon, z_mu, z_sigma = autoencoder(x)
            loss = torch.nn.functional.l1_loss(recon.float(), x) + 1e-6 * kl_divergence(z_mu.float(), z_sigma.float())
        loss.backward()
        optimizer.step()

    formats = [torch.contiguous_format] + ([torch.channels_last_3d] if args.channels_last else [])
    steps = {}
    for block, channels, latent, res_blocks in args.networks:
        for memory_format in formats:
            autoencoder = neogen_autoencoder(block_size=block, channels=channels, latent_channels=latent,
                                             num_res_blocks=res_blocks).train()
            autoencoder = autoencoder.to(memory_format=memory_format)
            optimizer = torch.optim.Adam(autoencoder.parameters(), 3e-4)
            x = images.contiguous(memory_format=memory_format)
            name = f"{'-'.join(map(str, channels))}, {latent} latent channels"
            name += f", {res_blocks} residual blocks a level" if res_blocks > 1 else ""
            name = f"{block}x{block}x{block} blocks folded, " + name if block > 1 else name
            name += ", channels last" if memory_format == torch.channels_last_3d else ""
            steps[name] = lambda a=autoencoder, o=optimizer, x=x: update(a, o, x)
    medians = median_times_in_turn(steps, args.rounds)
    print(f"NeoGen autoencoder update, batch {args.batch_size} x {'x'.join(map(str, args.crop))}, "
          f"{'bfloat16 autocast' if args.amp else 'float32'}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{torch.backends.cpu.get_cpu_capability()}, native bfloat16: {cpu_has_fast_bfloat16()}; medians of {args.rounds}")
    print(median_table(medians, "network", "seconds per update"))


if __name__ == "__main__":
    main()
