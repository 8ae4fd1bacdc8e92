"""What keeping freed memory (``neonet_ext.utils.keep_freed_memory``) does to a training update on this CPU.

    .venv/bin/python benchmarks/bench_malloc.py [--rounds 3] [--updates 6]

    .venv/bin/python benchmarks/bench_malloc.py --network segresnet --crop 96 96 48

Each round starts two child processes in turn, one with glibc's default allocator settings and one
that calls ``keep_freed_memory()`` first. Each child builds the network, runs one warm-up update and
``--updates`` timed updates of a random batch (``--batch_size`` x ``--crop``, bf16 autocast as the
CPU trainings run it), and reports the median update and its own system time and minor page faults
per update. Medians over the rounds. Networks: NeoGen's autoencoder (``--autoencoder`` JSON
overrides, e.g. '{"channels": [32, 64], "latent_channels": 8}'; L1 + KL, as stage 1 trains it) or
NeoSeg's default SegResNet (``networks/segresnet.json``; Dice + cross-entropy on 3 classes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def child(args: argparse.Namespace) -> None:
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import SegResNet

    from neonet_ext.generative.autoencoder import kl_divergence
    from neonet_ext.networks import neogen_autoencoder
    from neonet_ext.utils.memory import keep_freed_memory

    applied = keep_freed_memory() if args.keep else False
    torch.manual_seed(0)
    images = torch.rand(args.batch_size, 1, *args.crop)
    if args.network == "autoencoder":
        network = neogen_autoencoder(**json.loads(args.autoencoder)).train()

        def loss_of() -> torch.Tensor:
            recon, z_mu, z_sigma = network(images)
            return torch.nn.functional.l1_loss(recon.float(), images) + 1e-6 * kl_divergence(z_mu.float(), z_sigma.float())
    else:
        network = SegResNet(spatial_dims=3, in_channels=1, out_channels=3, init_filters=16, blocks_down=(1, 2, 2, 4),
                            blocks_up=(1, 1, 1), dropout_prob=0.1).train()
        labels = torch.randint(0, 3, (args.batch_size, 1, *args.crop))
        dice_ce = DiceCELoss(softmax=True, squared_pred=True, to_onehot_y=True)

        def loss_of() -> torch.Tensor:
            return dice_ce(network(images).float(), labels)
    optimizer = torch.optim.Adam(network.parameters(), 3e-4)

    def update() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", enabled=args.amp):
            loss = loss_of()
        loss.backward()
        optimizer.step()

    update()
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = []
    for _ in range(args.updates):
        start = time.perf_counter()
        update()
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"applied": applied, "seconds": statistics.median(times),
                      "system_seconds": (after.ru_stime - before.ru_stime) / args.updates,
                      "minor_faults": (after.ru_minflt - before.ru_minflt) / args.updates,
                      "peak_rss_gib": after.ru_maxrss / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--crop", type=int, nargs=3, default=[64, 64, 32])
    parser.add_argument("--network", choices=("autoencoder", "segresnet"), default="autoencoder")
    parser.add_argument("--autoencoder", default="{}")
    parser.add_argument("--no-amp", dest="amp", action="store_false")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    passed = [a for a in sys.argv[1:] if a not in ("--child", "--keep")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    results: dict[str, list[dict]] = {"glibc defaults": [], "keep_freed_memory()": []}
    for _ in range(args.rounds):
        for name, extra in (("glibc defaults", []), ("keep_freed_memory()", ["--keep"])):
            out = subprocess.run([sys.executable, __file__, *passed, "--child", *extra], env=env, check=True,
                                 capture_output=True, text=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    network = f"NeoGen autoencoder ({args.autoencoder})" if args.network == "autoencoder" else "NeoSeg SegResNet"
    print(f"{network} update, batch {args.batch_size} x {'x'.join(map(str, args.crop))}, "
          f"{'bfloat16 autocast' if args.amp else 'float32'}; {args.updates} updates per child, medians of {args.rounds} "
          "children per setting, started in turn")
    print("| allocator | seconds per update | system seconds per update | minor page faults per update | peak RSS (GiB) |")
    print("| --- | --- | --- | --- | --- |")
    for name, runs in results.items():
        def median(key: str) -> float:
            return statistics.median(run[key] for run in runs)
        print(f"| {name} | {median('seconds'):.2f} | {median('system_seconds'):.2f} | {median('minor_faults'):.0f} | "
              f"{median('peak_rss_gib'):.2f} |")


if __name__ == "__main__":
    main()
