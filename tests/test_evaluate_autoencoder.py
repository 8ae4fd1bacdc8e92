"""The autoencoder evaluation's reference figures: known values on volumes whose answer is known."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bundles" / "neogen" / "scripts" / "evaluate_autoencoder.py"


def _script():
    spec = importlib.util.spec_from_file_location("neogen_evaluate_autoencoder", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_block_average_keeps_smooth_inputs_and_loses_a_voxel_checkerboard(tmp_path):
    script = _script()
    x, y, z = np.indices((16, 16, 8))
    checkerboard = ((x + y + z) % 2).astype(np.float32)  # every 2x2x2 block averages to 0.5: MSE 0.25
    constant = np.full((16, 16, 8), 0.4, np.float32)
    items = []
    for name, image in (("checkerboard", checkerboard), ("constant", constant)):
        nib.save(nib.Nifti1Image(image, np.eye(4)), tmp_path / f"{name}_image.nii.gz")
        nib.save(nib.Nifti1Image(np.stack([image, image], -1), np.eye(4)), tmp_path / f"{name}_patch.nii.gz")
        items.append({"patch_image": str(tmp_path / f"{name}_image.nii.gz"), "patch": str(tmp_path / f"{name}_patch.nii.gz")})
    for factor in (2, 4):
        board = script.block_average_psnr(items[:1], factor)
        assert all(value == pytest.approx(10 * math.log10(4)) for value in board.values())
        assert all(value > 100 for value in script.block_average_psnr(items[1:], factor).values())  # float rounding only


def test_block_pca_keeps_what_its_components_span(tmp_path):
    """Blocks that vary along one direction are kept whole by one component; random blocks lose more with fewer."""
    script = _script()
    rng = np.random.default_rng(0)
    pattern = rng.normal(size=(4, 4, 4)).astype(np.float32)

    def items(name, volume_of):
        out = []
        for case in range(2):
            image = volume_of(case)
            nib.save(nib.Nifti1Image(image, np.eye(4)), tmp_path / f"{name}{case}_image.nii.gz")
            nib.save(nib.Nifti1Image(np.stack([image, image], -1), np.eye(4)), tmp_path / f"{name}{case}_patch.nii.gz")
            out.append({"patch_image": str(tmp_path / f"{name}{case}_image.nii.gz"),
                        "patch": str(tmp_path / f"{name}{case}_patch.nii.gz")})
        return out

    # every block a multiple of one pattern: a one-dimensional family of blocks
    scaled = items("scaled", lambda case: np.kron(rng.normal(size=(4, 4, 2)), pattern).astype(np.float32))
    kept = script.block_pca_psnr(scaled, scaled, components=(1, 2))
    assert all(value > 60 for value in kept["1 components"].values())
    noise = items("noise", lambda case: rng.normal(size=(16, 16, 8)).astype(np.float32))
    lossy = script.block_pca_psnr(noise, noise, components=(4, 32, 64))
    name = "unmasked crop"
    assert lossy["4 components"][name] < lossy["32 components"][name] < 60 < lossy["64 components"][name]


class _MeanRemover(torch.nn.Module):
    """A stand-in autoencoder whose output depends on its whole input, as GroupNorm's does: x - mean(x)."""

    def encode(self, x):
        return x - x.mean(), torch.ones_like(x)

    def decode(self, z):
        return z


def test_tiled_reconstruction_encodes_each_tile_on_its_own(tmp_path):
    script = _script()
    image = np.zeros((8, 8, 4), np.float32)
    image[:4] = 0.2  # two halves along x: each 4x8x4 tile is constant
    nib.save(nib.Nifti1Image(image, np.eye(4)), tmp_path / "image.nii.gz")
    nib.save(nib.Nifti1Image(np.stack([image, image], -1), np.eye(4)), tmp_path / "patch.nii.gz")
    items = [{"patch_image": str(tmp_path / "image.nii.gz"), "patch": str(tmp_path / "patch.nii.gz")}]
    whole = script.reconstruction_report(_MeanRemover(), items)
    tiled = script.tiled_reconstruction_psnr(_MeanRemover(), items, tile=(4, 8, 4))
    assert all(entry["reconstruction_psnr_db"] == pytest.approx(10 * math.log10(1 / 0.1**2), abs=1e-3)
               for entry in whole.values())  # off by 0.1
    # each tile's own mean is removed: the zero half exactly, the 0.2 half entirely (MSE 0.02)
    assert all(value == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-3) for value in tiled.values())
    with pytest.raises(ValueError, match="do not divide"):
        script.tiled_reconstruction_psnr(_MeanRemover(), items, tile=(3, 8, 4))


class _Blur(torch.nn.Module):
    """A stand-in autoencoder that averages each voxel's 3x3x3 neighbourhood: it errs only next to an edge."""

    def encode(self, x):
        return x, torch.full_like(x, 0.5)

    def decode(self, z):
        return torch.nn.functional.avg_pool3d(z, 3, stride=1, padding=1, count_include_pad=False)


def test_edge_report_finds_the_error_of_a_blurred_mask_edge(tmp_path):
    script = _script()
    image = np.zeros((12, 12, 8), np.float32)
    image[3:9, 3:9, 2:6] = 0.5  # a masked box: the blur changes only voxels within one voxel of its boundary
    nib.save(nib.Nifti1Image(image, np.eye(4)), tmp_path / "image.nii.gz")
    nib.save(nib.Nifti1Image(np.stack([image, image], -1), np.eye(4)), tmp_path / "patch.nii.gz")
    items = [{"patch_image": str(tmp_path / "image.nii.gz"), "patch": str(tmp_path / "patch.nii.gz")}]
    report = script.reconstruction_report(_Blur(), items)
    for entry in report.values():
        assert entry["posterior_sigma"] == pytest.approx(0.5)
        assert entry["edge_error_share"] == pytest.approx(1.0) and entry["off_edge_psnr_db"] > 100
    image[5, 5, 3] = 0.1  # a dip inside the box: error off the edge too
    nib.save(nib.Nifti1Image(image, np.eye(4)), tmp_path / "image.nii.gz")
    assert script.reconstruction_report(_Blur(), items)["unmasked crop"]["edge_error_share"] < 0.99
