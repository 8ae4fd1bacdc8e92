"""NeoGen on CPU: time and peak memory per generated patch for each scheduler, training step times.

    .venv/bin/python benchmarks/bench_neogen.py                       # ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_neogen.py --quick               # ~2 min: few steps, no DDPM-1000
    .venv/bin/python benchmarks/bench_neogen.py --compare_condition_cache --no-training   # + DDIM-50 without the mask-embedding cache
    .venv/bin/python benchmarks/bench_neogen.py --ckpt_dir W --rflow_ckpt_dir R \\
        --real heldout/patches.json --train train/patches.json        # with fidelity per scheduler

Generation runs the bundle's own command in a child process per scheduler::

    python -m monai.bundle run --config_file "['bundles/neogen/configs/inference.json', <scheduler file>]" \\
        --num_samples N --num_inference_steps S --ckpt_dir W --output_dir OUT

on the shipped sample's masks (PNI+, augmented). The per-patch time is the median of the runner's
``[i/N] ...: X s`` lines (sampling, decoding, saving; start-up excluded), the peak RSS is the
child's own (``os.wait4`` through a forking wrapper). Without ``--ckpt_dir`` the networks carry
seeded random weights: the speed of sampling does not depend on the weights, its quality does,
so fidelity is only measured with trained weights (``--real`` and ``--train`` patch datalists,
see :mod:`neonet_ext.generative.quality`). RFlow needs its own trained UNet and ControlNet
(``--rflow_ckpt_dir``); without it RFlow is timed with random weights.

Training: each stage's config runs for one epoch on the shipped sample (batch 2, no workers)
in a child process; the step time is the median gap between consecutive iteration log lines.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
from datetime import datetime
from pathlib import Path

import torch

from _common import REPO, cpu_name, run_child
from neonet_ext.generative.quality import load_patch_set, quality_report
from neonet_ext.utils.bundle import bundle_run_command

CONFIGS = REPO / "bundles" / "neogen" / "configs"
STAGES = ["train_autoencoder.json", "train_diffusion.json", "train_controlnet.json"]
NO_CONDITION_CACHE = "masks embedded every step"


def random_weights(folder: Path, schedulers: list[str]) -> Path:
    """Seeded random weights of the three networks, saved as the stages save them."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.json"), *(str(CONFIGS / s) for s in schedulers)])
    parser["device"] = "$torch.device('cpu')"
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(parser.get_parsed_content("autoencoder").state_dict(), folder / "model_autoencoder.pt")
    torch.save({"model": parser.get_parsed_content("diffusion_unet").state_dict(),
                "latent_scale": parser.get_parsed_content("latent_scale").state_dict()}, folder / "model.pt")
    torch.save(parser.get_parsed_content("controlnet").state_dict(), folder / "model_controlnet.pt")
    return folder


def per_sample_seconds(output: str) -> list[float]:
    return [float(s) for s in re.findall(r"\] synthetic_\S+: ([0-9.]+) s", output)]


def bench_generation(name: str, schedulers: list[str], steps: int, samples: int, weights: Path, out: Path,
                     masks: Path | None = None, overrides: tuple[str, ...] = ()) -> dict:
    command = bundle_run_command([CONFIGS / n for n in ("inference.json", *schedulers)],
                                 "--num_samples", str(samples), "--num_inference_steps", str(steps), "--ckpt_dir", str(weights),
                                 "--output_dir", str(out), "--device", "$torch.device('cpu')", *overrides)
    if masks:
        command += ["--datalist_file", str(masks)]
    run = run_child(command, out.parent / f"{out.name}.log")
    seconds = per_sample_seconds(run.output)
    return {"scheduler": name, "steps": steps, "samples": len(seconds), "s_per_patch": statistics.median(seconds),
            "peak_rss_mib": run.max_rss_mib, "output": out}


