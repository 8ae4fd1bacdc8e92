"""The input gate's out-of-distribution check: latent features, the fitted reference, and what it refuses."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn as nn

from attention_maps import neocls_network, saved_patch
from bundle_runs import parse_configs, run_bundle
from neonet_ext.data.latent_cache import autoencoder_fingerprint
from neonet_ext.engines import InputGated, LatentOutlierScore, LatentReference, fit_latent_reference, latent_features

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "neocls"
NEOSEG_SAMPLE = BUNDLE.parent / "neoseg" / "sample_data" / "imagesTr"


class BlockMeans(nn.Module):
    """A stand-in encoder with known output: latent 0 is the mean of each 2x2x2 block, latent 1 twice it."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Conv3d(1, 2, kernel_size=2, stride=2, bias=False)
        with torch.no_grad():
            self.encoder.weight[0].fill_(1 / 8)
            self.encoder.weight[1].fill_(2 / 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class Carrier(nn.Module):
    """A network that carries an encoder as PattenNet does (``latent_encoder``)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.latent_encoder = encoder


def two_region_patch(liver: tuple[float, float] = (1.0, 3.0), tumour: float = 5.0) -> torch.Tensor:
    """(2, 8, 8, 8): liver channel ``liver[0]`` in its first half along x, ``liver[1]`` in the second;
    tumour channel ``tumour`` in a 4x4x4 corner (whole 2x2x2 blocks, so each latent voxel is in or out)."""
    patch = torch.zeros(2, 8, 8, 8)
    patch[0, :4], patch[0, 4:] = liver
    patch[1, :4, :4, :4] = tumour
    return patch


def test_latent_features_have_known_values():
    features = latent_features(BlockMeans(), two_region_patch())
    # liver: latent 0 is 1 in half the blocks and 3 in the other (mean 2, std 1); latent 1 twice that
    # tumour: every block 5 (std 0), latent 1 10
    np.testing.assert_allclose(features, [2, 4, 1, 2, 5, 10, 0, 0], atol=1e-6)


def test_masks_weigh_the_latent_voxels_they_cover():
    patch = two_region_patch()
    masks = (patch != 0).float()
    masks[0, 4:] = 0  # the liver mask leaves out the half where the liver channel is 3
    features = latent_features(BlockMeans(), patch, masks)
    np.testing.assert_allclose(features[:4], [1, 2, 0, 0], atol=1e-6)
    assert latent_features(BlockMeans(), torch.zeros(2, 8, 8, 8)) is None  # no liver, no tumour: no features


def fitted(encoder: nn.Module, n: int = 200, seed: int = 0) -> LatentReference:
    """A reference fitted on two-region patches whose intensities vary a little around (1, 3, 5)."""
    rng = np.random.default_rng(seed)
    patches = [(two_region_patch(tuple(rng.normal([1, 3], 0.1)), float(rng.normal(5, 0.2))), None) for _ in range(n)]
    return fit_latent_reference(encoder, patches, quantile=0.99, margin=1.5)


def test_fitted_reference_accepts_its_population_and_refuses_the_rest(tmp_path):
    encoder = BlockMeans()
    reference = fitted(encoder)
    assert reference.encoder_sha1 == autoencoder_fingerprint(encoder)
    assert reference.calibration["fitted_patches"] == 160 and reference.calibration["held_back_patches"] == 40
    assert reference.threshold == pytest.approx(1.5 * reference.calibration["held_back_quantile_distance"])
    assert reference.distance(latent_features(encoder, two_region_patch())) < reference.threshold
    # fresh patches of the same population: nearly all accepted
    rng = np.random.default_rng(7)
    distances = [reference.distance(latent_features(encoder, two_region_patch(tuple(rng.normal([1, 3], 0.1)),
                                                                                float(rng.normal(5, 0.2)))))
                 for _ in range(200)]
    assert np.mean(np.array(distances) > reference.threshold) < 0.02
    # another contrast: a tumour darker than the liver, a liver twice as bright
    assert reference.distance(latent_features(encoder, two_region_patch(tumour=0.5))) > reference.threshold
    assert reference.distance(latent_features(encoder, two_region_patch(liver=(2.0, 6.0)))) > reference.threshold

    path = reference.save(tmp_path / "reference.json")
    assert LatentReference.load(path) == reference


def test_gate_refuses_an_outlier_in_words(tmp_path):
    encoder = BlockMeans()
    path = fitted(encoder).save(tmp_path / "reference.json")
    # an 8 mm^3 patch of 1 mm voxels: a 0.06 ml tumour, which the size check would refuse
    gate = InputGated(keys="patch", min_tumour_volume_ml=0.01, latent_outlier=LatentOutlierScore(Carrier(encoder), path))
    typical = gate({"patch": two_region_patch()})
    assert typical["refused"] == "" and typical["latent_distance"] < gate.latent_outlier.threshold
    odd = gate({"patch": two_region_patch(tumour=0.5)})
    assert odd["latent_distance"] > gate.latent_outlier.threshold
    assert odd["refused"].startswith("the patch does not look like the HBP MRI NeoNet was trained on (latent distance")
    assert "latent_outlier=LatentOutlierScore(encoder_sha1=" in repr(gate)  # a re-run with another reference redoes cases
    assert InputGated(keys="patch")({"patch": two_region_patch(tumour=0.5)})["latent_distance"] is None


def test_a_reference_of_other_weights_or_a_bad_file_is_refused_by_name(tmp_path):
    encoder = BlockMeans()
    path = fitted(encoder).save(tmp_path / "reference.json")
    other = BlockMeans()
    with torch.no_grad():
        other.encoder.weight[1].fill_(3 / 8)
    with pytest.raises(ValueError, match=r"reference\.json' was fitted with other encoder weights"):
        LatentOutlierScore(Carrier(other), path)
    with pytest.raises(FileNotFoundError, match=r"missing\.json.*--latent_reference null"):
        LatentOutlierScore(Carrier(encoder), tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**json.loads(path.read_text()), "mean": [0.0]}))
    with pytest.raises(ValueError, match=r"broken\.json' is not one fit_latent_reference\.py writes"):
        LatentOutlierScore(Carrier(encoder), broken)
    with pytest.raises(ValueError, match="this Linear does not have"):
        LatentOutlierScore(nn.Linear(2, 2), path)


def test_shipped_reference_fits_the_shipped_weights_and_refuses_another_contrast():
    """The shipped PattenNet and its reference: the sample patches pass; the same patch with the
    tumour brighter than the liver (another phase or sequence) is refused."""
    network = neocls_network([BUNDLE / "configs" / "inference.json"], BUNDLE / "models" / "model.pt")
    score = LatentOutlierScore(network, BUNDLE / "models" / "latent_reference.json")
    patch = saved_patch(BUNDLE / "sample_data" / "case_000" / "case_000_tlcr.nii.gz")
    assert score(patch) < score.threshold
    inside = patch != 0
    inverted = torch.where(inside, patch[0].max() - patch, patch)
    assert score(inverted) > score.threshold


def test_the_chain_builds_its_gate_from_the_config(tmp_path):
    """inference.json's gate reads the shipped reference with the shipped PattenNet; a baseline's override
    file turns the check off (a baseline has no latent encoder), and so does --latent_reference null."""
    configs = BUNDLE / "configs"
    gate = parse_configs(configs, ["inference.json"], "--device", "cpu").get_parsed_content("input_gate")
    assert isinstance(gate.latent_outlier, LatentOutlierScore)
    assert gate.latent_outlier.reference_file == BUNDLE / "models" / "latent_reference.json"
    off = parse_configs(configs, ["inference.json"], "--device", "cpu", "--latent_reference", "None")
    assert off.get_parsed_content("input_gate").latent_outlier is None
    baseline = parse_configs(configs, ["inference.json", "networks/densenet121.json"], "--device", "cpu",
                             "--checkpoint", str(tmp_path / "densenet121.pt"))
    torch.save(baseline.get_parsed_content("network_def").state_dict(), tmp_path / "densenet121.pt")
    assert baseline.get_parsed_content("input_gate").latent_outlier is None


def test_shipped_chain_scores_the_liver_and_refuses_a_real_brain_mr(tmp_path):
    """The chain with the shipped weights on a synthetic HBP case and a real brain MR (nibabel's test volume).
    The brain passes every other check (NeoSeg draws a "liver" of ~265 ml with a "tumour" inside it, and a
    NIfTI says no modality); its patch's look gives it away."""
    data = tmp_path / "in"
    data.mkdir()
    shutil.copy(NEOSEG_SAMPLE / "case_000.nii.gz", data / "case_000.nii.gz")
    shutil.copy(Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii", data / "brain.nii")
    run_bundle(BUNDLE / "configs", ["inference.json"], "--dataset_dir", str(data), "--output_dir", str(tmp_path / "out"))
    with open(tmp_path / "out" / "predictions.csv", newline="") as f:
        table = {row["case"]: row for row in csv.DictReader(f)}
    threshold = LatentReference.load(BUNDLE / "models" / "latent_reference.json").threshold
    liver, brain = table["case_000"], table["brain"]
    assert liver["refused"] == "" and liver["pni_probability"] != "" and float(liver["latent_distance"]) < threshold
    assert brain["pni_probability"] == "" and float(brain["latent_distance"]) > threshold
    assert brain["refused"].startswith("the patch does not look like the HBP MRI NeoNet was trained on")
