"""The whole chain, MRI -> NeoSeg -> TLCR -> NeoCls, run for real with `python -m monai.bundle run`.

NeoSeg runs with its shipped weights; NeoCls with a tiny PattenNet whose head is scaled up so
that cases get clearly different probabilities (a random head gives ~0.5 everywhere).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import ConfigParser

from attention_maps import gradcam_map, neocls_network, saved_patch, spatial_gate_map
from bundle_runs import run_bundle
from neonet_ext.metrics import attention_share

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "neocls"
CONFIGS = BUNDLE / "configs"
NEOSEG_SAMPLE = REPO / "bundles" / "neoseg" / "sample_data" / "imagesTr"
TINY = Path(__file__).parent / "data" / "neocls_tiny.json"


def infer(*overrides: str, configs=("inference.json", TINY), check: bool = True):
    return run_bundle(CONFIGS, list(configs), *overrides, check=check)


def read_table(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row["case"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.json"), str(TINY)])
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def")
    torch.nn.init.normal_(net.head[1].weight, std=1.0)  # probabilities apart, yet not saturated at 0 or 1
    path = tmp_path_factory.mktemp("neocls_weights") / "model.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def chain(checkpoint, tmp_path_factory) -> tuple[Path, str]:
    """The chain on the NeoSeg sample's two volumes, a DICOM series and a broken file."""
    data = tmp_path_factory.mktemp("mri")
    for f in NEOSEG_SAMPLE.glob("*.nii.gz"):
        shutil.copy(f, data / f.name)
    (data / "broken.nii.gz").write_bytes(b"not a nifti file")
    shutil.copytree(Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "98892001" / "CT5N",
                    data / "ct_series")  # a real DICOM series (a small CT)
    out = tmp_path_factory.mktemp("chain")
    result = infer("--dataset_dir", str(data), "--checkpoint", str(checkpoint), "--output_dir", str(out), check=False)
    assert result.returncode != 0, "a failed case must make the run fail"
    return out, result.stdout + result.stderr


def test_inference_config_defines_the_trained_network():
    train = json.loads((CONFIGS / "train.json").read_text())
    inference = json.loads((CONFIGS / "inference.json").read_text())
    assert inference["autoencoder_def"] == train["autoencoder_def"]
    assert inference["network_def"] == {**train["network_def"], "autoencoder_checkpoint": None}


def test_chain_writes_probabilities_and_per_case_files(chain, checkpoint):
    out, log = chain
    table = read_table(out / "predictions.csv")
    assert sorted(table) == ["broken", "case_000", "case_001", "ct_series"]
    series = table["ct_series"]
    assert series["error"] == "" and series["pni_probability"] == ""  # refused, not failed: a CT has no PNI probability
    assert series["refused"].startswith("modality CT, not MR; segmented liver of")
    assert series["series_description"] == "SmartScore - Gated 0.5 sec"
    assert (out / "ct_series" / "ct_series_report.png").is_file() and (out / "ct_series" / "ct_series_seg.nii.gz").is_file()
    assert "broken.nii.gz" in table["broken"]["error"] and "broken.nii.gz" in log
    probabilities, network = [], neocls_network([CONFIGS / "inference.json", TINY], checkpoint)
    for case in ("case_000", "case_001"):
        row = table[case]
        assert row["error"] == "" and row["refused"] == "" and row["tumour_found"] == "True" and float(row["tumour_volume_ml"]) > 0.5
        assert 100 < float(row["liver_volume_ml"]) < 4000 and float(row["tumour_rim_in_liver"]) > 0.9
        probabilities.append(float(row["pni_probability"]))
        with torch.no_grad():  # the network's PNI softmax on the patch it classified
            expected = torch.softmax(network(saved_patch(out / case / f"{case}_tlcr.nii.gz")[None]), 1)[0, 1].item()
        assert probabilities[-1] == pytest.approx(expected, abs=1e-4)
        files = sorted(p.name for p in (out / case).iterdir())
        assert files == [f"{case}_{s}" for s in ("attention.nii.gz", "report.png", "seg.nii.gz", "tlcr.nii.gz",
                                               "tlcr_image.nii.gz", "tlcr_mask.nii.gz")]
        patch, attention = nib.load(out / case / f"{case}_tlcr.nii.gz"), nib.load(out / case / f"{case}_attention.nii.gz")
        assert attention.shape == patch.shape[:3] and np.allclose(attention.affine, patch.affine)
        # the map is the network's spatial-attention gates on the patch that was classified
        gates = spatial_gate_map(network, saved_patch(out / case / f"{case}_tlcr.nii.gz"))
        assert np.ptp(attention.get_fdata()) > 0 and np.allclose(attention.get_fdata(), gates[0].numpy(), atol=1e-5)
        tumour = np.asarray(nib.load(out / case / f"{case}_tlcr_mask.nii.gz").dataobj)[..., 1]
        expected = attention_share(attention.get_fdata(), tumour, attention.header.get_zooms()[:3])
        assert (float(row["attention_in_tumour_rim"]), float(row["tumour_rim_share"])) == pytest.approx(expected, abs=1e-4)
        assert (out / case / f"{case}_report.png").read_bytes()[:4] == b"\x89PNG"
    assert abs(probabilities[0] - probabilities[1]) > 1e-3
    assert "1 of 4 cases failed" in log