def bench_training(stage: int, work: Path) -> float:
    """Median seconds per training step of stage 1-3 (one epoch on the shipped sample)."""
    command = bundle_run_command([CONFIGS / n for n in STAGES[:stage]],
                                 "--output_dir", str(work / f"train{stage}"), "--ckpt_dir", str(work / "train_models"),
                                 "--epochs", "1", "--val_interval", "1", "--batch_size", "2", "--num_workers", "0",
                                 "--resume", "False", *(["--adversarial_start_epoch", "1"] if stage == 1 else []))
    run = run_child(command, work / f"train{stage}.log")
    stamps = [datetime.strptime(m, "%Y-%m-%d %H:%M:%S,%f")
              for m in re.findall(r"^(\S+ \S+) - INFO - Epoch: 1/1, Iter: \d+/\d+ -- train_loss", run.output, re.M)]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
    if not gaps:
        raise RuntimeError(f"stage {stage}: fewer than two iteration lines in its log")
    return statistics.median(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and samples, no DDPM-1000")
    parser.add_argument("--ckpt_dir", type=Path, help="trained DDPM-objective weights (default: random)")
    parser.add_argument("--rflow_ckpt_dir", type=Path, help="trained RFlow-objective weights (default: random)")
    parser.add_argument("--real", type=Path, help="held-out real patch datalist, for fidelity")
    parser.add_argument("--train", type=Path, help="NeoGen's training patch datalist, for fidelity")
    parser.add_argument("--masks", type=Path, help="patch datalist whose masks condition generation (default: the shipped sample)")
    parser.add_argument("--samples", type=int, default=4, help="patches per scheduler")
    parser.add_argument("--ddpm_samples", type=int, default=1, help="patches for DDPM-1000 (about 1 min each on 2 cores)")
    parser.add_argument("--no-training", action="store_true", help="skip the training step times")
    parser.add_argument("--compare_condition_cache", action="store_true",
                        help="also time DDIM with the sampler embedding the masks at every step (cache off), next to it")
    args = parser.parse_args()

    rflow = ["schedulers/rflow.json"]
    plan = [("DDIM", [], 50, ()), ("DDIM", [], 20, ()), ("RFlow", rflow, 30, ()), ("RFlow", rflow, 10, ())]
    if args.compare_condition_cache:
        plan.insert(1, (f"DDIM, {NO_CONDITION_CACHE}", [], 50, ("--sampler#cache_condition_embedding", "False")))
    if not args.quick:
        plan.insert(0, ("DDPM", ["schedulers/ddpm.json"], 1000, ()))
    samples = 2 if args.quick else args.samples
    if args.quick:
        plan = [(n, s, max(2, steps // 5), o) for n, s, steps, o in plan]

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        weights = args.ckpt_dir or random_weights(work / "random", [])
        rflow_weights = args.rflow_ckpt_dir or random_weights(work / "random_rflow", rflow)
        trained = args.ckpt_dir is not None
        print(f"{cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; weights: "
              f"{'trained ' + str(args.ckpt_dir) if trained else 'seeded random (speed only)'}", flush=True)
        rows, reference = [], None
        for name, schedulers, steps, overrides in plan:
            n = args.ddpm_samples if steps >= 1000 else samples
            w = rflow_weights if name == "RFlow" else weights
            folder = work / f"{name.split(',')[0]}_{steps}{'_uncached' if overrides else ''}"
            r = bench_generation(name, schedulers, steps, n, w, folder, args.masks, overrides)
            fidelity = ""
            if args.real and args.train and (args.rflow_ckpt_dir if name == "RFlow" else trained):
                report = quality_report(load_patch_set(r["output"] / "synthetic_patches.json"),
                                        load_patch_set(args.real), load_patch_set(args.train))
                fidelity = (f" | {report['mmd']:.1f} | {report['ms_ssim_synthetic']:.3f} | "
                            f"{report['contrast_synthetic']:.3f} | {report['class_positive_rate_synthetic']:.2f}")
                reference = (f"| held-out real (floor: real vs training) | | {report['n_real']} | | "
                             f"| {report['mmd_real_vs_train']:.1f} | {report['ms_ssim_real']:.3f} | "
                             f"{report['contrast_real']:.3f} | {report['class_positive_rate_real']:.2f} |")
                print(json.dumps(report), flush=True)
            rows.append(f"| {name} | {steps} | {r['samples']} | {r['s_per_patch']:.2f} | {r['peak_rss_mib']:.0f}{fidelity} |")
            print(rows[-1], flush=True)
        header = "| scheduler | steps | patches | s per patch (median) | peak RSS (MiB) |"
        if reference:
            header += " MMD | MS-SSIM | tumour contrast | class+ rate |"
            rows.append(reference)
        print("\n" + header + "\n|" + " --- |" * (header.count("|") - 1))
        print("\n".join(rows))
        if not args.no_training:
            print("\n| stage | s per step (batch 2, 64x64x32) |\n| --- | --- |")
            for stage, label in enumerate(("autoencoder + discriminator", "diffusion UNet", "ControlNet"), 1):
                if stage > 1 and not (work / "train_models" / "model_autoencoder.pt").exists():
                    break
                print(f"| {label} | {bench_training(stage, work):.2f} |", flush=True)


if __name__ == "__main__":
    main()
