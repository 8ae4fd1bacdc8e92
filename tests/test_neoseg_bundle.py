"""The NeoSeg bundle run for real with `python -m monai.bundle run`, at tiny size."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from scipy import ndimage

from bundle_runs import TWO_CPU_PROCESSES, check_two_rank_run, parse_configs, run_bundle
from neonet_ext.data.patches import load_patch_datalist
from neonet_ext.data.synthetic import SyntheticCohortConfig, write_cohort
from neonet_ext.labels import LABEL_NAMES

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "neoseg"
CONFIGS = BUNDLE / "configs"
SCHEMA = Path(__file__).parent / "data" / "meta_schema_20240725.json"
TINY_PATCH = {"unet": "[32,32,16]", "segresnet": "[32,32,16]", "dynunet": "[32,32,16]", "swinunetr": "[64,64,32]"}


def bundle_run(configs: list[str], *overrides: str, launcher: list[str] | None = None, check: bool = True):
    return run_bundle(CONFIGS, configs, *overrides, launcher=launcher, check=check)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("neoseg") / "cohort"
    write_cohort(out, 4, 11, SyntheticCohortConfig(shape=(64, 56, 24), image_dtype="int16"), verbose=False)
    return out


def train_overrides(cohort: Path, out: Path, network: str = "segresnet") -> list[str]:
    return [
        "--dataset_dir", str(cohort), "--output_dir", str(out / "run"), "--ckpt_dir", str(out / "models"),
        "--epochs", "1", "--val_interval", "1", "--val_fraction", "0.5", "--patch_size", TINY_PATCH[network],
        "--num_workers", "0", "--cache_rate", "0",
    ]


@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory) -> Path:
    """A SegResNet checkpoint from one tiny epoch."""
    out = tmp_path_factory.mktemp("trained")
    bundle_run(["train.json"], *train_overrides(cohort, out))
    return out / "models" / "model.pt"


# ------------------------------------------------------------------ metadata and configs


def test_metadata_is_valid_offline():
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))


def test_metadata_names_the_project_labels():  # versions: tests/test_zoo.py
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    names = {str(k): v for k, v in LABEL_NAMES.items()}
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"] == names
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == len(names)


def test_default_network_is_the_segresnet_override():
    """The SegResNet of train.json and of the self-contained inference.json is networks/segresnet.json's
    (the network comparisons layer that file); a change to one copy alone fails here."""
    default = parse_configs(CONFIGS, ["networks/segresnet.json"])["network_def"]
    for name in ("train.json", "inference.json"):
        assert parse_configs(CONFIGS, [name])["network_def"] == default, name


def test_shipped_weights_load_on_cpu():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    net = parser.get_parsed_content("network_def")
    state = torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    assert (BUNDLE / "models" / "model.pt").stat().st_size < 25 * 2**20


# ------------------------------------------------------------------ training


@pytest.mark.parametrize("network", ["unet", "dynunet", pytest.param("swinunetr", marks=pytest.mark.slow)])
def test_each_network_trains_at_tiny_size(network, cohort, tmp_path):
    """Each network override trains, and the weights it saves are those of the network it names
    (parameter names and shapes), not train.json's SegResNet."""
    configs, overrides = ["train.json", f"networks/{network}.json"], train_overrides(cohort, tmp_path, network)
    result = bundle_run(configs, *overrides)
    assert "val_mean_dice" in result.stdout + result.stderr
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    built = parse_configs(CONFIGS, configs, *overrides).get_parsed_content("network_def")
    assert type(built).__name__ == {"unet": "UNet", "dynunet": "DynUNet", "swinunetr": "SwinUNETR"}[network]
    saved = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in built.state_dict().items()}


def test_training_resumes_from_the_last_checkpoint(trained, cohort, tmp_path):
    out = trained.parent.parent
    assert [p.name for p in (out / "run" / "checkpoints").iterdir()] == ["checkpoint_epoch=1.pt"]
    overrides = train_overrides(cohort, out)
    overrides[overrides.index("--epochs") + 1] = "2"
    result = bundle_run(["train.json"], *overrides)
    log = result.stdout + result.stderr
    assert "Restored all variables from" in log and "checkpoint_epoch=1.pt" in log
    assert "Epoch[1] Complete" not in log and "Epoch[2] Complete" in log