def test_an_interrupted_chain_ends_with_the_same_tables_after_a_rerun(chain, checkpoint, tmp_path):
    """The state an interruption before the last case leaves (tables written as each case finished), then
    the same command again: the finished cases are kept, the rest done, and the tables are as after one run."""
    out, _ = chain
    interrupted = tmp_path / "out"
    shutil.copytree(out, interrupted)
    entries = json.loads((out / "cases.json").read_text())["testing"]
    last = entries[-1]["case_id"]
    (interrupted / "cases.json").write_text(json.dumps({"testing": entries[:-1]}, indent=2))
    rows = (out / "predictions.csv").read_text().splitlines(keepends=True)
    (interrupted / "predictions.csv").write_text("".join(r for r in rows if not r.startswith(f"{last},")))
    shutil.rmtree(interrupted / last)
    inputs = Path(entries[0]["image"]).parent  # stored absolute: the inputs are outside the output folder
    result = infer("--dataset_dir", str(inputs), "--checkpoint", str(checkpoint), "--output_dir", str(interrupted),
                   check=False)
    assert result.stdout.count("done by an earlier run with the same input and weights; kept") == len(entries) - 1
    assert f"{last}: done in" in result.stdout
    assert (interrupted / "predictions.csv").read_text() == (out / "predictions.csv").read_text()
    assert (interrupted / "cases.json").read_text() == (out / "cases.json").read_text()


def test_precomputed_patches_give_the_chains_probabilities(chain, checkpoint, tmp_path):
    out, _ = chain
    infer("--patches_file", str(out / "cases.json"), "--checkpoint", str(checkpoint), "--output_dir", str(tmp_path))
    from_volume, from_patch = read_table(out / "predictions.csv"), read_table(tmp_path / "predictions.csv")
    assert sorted(from_patch) == ["case_000", "case_001", "ct_series"]
    assert from_patch["ct_series"]["pni_probability"] == "" and "segmented liver of 1 ml" in from_patch["ct_series"]["refused"]
    for case, row in from_patch.items():
        if case != "ct_series":
            assert abs(float(row["pni_probability"]) - float(from_volume[case]["pni_probability"])) < 1e-4
        assert row["tumour_volume_ml"] == from_volume[case]["tumour_volume_ml"]  # from NeoSeg's whole segmentation
        assert sorted(p.name for p in (tmp_path / case).iterdir()) == [f"{case}_attention.nii.gz", f"{case}_report.png"]


def test_shipped_patch_sample_with_a_tumourless_case(checkpoint, tmp_path):
    infer("--patches_file", str(BUNDLE / "sample_data" / "patches.json"), "--checkpoint", str(checkpoint),
          "--output_dir", str(tmp_path), "--attention", "gradcam")
    table = read_table(tmp_path / "predictions.csv")
    assert len(table) == 8 and table["case_007"]["tumour_found"] == "False"
    assert table["case_007"]["pni_probability"] == "" and table["case_007"]["error"] == ""
    network = neocls_network([CONFIGS / "inference.json", TINY], checkpoint)
    for case, row in table.items():  # the network's PNI softmax on each sample patch
        if case != "case_007":
            with torch.no_grad():
                patch = saved_patch(BUNDLE / "sample_data" / case / f"{case}_tlcr.nii.gz")
                assert float(row["pni_probability"]) == pytest.approx(
                    torch.softmax(network(patch[None]), 1)[0, 1].item(), abs=1e-4), case
    attention = nib.load(tmp_path / "case_000" / "case_000_attention.nii.gz").get_fdata()
    # Grad-CAM of the PNI logit at the last stage's convolution, computed here from its definition
    expected = gradcam_map(network, "stages.1.conv",
                           saved_patch(BUNDLE / "sample_data" / "case_000" / "case_000_tlcr.nii.gz"))
    assert attention.shape == (64, 64, 32) and np.allclose(attention, expected[0].numpy(), atol=1e-4)


