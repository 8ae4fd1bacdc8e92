"""How well NeoGen's autoencoder reconstructs unseen crops, per input it must encode, against the noise ceiling.

    python bundles/neogen/scripts/evaluate_autoencoder.py --out output/ae_eval [--checkpoint FILE] [--cases 24]

1. An unseen synthetic cohort (``--seed``, default 3001, never used for training) and its
   noise-free twin: the same seed with the liver SNR set to 1e9, so every case has the same
   anatomy, blur and coil bias and only the acquisition noise is gone (the generator draws
   noise from its own stream).
2. The cohort's TLCR patches as NeoSeg cuts them (the shipped NeoSeg, ``inference.json``), and
   both twins' patches cut around the ground-truth labels (the same crop box for each twin).
3. For each of the three inputs the autoencoder encodes (the unmasked crop ``patch_image``, and
   the two channels of the TLCR patch that PattenNet encodes: image inside liver + tumour, image
   inside tumour), the PSNR (data range 1, NeoSeg's intensity scale) of ``decode(mu)`` against
   the input, averaged over the NeoSeg patches.
4. The noise ceiling: the PSNR of each noisy ground-truth input against its noise-free twin,
   which an autoencoder that kept every anatomical detail but no noise would score.
5. Resolution references: the PSNR of each NeoSeg input against itself averaged over blocks of
   2x2x2 and 4x4x4 voxels and interpolated back (trilinear): what a linear code of one value per
   block keeps. The autoencoder's latent grid is ``neonet_ext.networks.autoencoder_downsampling``
   times coarser than the crop, with ``latent_channels`` values per latent voxel.
6. The posterior (mean sigma, the spread of the mean) and where the error lies: its share on the
   masks' edges, the PSNR elsewhere.
7. With ``--tile X Y Z``: the same reconstruction PSNR with each input cut into tiles of that size,
   each encoded and decoded on its own: how far the whole crop's reconstruction is from the
   training crop size's (GroupNorm's statistics span the whole input).
8. With ``--pca_patches`` (a patch datalist of other cases, e.g. the autoencoder's training crops):
   what a linear code with as many values per 4x4x4 block as a latent voxel has channels keeps:
   principal components of 4x4x4 blocks (all three inputs of ``--pca_cases`` of those cases), the
   first k kept (k = 4, 8, 16, 32), each NeoSeg input projected on them. A trained autoencoder
   with a k-channel latent should do at least as well, its decoder being nonlinear and its
   receptive field wider than a block.

Writes ``OUT/autoencoder_psnr.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from neonet_ext.data import load_patch_datalist, patches_with_tumour
from neonet_ext.data.synthetic import scoring_cohort_config, write_cohort_once
from neonet_ext.engines import load_weights
from neonet_ext.generative import zero_edge
from neonet_ext.networks import neogen_autoencoder
from neonet_ext.utils.bundle import bundle_run_command
from neonet_ext.utils.io import atomic_write

BUNDLE = Path(__file__).resolve().parents[1]
NEOSEG = BUNDLE.parent / "neoseg"
#: The three single-channel inputs: (name, patch key, channel).
INPUTS = (("unmasked crop", "patch_image", 0), ("liver + tumour channel", "patch", 0), ("tumour channel", "patch", 1))
NOISE_FREE_SNR = 1e9


def psnr(estimate: np.ndarray, reference: np.ndarray, data_range: float = 1.0) -> float:
    mse = float(np.mean((estimate.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(data_range**2 / mse)


def read(path: str, channel: int) -> np.ndarray:
    import nibabel as nib

    data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    return data[..., channel] if data.ndim == 4 else data


def cohorts(out: Path, cases: int, seed: int) -> tuple[Path, Path]:
    """The noisy cohort and its noise-free twin; returns their dataset.json files."""
    config = scoring_cohort_config(cases)
    noisy = write_cohort_once(out / "cohort", cases, seed, config)
    twin = dataclasses.replace(config, snr=(NOISE_FREE_SNR, NOISE_FREE_SNR))
    clean = write_cohort_once(out / "cohort_noise_free", cases, seed, twin)
    return noisy, clean


def neoseg_patches(dataset: Path, out: Path) -> Path:
    # a re-run keeps the cases an earlier (perhaps interrupted) run finished with the same input and weights
    command = bundle_run_command([NEOSEG / "configs" / "inference.json"], "--datalist_file", str(dataset),
                                 "--datalist_key", "training", "--output_dir", str(out))
    subprocess.run(command, check=True)
    return out / "patches.json"


def ground_truth(dataset: Path, out: Path) -> Path:
    from neonet_ext.study.patches import ground_truth_patches

    if not (out / "patches.json").is_file():
        ground_truth_patches(str(dataset), str(out), str(NEOSEG))
    return out / "patches.json"


@torch.no_grad()
def reconstruction_report(autoencoder: torch.nn.Module, items: list[dict]) -> dict[str, dict[str, float]]:
    """Per input, from one encoding of each whole crop: the PSNR of ``decode(mu)`` against the input; the
    posterior's mean sigma and the spread of its mean (how much noise the latent carries against its signal: the
    KL term pulls sigma to 1); and where the squared error lies: its share on the mask's edge
    (:func:`neonet_ext.generative.zero_edge`; none in the unmasked crop) and the PSNR over the other voxels."""
    report: dict[str, dict[str, list[float]]] = {
        name: {"psnr": [], "sigma": [], "mu_std": [], "edge_share": [], "off_edge_mse": []} for name, _, _ in INPUTS}
    for item in items:
        for name, key, channel in INPUTS:
            x = torch.from_numpy(read(item[key], channel))[None, None]
            mu, sigma = autoencoder.encode(x)
            reconstruction = autoencoder.decode(mu)
            error = (reconstruction - x)[0, 0].double().numpy() ** 2
            edge = zero_edge(x)[0, 0].numpy().astype(bool)
            entry = report[name]
            entry["psnr"].append(psnr(reconstruction[0, 0].numpy(), x[0, 0].numpy()))
            entry["sigma"].append(float(sigma.mean()))
            entry["mu_std"].append(float(mu.std()))
            entry["edge_share"].append(float(error[edge].sum() / max(error.sum(), 1e-20)))
            entry["off_edge_mse"].append(float(error[~edge].mean()))
    return {name: {"reconstruction_psnr_db": float(np.mean(e["psnr"])),
                   "posterior_sigma": float(np.mean(e["sigma"])), "posterior_mu_std": float(np.mean(e["mu_std"])),
                   "edge_error_share": float(np.mean(e["edge_share"])),
                   "off_edge_psnr_db": float(10 * np.log10(1 / max(np.mean(e["off_edge_mse"]), 1e-30)))}
            for name, e in report.items()}


@torch.no_grad()
def tiled_reconstruction_psnr(autoencoder: torch.nn.Module, items: list[dict], tile: tuple[int, ...]) -> dict[str, float]:
    """PSNR of ``decode(mu)`` against each input reconstructed in non-overlapping tiles of ``tile`` (which must
    divide it), e.g. the crop size the autoencoder trained on."""
    scores: dict[str, list[float]] = {name: [] for name, _, _ in INPUTS}
    for item in items:
        for name, key, channel in INPUTS:
            x = torch.from_numpy(read(item[key], channel))[None, None]
            if any(side % t for side, t in zip(x.shape[2:], tile)):
                raise ValueError(f"tiles of {tuple(tile)} do not divide the {tuple(x.shape[2:])} input {item[key]}")
            reconstruction = torch.empty_like(x)
            for corner in itertools.product(*(range(0, side, t) for side, t in zip(x.shape[2:], tile))):
                where = (..., *(slice(c, c + t) for c, t in zip(corner, tile)))
                reconstruction[where] = autoencoder.decode(autoencoder.encode(x[where])[0])
            scores[name].append(psnr(reconstruction[0, 0].numpy(), x[0, 0].numpy()))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def block_average_psnr(items: list[dict], factor: int) -> dict[str, float]:
    """PSNR of each input against its average over ``factor``-voxel blocks, interpolated back (trilinear)."""
    import torch.nn.functional as F

    scores: dict[str, list[float]] = {name: [] for name, _, _ in INPUTS}
    for item in items:
        for name, key, channel in INPUTS:
            x = torch.from_numpy(read(item[key], channel))[None, None]
            smooth = F.interpolate(F.avg_pool3d(x, factor), size=x.shape[2:], mode="trilinear", align_corners=False)
            scores[name].append(psnr(smooth[0, 0].numpy(), x[0, 0].numpy()))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def _blocks(volume: np.ndarray, size: int) -> np.ndarray:
    """(n_blocks, size**3) non-overlapping blocks of a volume whose sides are multiples of ``size``."""
    x, y, z = (side // size for side in volume.shape)
    return volume.reshape(x, size, y, size, z, size).transpose(0, 2, 4, 1, 3, 5).reshape(-1, size**3)


def _unblocks(blocks: np.ndarray, shape: tuple[int, ...], size: int) -> np.ndarray:
    x, y, z = (side // size for side in shape)
    return blocks.reshape(x, y, z, size, size, size).transpose(0, 3, 1, 4, 2, 5).reshape(shape)


def block_pca_psnr(fit_items: list[dict], items: list[dict], components: tuple[int, ...] = (4, 8, 16, 32),
                   size: int = 4) -> dict[str, dict[str, float]]:
    """PSNR of each input of ``items`` against its projection on the first k principal components of the
    ``size``-voxel blocks of every input of ``fit_items``, for each k of ``components``."""
    blocks = np.concatenate([_blocks(read(item[key], channel), size) for item in fit_items for _, key, channel in INPUTS])
    mean = blocks.mean(0)
    _, _, axes = np.linalg.svd((blocks - mean).astype(np.float64), full_matrices=False)
    scores: dict[int, dict[str, list[float]]] = {k: {name: [] for name, _, _ in INPUTS} for k in components}
    for item in items:
        for name, key, channel in INPUTS:
            x = read(item[key], channel)
            centred = _blocks(x, size) - mean
            for k in components:
                projected = centred @ axes[:k].T @ axes[:k] + mean
                scores[k][name].append(psnr(_unblocks(projected, x.shape, size), x))
    return {f"{k} components": {name: float(np.mean(values)) for name, values in scores[k].items()} for k in components}


def noise_ceiling(noisy_items: list[dict], clean_items: list[dict]) -> dict[str, float]:
    clean_by_case = {item["case_id"]: item for item in clean_items}
    scores: dict[str, list[float]] = {name: [] for name, _, _ in INPUTS}
    for item in noisy_items:
        twin = clean_by_case[item["case_id"]]
        for name, key, channel in INPUTS:
            scores[name].append(psnr(read(item[key], channel), read(twin[key], channel)))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint", default=str(BUNDLE / "models" / "model_autoencoder.pt"))
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--seed", type=int, default=3001)
    parser.add_argument("--autoencoder", default="{}", help="JSON of neogen_autoencoder arguments (other widths)")
    parser.add_argument("--pca_patches", help="patch datalist of other cases for the 4x4x4-block PCA reference")
    parser.add_argument("--pca_cases", type=int, default=200, help="cases of --pca_patches to fit the PCA on")
    parser.add_argument("--tile", type=int, nargs=3, metavar=("X", "Y", "Z"),
                        help="also reconstruct each input in tiles of this size (e.g. the training crop size)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    noisy, clean = cohorts(out, args.cases, args.seed)
    neoseg_items = patches_with_tumour(load_patch_datalist(neoseg_patches(noisy, out / "neoseg_patches")))
    noisy_gt = patches_with_tumour(load_patch_datalist(ground_truth(noisy, out / "gt_patches")))
    clean_gt = patches_with_tumour(load_patch_datalist(ground_truth(clean, out / "gt_patches_noise_free")))
    autoencoder = load_weights(neogen_autoencoder(**json.loads(args.autoencoder)), args.checkpoint, what="autoencoder").eval()
    result = {
        "checkpoint": args.checkpoint,
        "cohort": {"cases": args.cases, "seed": args.seed, "neoseg_patches": len(neoseg_items)},
        "reconstruction": reconstruction_report(autoencoder, neoseg_items),
        "noise_ceiling_psnr_db": noise_ceiling(noisy_gt, clean_gt),
        "block_average_psnr_db": {f"{k}x{k}x{k}": block_average_psnr(neoseg_items, k) for k in (2, 4)},
    }
    if args.tile:
        result["tiled_reconstruction_psnr_db"] = {"tile": args.tile, **tiled_reconstruction_psnr(autoencoder, neoseg_items, args.tile)}
    if args.pca_patches:
        fit_items = patches_with_tumour(load_patch_datalist(args.pca_patches))[: args.pca_cases]
        result["block_pca_psnr_db"] = {"patches": args.pca_patches, "cases": len(fit_items),
                                       **block_pca_psnr(fit_items, neoseg_items)}
    text = json.dumps(result, indent=2) + "\n"
    atomic_write(out / "autoencoder_psnr.json", lambda tmp: tmp.write_text(text))
    print(f"{len(neoseg_items)} NeoSeg patches of an unseen cohort (seed {args.seed}); {args.checkpoint}")
    print("| input | reconstruction PSNR | noise ceiling | 2x2x2 block average | 4x4x4 block average |\n"
          "| --- | --- | --- | --- | --- |")
    blocks = result["block_average_psnr_db"]
    for name, _, _ in INPUTS:
        print(f"| {name} | {result['reconstruction'][name]['reconstruction_psnr_db']:.1f} dB | {result['noise_ceiling_psnr_db'][name]:.1f} dB "
              f"| {blocks['2x2x2'][name]:.1f} dB | {blocks['4x4x4'][name]:.1f} dB |")
    print("\n| input | posterior sigma (mean) | posterior mean (std) | share of the squared error on the mask's edge "
          "| PSNR off the edge |\n| --- | --- | --- | --- | --- |")
    for name, entry in result["reconstruction"].items():
        print(f"| {name} | {entry['posterior_sigma']:.3f} | {entry['posterior_mu_std']:.3f} | {entry['edge_error_share']:.2f} "
              f"| {entry['off_edge_psnr_db']:.1f} dB |")
    if "tiled_reconstruction_psnr_db" in result:
        tiled = result["tiled_reconstruction_psnr_db"]
        print(f"\nReconstructed in {'x'.join(map(str, tiled['tile']))} tiles: "
              + ", ".join(f"{name} {tiled[name]:.1f} dB" for name, _, _ in INPUTS))
    if "block_pca_psnr_db" in result:
        pca = result["block_pca_psnr_db"]
        codes = [k for k in pca if k.endswith("components")]
        print(f"\nLinear codes: 4x4x4 blocks projected on principal components fit on {pca['cases']} cases of {pca['patches']}")
        print("| input | " + " | ".join(codes) + " |\n| --- |" + " --- |" * len(codes))
        for name, _, _ in INPUTS:
            print(f"| {name} | " + " | ".join(f"{pca[k][name]:.1f} dB" for k in codes) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