def test_training_can_start_from_the_shipped_weights(cohort, tmp_path):
    shipped = BUNDLE / "models" / "model.pt"
    result = bundle_run(["train.json"], *train_overrides(cohort, tmp_path), "--pretrained_checkpoint", str(shipped), "--learning_rate", "0")
    assert f"Started model from the weights in {shipped}" in result.stdout + result.stderr
    expected = torch.load(shipped, map_location="cpu", weights_only=True)
    trained = torch.load(tmp_path / "run" / "checkpoints" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=True)
    assert trained["model"].keys() == expected.keys()
    for key, value in expected.items():  # learning rate 0: one epoch leaves the loaded weights as they were
        torch.testing.assert_close(trained["model"][key], value, msg=key)


@pytest.mark.slow
def test_cpu_finetune_script_trains_the_shipped_weights_on_the_first_cases_of_its_cohort(tmp_path):
    import subprocess
    import sys

    # the script calls `python`, as a user's activated environment gives it
    env = {**os.environ, "COHORT_CASES": "5", "CASES": "4", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", str(BUNDLE / "scripts" / "finetune_cpu.sh"), str(tmp_path), "--patch_size", "[32,32,16]",
         "--cache_rate", "0", "--time_limit", "0.001"],  # every epoch outlasts 1 ms: stops after the first
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Started model from the weights in bundles/neoseg/models/model.pt" in result.stdout + result.stderr
    cohort = json.loads((tmp_path / "cohort" / "dataset.json").read_text())
    used = json.loads((tmp_path / "cohort" / "dataset_first4.json").read_text())
    assert len(cohort["training"]) == 5 and used["training"] == cohort["training"][:4]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["checkpoint_epoch=1.pt"]
    shipped = torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True)
    tuned = torch.load(tmp_path / "run" / "checkpoints" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=True)["model"]
    assert tuned.keys() == shipped.keys() and any(not torch.equal(tuned[k], shipped[k]) for k in shipped)


