"""What an update of NeoGen's autoencoder costs on this CPU, for several latent widths side by side.

    .venv/bin/python benchmarks/bench_autoencoder.py [--latent_channels 4 8 16 32] [--rounds 5]

Each width is NeoGen's ``AutoencoderKL`` (``neonet_ext.networks.neogen_autoencoder``) with that
``latent_channels``, random weights, trained on one random batch (``--batch_size`` crops of
``--crop`` voxels, as stage 1's ``--train_crop_size``): the generator update of
``AutoencoderGANTrainer`` before its adversarial epochs (L1 + KL, backward, Adam), under bfloat16
autocast as ``--amp True`` runs it on CPU. The widths are timed in turn every round; medians.
"""

from __future__ import annotations

import argparse

import torch

from neonet_ext.generative.autoencoder import kl_divergence
from neonet_ext.networks import neogen_autoencoder
from neonet_ext.utils.timing import median_table, median_times_in_turn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latent_channels", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--crop", type=int, nargs=3, default=[32, 32, 32])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-amp", dest="amp", action="store_false")
    args = parser.parse_args()
    torch.manual_seed(0)
    images = torch.rand(args.batch_size, 1, *args.crop)

    def update(autoencoder: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", enabled=args.amp):
            recon, z_mu, z_sigma = autoencoder(images)
            loss = torch.nn.functional.l1_loss(recon.float(), images) + 1e-6 * kl_divergence(z_mu.float(), z_sigma.float())
        loss.backward()
        optimizer.step()

    steps = {}
    for channels in args.latent_channels:
        autoencoder = neogen_autoencoder(latent_channels=channels).train()
        optimizer = torch.optim.Adam(autoencoder.parameters(), 3e-4)
        steps[f"{channels} latent channels"] = lambda a=autoencoder, o=optimizer: update(a, o)
    medians = median_times_in_turn(steps, args.rounds)
    print(f"NeoGen autoencoder update, batch {args.batch_size} x {'x'.join(map(str, args.crop))}, "
          f"{'bfloat16 autocast' if args.amp else 'float32'}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"medians of {args.rounds}")
    print(median_table(medians, "latent", "seconds per update"))


if __name__ == "__main__":
    main()