def test_patch_of_the_wrong_size_is_named(checkpoint, tmp_path):
    good = json.loads((BUNDLE / "sample_data" / "patches.json").read_text())["testing"][0]
    small = tmp_path / "small_tlcr.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((32, 32, 16, 2), np.float32), np.eye(4)), small)
    one_channel = tmp_path / "one_tlcr.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((64, 64, 32), np.float32), np.eye(4)), one_channel)
    items = [{**good, "patch": str(BUNDLE / "sample_data" / good["patch"])},
             {"case_id": "small", "patch": str(small)}, {"case_id": "one", "patch": str(one_channel)}]
    (tmp_path / "patches.json").write_text(json.dumps({"testing": items}))
    result = infer("--patches_file", str(tmp_path / "patches.json"), "--checkpoint", str(checkpoint),
                   "--output_dir", str(tmp_path / "out"), check=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "small_tlcr.nii.gz: wrong patch size: shape (2, 32, 32, 16)" in log
    assert "one_tlcr.nii.gz: wrong patch channel count: shape (1, 64, 64, 32)" in log
    assert read_table(tmp_path / "out" / "predictions.csv")[good["case_id"]]["error"] == ""


def test_missing_neoseg_bundle_or_weights_say_where_they_looked(checkpoint, tmp_path):
    sample = ("--dataset_dir", str(NEOSEG_SAMPLE), "--output_dir", str(tmp_path / "out"))
    result = infer("--neoseg_bundle_root", str(tmp_path / "nowhere"), "--checkpoint", str(checkpoint), *sample,
                   check=False)
    assert result.returncode != 0
    assert f"NeoSeg bundle not found: {tmp_path / 'nowhere' / 'configs' / 'inference.json'}" in result.stderr
    bundle = tmp_path / "neoseg"
    shutil.copytree(REPO / "bundles" / "neoseg" / "configs", bundle / "configs")
    result = infer("--neoseg_bundle_root", str(bundle), "--checkpoint", str(checkpoint), *sample, check=False)
    assert result.returncode != 0 and f"NeoSeg weights not found: {bundle / 'models' / 'model.pt'}" in result.stderr


def test_checkpoint_that_does_not_fit_the_config_is_named(checkpoint, tmp_path):
    result = infer("--checkpoint", str(checkpoint), "--patches_file", str(BUNDLE / "sample_data" / "patches.json"),
                   "--output_dir", str(tmp_path), configs=["inference.json"], check=False)
    assert result.returncode != 0 and f"NeoCls weights {checkpoint} do not fit the network" in result.stderr


def test_missing_neocls_weights_say_where_they_looked(tmp_path):
    result = infer("--patches_file", str(BUNDLE / "sample_data" / "patches.json"), "--output_dir", str(tmp_path),
                   "--checkpoint", str(tmp_path / "absent.pt"), check=False)
    assert result.returncode != 0 and f"NeoCls weights not found: {tmp_path / 'absent.pt'}" in result.stderr


@pytest.mark.slow
def test_heldout_evaluation_scores_the_chain_against_the_oracle(checkpoint, tmp_path):
    import subprocess
    import sys

    configs = f"['{CONFIGS / 'inference.json'}','{TINY}']"
    result = subprocess.run(
        [sys.executable, str(BUNDLE / "scripts" / "evaluate_heldout.py"), "--out", str(tmp_path), "--seeds", "5",
         "--cases", "4", "--config_file", configs, "--", "--checkpoint", str(checkpoint)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads((tmp_path / "metrics.json").read_text())
    assert figures["n_generated"] == 4 and figures["n_cases"] + figures["n_without_probability"] == 4
    assert 0 <= figures["oracle_auc"] <= 1 and figures["auc_over_oracle"] == pytest.approx(
        figures["roc_auc"] / figures["oracle_auc_scored_cases"])
    assert 0 <= figures["sign_reader_auc_scored_cases"] <= 1 and figures["auc_over_sign_reader"] == pytest.approx(
        figures["roc_auc"] / figures["sign_reader_auc_scored_cases"])
    assert (tmp_path / "reliability.png").is_file() and (tmp_path / "seed_5" / "chain" / "predictions.csv").is_file()
    maps = [row for row in csv.DictReader(open(tmp_path / "seed_5" / "chain" / "predictions.csv")) if row["pni_probability"]]
    assert figures["n_attention_maps"] == len(maps) and figures["attention_in_tumour_rim_mean"] == pytest.approx(
        np.mean([float(row["attention_in_tumour_rim"]) for row in maps]))