@pytest.mark.slow
def test_refiner_script_trains_a_refiner_on_the_shipped_weights_probabilities_and_resumes(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "CASES": "4", "SEED": "12", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = ["bash", str(BUNDLE / "scripts" / "train_refiner.sh"), str(tmp_path), "--epochs", "1", "--val_interval", "1",
               "--val_fraction", "0.5", "--patch_size", "[32,32,16]", "--num_workers", "0", "--cache_rate", "0"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    entries = json.loads((tmp_path / "probabilities" / "probabilities.json").read_text())["testing"]
    assert len(entries) == 4 and all(Path(e["label"]).is_file() for e in entries)
    from neonet_ext.networks import tumour_refiner

    tumour_refiner().load_state_dict(torch.load(tmp_path / "models" / "refiner.pt", map_location="cpu", weights_only=True))
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert again.stdout.count("done by an earlier run with the same input and weights; kept") == 4


def test_training_logs_to_a_local_mlflow_store(cohort, tmp_path):
    import mlflow  # the 'tracking' extra, part of the test install

    bundle_run(["train.json"], *train_overrides(cohort, tmp_path), "--tracking", "mlflow", "--experiment_name", "neoseg_test")
    store = tmp_path / "run" / "mlruns.db"
    assert store.is_file()
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("neoseg_test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert {"train_loss", "val_mean_dice", "val_tumour_dice"} <= set(run.data.metrics)
    assert run.data.params["max_epochs"] == "1"


def test_multi_gpu_config_runs_with_two_cpu_processes(cohort, tmp_path):
    overrides = train_overrides(cohort, tmp_path)
    overrides[overrides.index("--epochs") + 1] = "3"
    # a budget spent in the first epoch: rank 0's clock must stop both ranks there, or DDP hangs
    result = bundle_run(["train.json", "multi_gpu_train.json"], *overrides, "--time_limit", "0.001",
                        launcher=TWO_CPU_PROCESSES)
    assert "time limit of 0 s reached after epoch 1" in result.stdout + result.stderr
    # a trainer stopped at an epoch's end logs no "Complete"; each rank's validation run after it does
    check_two_rank_run(result, tmp_path / "run", epoch=1, engine="SupervisedEvaluator")
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state)  # saved unwrapped: inference loads it as is


# ------------------------------------------------------------------ inference and evaluation


def test_inference_with_no_arguments_on_the_shipped_sample(tmp_path):
    bundle_run(["inference.json"], "--output_dir", str(tmp_path))
    raw = json.loads((tmp_path / "patches.json").read_text())["testing"]
    assert raw[0]["patch"] == "case_000/case_000_tlcr.nii.gz"  # relative to the datalist: the folder moves whole
    entries = load_patch_datalist(tmp_path / "patches.json")
    assert [e["case_id"] for e in entries] == ["case_000", "case_001"]
    for entry in entries:
        assert entry["tumour_found"] is True
        seg, image = nib.load(entry["pred"]), nib.load(entry["image"])
        assert seg.shape == image.shape and np.allclose(seg.affine, image.affine, atol=1e-4)
        assert set(np.unique(np.asarray(seg.dataobj))) == {0, 1, 2}
        assert nib.load(entry["patch"]).shape == (64, 64, 32, 2)
        masks = np.asarray(nib.load(entry["patch_mask"]).dataobj)
        assert masks[..., 1].any() and masks.dtype == np.uint8
        crop, patch = nib.load(entry["patch_image"]).get_fdata(), nib.load(entry["patch"]).get_fdata()
        assert crop.shape == (64, 64, 32) and (crop[masks[..., 0] == 0] > 0).any()  # unmasked
        np.testing.assert_allclose(patch[..., 0], crop * masks[..., 0], atol=1e-6)


def test_the_label_map_is_the_argmax_of_the_probabilities_resampled_to_an_anisotropic_input_grid(tmp_path):
    """NeoSeg's label map on the input grid is the argmax of its class probabilities resampled (linearly) there,
    not the network grid's argmax resampled by nearest neighbour, which loses a voxel's worth of boundary."""
    from monai.bundle import ConfigParser
    from monai.transforms import SpatialResample

    from neonet_ext.data.synthetic import generate_case

    config = SyntheticCohortConfig(shape=(150, 120, 20), inplane_spacing_mm=(1.1, 1.1), slice_spacing_mm=(6.0, 6.0))
    case = generate_case(0, 5, config)
    image = tmp_path / "images" / "aniso.nii.gz"
    image.parent.mkdir()
    nib.save(nib.Nifti1Image(case.image, case.affine), image)
    bundle_run(["inference.json"], "--dataset_dir", str(image.parent), "--output_dir", str(tmp_path / "out"),
               "--refine_tumour", "False")  # the inversion alone; the refiner is tested in test_refinement.py
    seg = np.asarray(nib.load(tmp_path / "out" / "aniso" / "aniso_seg.nii.gz").dataobj)

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser.update({"bundle_root": str(BUNDLE), "device": "$torch.device('cpu')"})
    network = parser.get_parsed_content("network")
    network.load_state_dict(torch.load(BUNDLE / "models" / "model.pt", map_location="cpu", weights_only=True))
    data = parser.get_parsed_content("preprocessing")({"image": str(image)})
    with torch.no_grad():
        probabilities = torch.softmax(parser.get_parsed_content("inferer")(data["image"][None], network.eval())[0], 0)
    target = {"dst_affine": torch.as_tensor(case.affine, dtype=torch.float64), "spatial_size": case.image.shape}
    on_input = SpatialResample(mode="bilinear", padding_mode="zeros")(probabilities, **target).argmax(0).numpy()
    nearest = SpatialResample(mode="nearest", padding_mode="zeros")(
        probabilities.argmax(0, keepdim=True).float(), **target)[0].numpy()
    assert seg.shape == on_input.shape and (seg == 2).any()
    agreement, old_agreement = (seg == on_input).mean(), (seg == nearest).mean()
    assert agreement > 0.9995 and old_agreement < agreement  # the old path differs at the boundaries


def test_patch_datalist_keeps_input_paths_readable_from_its_own_folder(cohort, tmp_path):
    # a datalist given by a path relative to the working directory, as the demo scripts do
    relative = os.path.relpath(cohort / "dataset.json", REPO)
    out = tmp_path / "out"
    bundle_run(["inference.json"], "--datalist_file", relative, "--datalist_key", "training", "--output_dir", str(out),
               "--patch_size", "[32,32,16]")
    entries = load_patch_datalist(out / "patches.json")
    assert len(entries) == 4
    for entry in entries:  # the source image and label, resolved from the datalist's folder, exist
        assert Path(entry["image"]).is_file() and Path(entry["label"]).is_file()


def test_inference_skips_bad_cases_and_fails_at_the_end(cohort, trained, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(cohort / "imagesTr" / "case_000.nii.gz", inputs / "good.nii.gz")
    (inputs / "truncated.nii.gz").write_bytes((cohort / "imagesTr" / "case_001.nii.gz").read_bytes()[:3000])
    nan_image = np.asarray(nib.load(cohort / "imagesTr" / "case_002.nii.gz").dataobj).astype(np.float32)
    nan_image[10, 10, 10] = np.nan
    nib.save(nib.Nifti1Image(nan_image, np.eye(4)), inputs / "nan.nii.gz")
    series = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "98892001" / "CT5N"
    shutil.copytree(series, inputs / "ct_series")
    shutil.copytree(series.parents[1] / "98892003" / "MR2", inputs / "three_series")
    # an all-zero network predicts background everywhere: no tumour is found
    zero = {k: torch.zeros_like(v) for k, v in torch.load(trained, map_location="cpu", weights_only=True).items()}
    torch.save(zero, tmp_path / "zero.pt")
    out = tmp_path / "out"
    result = bundle_run(
        ["inference.json"], "--dataset_dir", str(inputs), "--output_dir", str(out),
        "--checkpoint", str(tmp_path / "zero.pt"), "--patch_size", "[32,32,16]", check=False,
    )
    assert result.returncode != 0
    assert "3 of 5 cases failed" in result.stderr
    assert f"{inputs / 'truncated.nii.gz'}:" in result.stderr and f"{inputs / 'nan.nii.gz'}: non-finite" in result.stderr
    assert f"{inputs / 'three_series'}: 3 image series in one folder" in result.stderr
    rows = {r["case"]: r for r in csv.DictReader(io.StringIO((out / "cases.csv").read_text()))}
    ct_uid = pydicom.dcmread(next(series.iterdir()), stop_before_pixels=True).SeriesInstanceUID
    assert rows["ct_series"]["series_uid"] == ct_uid and rows["ct_series"]["error"] == ""
    assert rows["ct_series"]["input_warnings"] == "only 5 slices: the liver may not fit in the volume"
    assert "3 image series" in rows["three_series"]["error"] and rows["three_series"]["liver_volume_ml"] == ""
    entries = {e["case_id"]: e for e in load_patch_datalist(out / "patches.json")}
    assert sorted(entries) == ["ct_series", "good"]
    for entry in entries.values():
        assert entry["tumour_found"] is False
        assert not np.asarray(nib.load(entry["patch"]).dataobj).any()
    seg = nib.load(entries["ct_series"]["pred"])
    assert seg.shape == (16, 16, 5) and not np.asarray(seg.dataobj).any()
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".")]
    assert not leftovers and not (out / "nan").exists() and not (out / "truncated").exists()
    assert not (out / "three_series").exists()


def test_rerun_keeps_the_cases_done_and_outputs_are_named_after_the_case(cohort, trained, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(cohort / "imagesTr" / "case_000.nii.gz", inputs / "UPPER.NII.GZ")
    shutil.copy(cohort / "imagesTr" / "case_001.nii.gz", inputs / "lower.nii.gz")
    out = tmp_path / "out"
    args = ["--dataset_dir", str(inputs), "--output_dir", str(out), "--checkpoint", str(trained), "--patch_size", "[32,32,16]"]
    bundle_run(["inference.json"], *args)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["UPPER", "lower"]
    assert (out / "UPPER" / "UPPER_seg.nii.gz").is_file()
    rows = {r["case"]: r for r in csv.DictReader(io.StringIO((out / "cases.csv").read_text()))}
    labels = np.asarray(nib.load(out / "lower" / "lower_seg.nii.gz").dataobj)
    voxel_ml = float(np.prod(nib.load(inputs / "lower.nii.gz").header.get_zooms()[:3])) / 1000
    assert float(rows["lower"]["liver_volume_ml"]) == pytest.approx((labels > 0).sum() * voxel_ml, rel=1e-4)

    shutil.copy(cohort / "imagesTr" / "case_002.nii.gz", inputs / "lower.nii.gz")  # a changed input
    rerun = bundle_run(["inference.json"], *args)
    assert "[1/2] UPPER: done by an earlier run with the same input and weights; kept" in rerun.stdout
    assert "[2/2] lower: done in" in rerun.stdout
    other_grid = bundle_run(["inference.json"], *args, "--spacing", "[2.5, 2.5, 3.0]")
    assert "kept" not in other_grid.stdout.split("cases written")[0]


def test_evaluate_saves_per_case_metrics(cohort, trained, tmp_path):
    result = bundle_run(
        ["train.json", "evaluate.json"], "--dataset_dir", str(cohort), "--output_dir", str(tmp_path),
        "--checkpoint", str(trained), "--patch_size", "[32,32,16]", "--num_workers", "0",
    )
    assert "val_tumour_hd95_mm" in result.stdout + result.stderr
    means = dict(line.split(",") for line in (tmp_path / "metrics.csv").read_text().splitlines())
    assert set(means) == {"val_mean_dice", "val_liver_dice", "val_tumour_dice", "val_liver_hd95_mm", "val_tumour_hd95_mm",
                          "val_tumour_detection"}
    detected = (tmp_path / "val_tumour_detection_raw.csv").read_text().splitlines()
    assert len(detected) == 1 + 4 and float(means["val_tumour_detection"]) == pytest.approx(
        np.mean([float(line.split(",")[1]) for line in detected[1:]]))
    per_case = (tmp_path / "val_tumour_dice_raw.csv").read_text().splitlines()
    assert len(per_case) == 1 + 4 and all(os.fspath(cohort) in line for line in per_case[1:])


def test_the_tumour_refiner_is_trained_from_saved_probabilities_and_refines_the_label_map(cohort, tmp_path):
    """refiner_data.json saves NeoSeg's probabilities on each input grid, train_refiner.json trains the refiner on
    them, and inference.json with --refine_tumour uses it: the label map changes, and only around the tumour."""
    from neonet_ext.networks import tumour_refiner

    probabilities = tmp_path / "probabilities"
    bundle_run(["inference.json", "refiner_data.json"], "--datalist_file", str(cohort / "dataset.json"),
               "--datalist_key", "training", "--dataset_dir", str(cohort), "--output_dir", str(probabilities))
    plain = tmp_path / "plain"
    bundle_run(["inference.json"], "--dataset_dir", str(cohort / "imagesTr"), "--output_dir", str(plain),
               "--refine_tumour", "False")
    entries = json.loads((probabilities / "probabilities.json").read_text())["testing"]
    assert [Path(e["label"]).name for e in entries] == [f"case_{i:03d}.nii.gz" for i in range(4)]
    for entry in entries:
        saved = nib.load(probabilities / entry["pred"])
        image = nib.load(entry["image"])
        assert saved.shape == (*image.shape, 3) and saved.get_data_dtype() == np.uint8
        assert np.allclose(saved.affine, image.affine, atol=1e-4)
        stored = np.asarray(saved.dataobj).astype(int)
        seg = np.asarray(nib.load(plain / entry["case_id"] / f"{entry['case_id']}_seg.nii.gz").dataobj)
        assert (stored.argmax(-1) == seg).mean() > 0.999  # the label map's probabilities, up to uint8 rounding

    models = tmp_path / "models"
    bundle_run(["train.json", "train_refiner.json"], "--probabilities_dir", str(probabilities),
               "--output_dir", str(tmp_path / "run"), "--ckpt_dir", str(models), "--epochs", "1", "--val_interval", "1",
               "--val_fraction", "0.5", "--patch_size", "[32,32,16]", "--num_workers", "0", "--cache_rate", "0")
    state = torch.load(models / "refiner.pt", map_location="cpu", weights_only=True)
    tumour_refiner().load_state_dict(state)

    refined = tmp_path / "refined"
    bundle_run(["inference.json"], "--dataset_dir", str(cohort / "imagesTr"), "--output_dir", str(refined),
               "--refine_tumour", "True", "--refiner_checkpoint", str(models / "refiner.pt"))
    changed = 0
    for entry in entries:
        case = entry["case_id"]
        before = np.asarray(nib.load(plain / case / f"{case}_seg.nii.gz").dataobj)
        after = nib.load(refined / case / f"{case}_seg.nii.gz")
        assert after.shape == before.shape
        after = np.asarray(after.dataobj)
        if not (before == 2).any():
            assert np.array_equal(after, before)
            continue
        box = tuple(slice(max(int(i.min()) - 12, 0), int(i.max()) + 13) for i in np.nonzero(before == 2))
        outside = np.ones(before.shape, bool)
        outside[box] = False
        assert np.array_equal(after[outside], before[outside])
        changed += int((after != before).sum())
    assert changed > 0


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"neoseg_{name}", BUNDLE / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_network_sizes_builds_each_override_network():
    script = _script("network_sizes")
    parameters, patch = script.network_size(BUNDLE / "configs" / "networks" / "swinunetr.json")
    from monai.networks.nets import SwinUNETR

    swin = SwinUNETR(spatial_dims=3, in_channels=1, out_channels=3, feature_size=24)
    assert parameters == sum(p.numel() for p in swin.parameters()) and patch == [96, 96, 64]


def test_training_targets_are_class_fractions_on_the_network_grid():
    """train.json trains on each class's share of a network voxel (the one-hot label resampled linearly),
    not on the nearest label: boundary voxels get fractions, and the fractions sum to one."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser["bundle_root"] = str(BUNDLE)
    case = {"image": str(BUNDLE / "sample_data" / "imagesTr" / "case_000.nii.gz"),
            "label": str(BUNDLE / "sample_data" / "labelsTr" / "case_000.nii.gz")}
    targets = parser.get_parsed_content("train#preprocessing").set_random_state(seed=0)(case)
    labels = parser.get_parsed_content("validate#preprocessing")(case)["label"]
    assert labels.shape[0] == 1 and labels.dtype == torch.uint8  # validation scores the label map
    patches_with_tumour = 0
    for patch in targets:
        target = patch["label"]
        assert target.shape == (3, *patch["image"].shape[1:]) and target.dtype == torch.float32
        torch.testing.assert_close(target.sum(0), torch.ones_like(target[0]), atol=2e-3, rtol=0)
        if (target[2] >= 0.95).any():  # a crop centred on background may hold no tumour
            patches_with_tumour += 1
            partial = (target[2] > 0.05) & (target[2] < 0.95)
            assert partial.sum() > 0.2 * (target[2] >= 0.95).sum()  # the tumour's edge is fractional
    assert patches_with_tumour > 0


def test_grid_ceiling_scores_fractions_above_nearest_labels(tmp_path, capsys, monkeypatch):
    labels = tmp_path / "labelsTr"
    labels.mkdir()
    x, y, z = np.indices((60, 60, 30))
    label = np.zeros((60, 60, 30), np.uint8)
    label[(x - 30) ** 2 + (y - 30) ** 2 + ((z - 15) * 2) ** 2 < 24**2] = 1
    label[(x - 33) ** 2 + (y - 28) ** 2 + ((z - 15) * 2) ** 2 < 5**2] = 2  # a small tumour: 4 mm across
    nib.save(nib.Nifti1Image(label, np.diag([0.9, 0.9, 1.8, 1.0])), labels / "case_000.nii.gz")
    monkeypatch.setattr("sys.argv", ["grid_ceiling.py", "--dataset_dir", str(tmp_path)])
    _script("grid_ceiling").main()
    rows = {line.split("|")[1].strip(): [float(v) for v in line.split("|")[2:5]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "Dice" not in line and "---" not in line}
    assert set(rows) == {"nearest labels", "class fractions", "nearest, then nearest"}
    assert rows["class fractions"][1] > rows["nearest labels"][1] + 0.02  # tumour Dice
    assert rows["class fractions"][0] > 0.99 and all(0 < v[1] < 1 for v in rows.values())


def test_tumour_components_prints_the_smallest_primary_and_satellite(tmp_path, capsys, monkeypatch):
    labels = tmp_path / "labelsTr"
    labels.mkdir()
    spacing = np.diag([2.0, 2.0, 2.5, 1.0])  # 10 mm3 a voxel
    for name, (primary, satellite) in {"case_000": (100, 3), "case_001": (60, 0)}.items():
        label = np.ones((30, 30, 10), np.uint8)
        label[2:2 + primary // 10, 2:12, 2] = 2  # a slab of primary voxels
        label[25:25 + satellite, 25, 8] = 2
        nib.save(nib.Nifti1Image(label, spacing), labels / f"{name}.nii.gz")
    monkeypatch.setattr("sys.argv", ["tumour_components.py", "--dataset_dir", str(tmp_path)])
    _script("tumour_components").main()
    printed = capsys.readouterr().out
    assert "2 with a tumour, 1 further components" in printed
    assert "largest component per case: smallest 0.600 ml" in printed
    assert "satellites): smallest 0.030 ml" in printed


def test_heldout_scoring_counts_a_missed_tumour_on_the_input_grid(tmp_path):
    script = _script("evaluate_heldout")
    affine = np.diag([0.8, 0.8, 5.0, 1.0])
    label = np.zeros((40, 40, 10), np.uint8)
    label[5:35, 5:35, 2:8], label[15:20, 15:20, 4:6] = 1, 2
    files = {}
    elsewhere = np.where(label == 2, 1, label).astype(np.uint8)
    elsewhere[28:30, 28:30, 3] = 2
    for name, data in (("truth", label), ("perfect", label), ("missed", np.where(label == 2, 1, label).astype(np.uint8)),
                       ("elsewhere", elsewhere)):
        files[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), files[name])
    perfect = script.score_case(files["perfect"], files["truth"])
    assert perfect["dice_liver"] == 1.0 and perfect["dice_tumour"] == 1.0 and perfect["hd95_tumour_mm"] == 0.0
    assert perfect["tumour_in_truth"] and perfect["tumour_found"] and perfect["tumour_hit"]
    off_target = script.score_case(files["elsewhere"], files["truth"])
    assert off_target["tumour_found"] and not off_target["tumour_hit"]
    missed = script.score_case(files["missed"], files["truth"])
    assert missed["tumour_in_truth"] and not missed["tumour_found"] and not missed["tumour_hit"]
    assert missed["dice_tumour"] == 0.0
    # the liver is the 30 x 30 x 6 block less the 5 x 5 x 2 tumour (5350 voxels); the prediction calls all 5400 liver
    assert missed["dice_liver"] == pytest.approx(2 * 5350 / (5350 + 5400))
    nib.save(nib.Nifti1Image(label, np.diag([1.0, 1.0, 5.0, 1.0])), tmp_path / "other_grid.nii.gz")
    with pytest.raises(ValueError, match="other_grid.nii.gz is not on its input's grid"):
        script.score_case(tmp_path / "other_grid.nii.gz", files["truth"])


def test_tumour_errors_splits_boundary_errors_by_tissue_and_refuses_another_cohort(tmp_path, capsys):
    script = _script("tumour_errors")
    truth = np.zeros((30, 30, 12), np.uint8)
    truth[5:25, 5:25, 2:10] = 1
    truth[10:16, 10:16, 4:8] = 2
    vein = np.zeros(truth.shape, bool)
    vein[16, 8:22, 4:8] = True  # a vein along one face of the tumour
    grown = truth.copy()
    grown[16, 10:16, 4:8] = 2  # one voxel too far, on the vein
    grown[10:16, 10, 4:8] = 1  # one face's outer layer missed
    grown[20, 20, 6] = 2  # a stray voxel away from the tumour, in the parenchyma
    errors = script.case_errors(grown, truth, {"portal_vein": vein, "liver": (truth == 1) & ~vein})
    assert errors["false_positive"] == 24 + 1 and errors["false_positive_touching"] == 24
    assert errors["false_positive_tissue"] == {"portal_vein": 24, "liver": 1}
    assert errors["false_negative"] == errors["false_negative_outer_layer"] == 24
    assert script.volume_bin(1.0) == "0-2 ml" and script.volume_bin(12.0) == "10-30 ml" and script.volume_bin(40) == ">= 30 ml"

    # the intensity oracle: exact on a clean edge; a dark halo in the liver fools the midpoint, not every threshold
    image = np.where(truth == 2, 0.4, np.where(truth == 1, 1.0, 0.1)).astype(np.float32)
    assert script.intensity_oracle(image, truth) == {"midpoint": 1.0, "best": 1.0}
    halo = ndimage.binary_dilation(truth == 2) & (truth == 1)  # the face neighbours
    image[halo] = 0.62
    oracle = script.intensity_oracle(image, truth)
    assert oracle["midpoint"] == pytest.approx(2 * 144 / (2 * 144 + halo.sum())) and oracle["best"] == 1.0
    noise = np.random.default_rng(0).uniform(0.2, 1.2, truth.shape).astype(np.float32)
    assert script.intensity_oracle(noise, truth)["best"] < 0.7
    assert np.isnan(script.intensity_oracle(image, truth * (truth == 1))["midpoint"])

    # a held-out folder as evaluate_heldout.py leaves it: a perfect label map for case 0 of a 2-case cohort
    from neonet_ext.data.synthetic import generate_case, scoring_cohort_config

    case = generate_case(0, 5, scoring_cohort_config(2))
    seg_dir = tmp_path / "seed_5" / "neoseg" / "case_000"
    seg_dir.mkdir(parents=True)
    nib.save(nib.Nifti1Image(case.label, case.affine), seg_dir / "case_000_seg.nii.gz")
    for folder in ("labelsTr", "imagesTr"):
        (tmp_path / "seed_5" / "cohort" / folder).mkdir(parents=True)
    for index in (0, 1):
        truth = generate_case(index, 5, scoring_cohort_config(2)).label
        nib.save(nib.Nifti1Image(truth, case.affine), tmp_path / "seed_5" / "cohort" / "labelsTr" / f"case_{index:03d}.nii.gz")
    with pytest.raises(SystemExit, match="imagesTr/case_000.nii.gz: missing"):
        script.main(["--out", str(tmp_path), "--seeds", "5", "--cases", "2"])
    nib.save(nib.Nifti1Image(case.image, case.affine), tmp_path / "seed_5" / "cohort" / "imagesTr" / "case_000.nii.gz")
    assert script.main(["--out", str(tmp_path), "--seeds", "5", "--cases", "2"]) == 0
    summary = json.loads((tmp_path / "tumour_errors.json").read_text())
    assert summary["n_cases"] == 1 and summary["false_positive"] == summary["false_negative"] == 0
    oracle = script.intensity_oracle(case.image, case.label)
    assert summary["found_tumours"] == summary["all_tumours"] == {
        "n": 1, "dice_tumour": 1.0, "oracle_midpoint": oracle["midpoint"], "oracle_best": oracle["best"]}
    assert 0.5 < oracle["midpoint"] <= oracle["best"] < 1.0
    assert summary["missing"] == [str(tmp_path / "seed_5" / "neoseg" / "case_001" / "case_001_seg.nii.gz")]
    assert list(summary["dice_tumour_by_volume"].values())[0]["dice_tumour"] == 1.0
    assert "1 label maps missing" in capsys.readouterr().out
    other_cohort = generate_case(0, 6, scoring_cohort_config(2)).label
    nib.save(nib.Nifti1Image(other_cohort, case.affine), tmp_path / "seed_5" / "cohort" / "labelsTr" / "case_000.nii.gz")
    with pytest.raises(SystemExit, match="not case 0 of the cohort"):
        script.main(["--out", str(tmp_path), "--seeds", "5", "--cases", "2"])
