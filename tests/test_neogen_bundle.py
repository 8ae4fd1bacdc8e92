"""The NeoGen bundle run for real with `python -m monai.bundle run`: three training stages and generation, tiny size."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from bundle_runs import TWO_CPU_PROCESSES, check_two_rank_run, parse_configs, run_bundle
from neonet_ext.data.patches import load_patch_datalist, patches_with_tumour
from neonet_ext.data.splits import split_cases

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "neogen"
CONFIGS = BUNDLE / "configs"
SCHEMA = Path(__file__).parent / "data" / "meta_schema_20240725.json"
TINY = [Path(__file__).parent / "data" / f"neogen_tiny_{stage}.json" for stage in ("autoencoder", "diffusion")]
STAGES = ["train_autoencoder.json", "train_diffusion.json", "train_controlnet.json"]


def bundle_run(configs: list[str | Path], *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_bundle(CONFIGS, configs, *overrides, check=check)


def train_stage(n: int, out: Path, *extra: str, schedulers: list[str] = (), multi_gpu: bool = False
                ) -> subprocess.CompletedProcess:
    """Stage n (1 autoencoder, 2 diffusion, 3 ControlNet) for one epoch on the shipped sample
    (with ``multi_gpu``, in two CPU processes)."""
    configs = [*STAGES[:n], *schedulers, *TINY[: min(n, 2)], *(["multi_gpu_train.json"] if multi_gpu else [])]
    return run_bundle(
        CONFIGS, configs, "--output_dir", str(out / f"run{n}"), "--ckpt_dir", str(out / "models"), "--epochs", "1",
        "--val_interval", "1", "--batch_size", "2", "--num_workers", "0", *extra,
        launcher=TWO_CPU_PROCESSES if multi_gpu else None,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The three stages trained in turn for one epoch each; returns the folder holding models/."""
    out = tmp_path_factory.mktemp("neogen")
    train_stage(1, out, "--adversarial_start_epoch", "1", "--tracking", "mlflow")  # GAN terms from epoch 1
    for stage in (2, 3):
        result = train_stage(stage, out, "--tracking", "mlflow")
        (out / f"run{stage}.log").write_text(result.stdout + result.stderr)
    return out


def generate(out: Path, models: Path, *extra: str, schedulers: list[str] = (), check: bool = True):
    return bundle_run(
        ["inference.json", *schedulers, *TINY], "--ckpt_dir", str(models), "--output_dir", str(out),
        "--num_inference_steps", "4", *extra, check=check,
    )


# ------------------------------------------------------------------ metadata and configs


def test_metadata_is_valid_offline():
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))  # raises when invalid
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert {"autoencoder_data_format", "diffusion_unet_data_format", "controlnet_data_format"} <= set(meta)


def test_inference_builds_the_networks_the_stages_train():
    """inference.json stands alone (a model-zoo bundle's inference config must), so it repeats the
    definitions the stages, layered as they train, hold; a change to one copy alone fails here."""
    inference, trained_defs = parse_configs(CONFIGS, ["inference.json"]), parse_configs(CONFIGS, STAGES)
    for key in ("autoencoder_def", "diffusion_unet_def", "controlnet_def", "noise_scheduler", "latent_channels", "roi_size",
                "num_classes"):
        assert inference[key] == trained_defs[key], key


def test_shipped_weights_load_on_cpu_and_fit_the_model_zoo():
    from monai.bundle import ConfigParser

    from neonet_ext.generative import load_diffusion_checkpoint

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser["device"] = "$torch.device('cpu')"
    models = BUNDLE / "models"
    for name, key in (("model_autoencoder.pt", "autoencoder"), ("model_controlnet.pt", "controlnet")):
        parser.get_parsed_content(key).load_state_dict(torch.load(models / name, map_location="cpu", weights_only=True))
    latent_scale = parser.get_parsed_content("latent_scale")
    load_diffusion_checkpoint(str(models / "model.pt"), parser.get_parsed_content("diffusion_unet"), latent_scale)
    assert float(latent_scale.value) != 1.0  # estimated on the training latents, not the default
    for name in ("model_autoencoder.pt", "model.pt", "model_controlnet.pt"):
        assert (models / name).stat().st_size < 25 * 2**20, name


def test_generation_with_no_arguments_uses_the_shipped_weights(tmp_path):
    """The default command on the shipped sample's masks; trained weights follow the masks (tumour darker than liver)."""
    bundle_run(["inference.json"], "--output_dir", str(tmp_path), "--num_samples", "2")
    entries = load_patch_datalist(tmp_path / "synthetic_patches.json")
    assert len(entries) == 2
    for entry in entries:
        image = nib.load(entry["patch_image"]).get_fdata()
        masks = np.asarray(nib.load(entry["patch_mask"]).dataobj).astype(bool)
        tumour, liver = masks[..., 1], masks[..., 0] & ~masks[..., 1]
        assert image[tumour].mean() < image[liver].mean() - 0.1


# ------------------------------------------------------------------ training and generation


def test_stages_write_their_weights_and_load_on_cpu(trained):
    models = trained / "models"
    assert sorted(p.name for p in models.iterdir()) == ["model.pt", "model_autoencoder.pt", "model_controlnet.pt"]
    diffusion = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert set(diffusion) == {"model", "latent_scale"} and float(diffusion["latent_scale"]["value"]) > 0
    controlnet = torch.load(models / "model_controlnet.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("controlnet_cond_embedding") for k in controlnet)
    assert list((trained / "run1" / "tensorboard").iterdir())


def test_diffusion_stages_encode_each_patch_once_and_share_the_latents(trained):
    """Stage 2 encodes the training patches (identity and slice mirror) and validation's once; stage 3 reuses all."""
    cases = patches_with_tumour(load_patch_datalist(BUNDLE / "sample_data" / "patches.json"))
    train_items, validation_items = map(len, split_cases(cases, 0.2, seed=0))
    stage2, stage3 = ((trained / f"run{n}.log").read_text() for n in (2, 3))
    assert f"{train_items} patches x 2 views, {2 * train_items} entries encoded" in stage2
    assert f"{train_items} patches x 2 views, 0 entries encoded" in stage3
    assert f"{validation_items} patches x 1 views, 0 entries encoded" in stage3
    entries = list((trained / "latent_cache").glob("*/*.pt"))
    assert len(entries) == 2 * train_items + validation_items


def test_stages_train_on_items_with_keys_they_do_not_use(trained, tmp_path):
    """A mixed DICOM/NIfTI datalist: series UIDs and descriptions on some items, None on others
    (default_collate refuses None, and a key of the batch's first item only). Each stage keeps the
    keys it reads."""
    items = load_patch_datalist(BUNDLE / "sample_data" / "patches.json")
    for i, item in enumerate(items):
        item["series_uid"] = None if i % 2 else f"1.2.826.0.1.{i}"
        if i % 4 == 0:
            item["series_description"] = "HBP 20 min"
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({"testing": items}))
    shutil.copytree(trained / "models", tmp_path / "models")  # stage 3 starts from stage 2's weights
    for stage in (1, 2, 3):
        result = train_stage(stage, tmp_path, "--datalist_file", str(mixed))
        assert "Epoch[1] Complete" in result.stdout + result.stderr, stage


def mlflow_runs(run_dir: Path) -> list:
    import mlflow  # the 'tracking' extra, part of the test install

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlruns.db'}")
    return client.search_runs([client.get_experiment_by_name("monai_experiment").experiment_id])


@pytest.mark.parametrize("stage, metrics", [(1, {"train_loss", "val_psnr", "val_l1"}), (2, {"train_loss", "val_mse"}),
                                            (3, {"train_loss", "val_mse"})])
def test_every_stage_logs_to_mlflow(trained, stage, metrics):
    (run,) = mlflow_runs(trained / f"run{stage}")
    assert metrics <= set(run.data.metrics)


@pytest.mark.parametrize("stage", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_multi_gpu_config_trains_each_stage_in_two_cpu_processes(trained, stage, tmp_path):
    shutil.copytree(trained / "models", tmp_path / "models")  # the earlier stages' weights
    # a validation case for each rank; GAN terms from epoch 1 so both networks of stage 1 run under DDP
    result = train_stage(stage, tmp_path, "--val_fraction", "0.3", "--adversarial_start_epoch", "1", "--tracking",
                         "mlflow", multi_gpu=True)
    check_two_rank_run(result, tmp_path / f"run{stage}")
    assert len(mlflow_runs(tmp_path / f"run{stage}")) == 1
    saved = {1: "model_autoencoder.pt", 2: "model.pt", 3: "model_controlnet.pt"}[stage]
    state = torch.load(tmp_path / "models" / saved, map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state.get("model", state))  # unwrapped: inference loads it


def test_autoencoder_training_resumes(trained, tmp_path):
    out = tmp_path / "resume"
    shutil.copytree(trained / "run1", out / "run1")
    result = train_stage(1, out, "--epochs", "2")
    log = result.stdout + result.stderr
    assert "Restored all variables from" in log and "Epoch[2] Complete" in log and "Epoch[1] Complete" not in log
    first, resumed = (torch.load(next((run / "checkpoints").glob(f"*epoch={epoch}.pt")), map_location="cpu", weights_only=True)
                      for run, epoch in ((trained / "run1", 1), (out / "run1", 2)))
    for name in ("g", "d"):  # both learning rates follow a cosine over --epochs, resumed from the saved step
        assert first[f"{name}_optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
        assert resumed[f"{name}_lr_scheduler"]["last_epoch"] == 2


def _check_started_from(stage: int, out: Path, weights: Path, key: str) -> None:
    """Stage ``stage`` run with ``--pretrained_checkpoint weights`` at learning rate 0 keeps ``weights[key]`` as they were."""
    result = train_stage(stage, out, "--pretrained_checkpoint", str(weights), "--learning_rate", "0")
    assert f"Started model from the weights in {weights}" in result.stdout + result.stderr
    expected = torch.load(weights, map_location="cpu", weights_only=True)[key]
    checkpoint = out / f"run{stage}" / "checkpoints" / "checkpoint_epoch=1.pt"
    trained_from = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for name, value in expected.items():  # learning rate 0: one epoch leaves the loaded weights as they were
        torch.testing.assert_close(trained_from[key][name], value, msg=name)


def test_autoencoder_training_can_start_from_another_trainings_checkpoint(trained, tmp_path):
    weights = trained / "run1" / "checkpoints" / "checkpoint_epoch=1.pt"  # networks, optimisers, trainer
    _check_started_from(1, tmp_path, weights, "autoencoder")


def test_diffusion_training_can_start_from_given_weights(trained, tmp_path):
    """``--pretrained_checkpoint`` loads into the stage's own network (here the diffusion UNet), not the autoencoder."""
    shutil.copytree(trained / "models", tmp_path / "models")
    _check_started_from(2, tmp_path, trained / "models" / "model.pt", "model")  # the UNet and its latent scale


def test_generation_writes_patches_and_a_datalist(trained, tmp_path):
    generate(tmp_path, trained / "models", "--num_samples", "3", "--class_index", "1")
    raw = json.loads((tmp_path / "synthetic_patches.json").read_text())["training"]
    assert raw[0]["patch"] == "synthetic_class1_0000/synthetic_class1_0000_tlcr.nii.gz"
    entries = load_patch_datalist(tmp_path / "synthetic_patches.json")
    sources = {e["case_id"]: e for e in load_patch_datalist(BUNDLE / "sample_data" / "patches.json")}
    assert len(entries) == 3
    for entry in entries:
        assert entry["synthetic"] is True and entry["pni"] == 1
        assert sources[entry["source_case"]]["pni"] == 1  # masks of the requested class
        patch = nib.load(entry["patch"]).get_fdata()
        masks = np.asarray(nib.load(entry["patch_mask"]).dataobj)
        image = nib.load(entry["patch_image"]).get_fdata()
        assert patch.shape == (64, 64, 32, 2) and masks.shape == (64, 64, 32, 2) and image.shape == (64, 64, 32)
        assert set(np.unique(masks)) <= {0, 1} and masks[..., 1].any()
        assert 0 <= image.min() and image.max() <= 1
        np.testing.assert_allclose(patch[..., 0], image * masks[..., 0], atol=1e-6)  # formed as TLCR forms it
        np.testing.assert_allclose(patch[..., 1], image * masks[..., 1], atol=1e-6)


def test_generation_is_seeded(trained, tmp_path):
    for run in ("a", "b"):
        generate(tmp_path / run, trained / "models", "--num_samples", "1", "--class_index", "0", "--seed", "7")
    images = [nib.load(tmp_path / r / "synthetic_class0_0000" / "synthetic_class0_0000_tlcr_image.nii.gz").get_fdata()
              for r in ("a", "b")]
    np.testing.assert_array_equal(images[0], images[1])


def sampler_of(*configs: str) -> object:
    """The sampler ``generate`` runs with ``configs`` layered between inference.json and the tiny sizes."""
    return parse_configs(CONFIGS, ["inference.json", *configs, *TINY], "--num_inference_steps", "4").get_parsed_content(
        "sampler")


def test_ddpm_sampling_override(trained, tmp_path):
    """schedulers/ddpm.json makes generation sample with DDPM (DDIM without it), at the steps asked."""
    from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

    generate(tmp_path, trained / "models", "--num_samples", "1", schedulers=["schedulers/ddpm.json"])
    assert len(load_patch_datalist(tmp_path / "synthetic_patches.json")) == 1
    sampler = sampler_of("schedulers/ddpm.json")
    assert type(sampler.scheduler) is DDPMScheduler and sampler.num_inference_steps == 4
    assert type(sampler_of().scheduler) is DDIMScheduler


def test_classifier_free_guidance_changes_the_sample(trained, tmp_path):
    for name, scale in (("plain", []), ("guided", ["--guidance_scale", "3.0"])):
        generate(tmp_path / name, trained / "models", "--num_samples", "1", "--augment_masks", "False", *scale)
    images = [nib.load(tmp_path / n / "synthetic_class1_0000" / "synthetic_class1_0000_tlcr_image.nii.gz").get_fdata()
              for n in ("plain", "guided")]
    assert not np.array_equal(images[0], images[1])


@pytest.mark.slow  # the scheduler override on stages 2-3 and sampling: 28 s, run by make test-slow
def test_rectified_flow_trains_and_samples(trained, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(trained / "models" / "model_autoencoder.pt", models)
    train_stage(2, tmp_path, schedulers=["schedulers/rflow.json"])
    train_stage(3, tmp_path, schedulers=["schedulers/rflow.json"])
    generate(tmp_path / "out", models, "--num_samples", "1", schedulers=["schedulers/rflow.json"])
    assert len(load_patch_datalist(tmp_path / "out" / "synthetic_patches.json")) == 1
    # what the runs above built: every scheduler of stages 2 and 3 and of generation is rectified flow
    # (DDPM without the override); latent_scale, estimated from the data when the run starts, is left out
    from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, RFlowScheduler

    from neonet_ext.generative import LatentScale

    for rflow, expected in ((["schedulers/rflow.json"], RFlowScheduler), ([], DDPMScheduler)):
        for n in (2, 3):
            parser = parse_configs(CONFIGS, [*STAGES[:n], *rflow, *TINY], "--ckpt_dir", str(models))
            parser["latent_scale"] = LatentScale()
            inferer = parser.get_parsed_content("diffusion_inferer")
            inferer = getattr(inferer, "inferer", inferer)  # stage 3's wraps MONAI's ControlNet inferer
            for scheduler in (parser.get_parsed_content("prepare_batch").scheduler, inferer.scheduler):
                assert type(scheduler) is expected, (n, rflow)
        assert type(sampler_of(*rflow).scheduler) is (RFlowScheduler if rflow else DDIMScheduler)


# ------------------------------------------------------------------ bad requests write nothing


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--class_index", "2"], "class 2 does not exist"),
        (["--num_samples", "0"], "num_samples must be a positive integer"),
    ],
)
def test_bad_requests_fail_clearly(trained, tmp_path, overrides, message):
    result = generate(tmp_path / "out", trained / "models", *overrides, check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_mask_files_and_bad_masks_fail_before_writing(trained, tmp_path):
    items = json.loads((BUNDLE / "sample_data" / "patches.json").read_text())["testing"]
    for item in items:
        item["patch_mask"] = str(BUNDLE / "sample_data" / item["patch_mask"])
    items[0]["patch_mask"] = str(tmp_path / "gone.nii.gz")
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"testing": items}))
    result = generate(tmp_path / "out", trained / "models", "--datalist_file", str(missing), "--masks_from", "all",
                      check=False)
    assert result.returncode != 0 and "gone.nii.gz" in result.stdout + result.stderr

    bad = np.zeros((64, 64, 32, 2), np.uint8)
    bad[20:30, 20:30, 10:20, :] = 3  # a label value, not a mask
    nib.save(nib.Nifti1Image(bad, np.eye(4)), tmp_path / "bad_mask.nii.gz")
    one = tmp_path / "bad.json"
    one.write_text(json.dumps({"testing": [{"case_id": "bad", "patch_mask": "bad_mask.nii.gz", "pni": 1}]}))
    result = generate(tmp_path / "out", trained / "models", "--datalist_file", str(one), "--augment_masks", "False",
                      check=False)
    assert result.returncode != 0 and "bad_mask.nii.gz: condition masks must hold only 0 and 1" in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ network checks and export


def tiny_networks(models: Path) -> tuple[dict, dict]:
    """The three trained networks built from inference.json at the tests' tiny size, and the metadata."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "inference.json"), *map(str, TINY)])
    parser["bundle_root"] = str(BUNDLE)
    nets = {name: parser.get_parsed_content(f"{name}_def").eval() for name in ("autoencoder", "diffusion_unet", "controlnet")}
    nets["autoencoder"].load_state_dict(torch.load(models / "model_autoencoder.pt", map_location="cpu", weights_only=True))
    nets["diffusion_unet"].load_state_dict(
        torch.load(models / "model.pt", map_location="cpu", weights_only=True)["model"])
    nets["controlnet"].load_state_dict(torch.load(models / "model_controlnet.pt", map_location="cpu", weights_only=True))
    return nets, json.loads((CONFIGS / "metadata.json").read_text())


def spec_shape(spec: dict) -> tuple[int, ...]:
    return (1, spec["num_channels"], *spec["spatial_shape"])


def test_each_network_matches_its_data_format_in_the_metadata(trained):
    from monai.bundle import verify_net_in_out

    nets, meta = tiny_networks(trained / "models")
    ae, unet, controlnet = nets["autoencoder"], nets["diffusion_unet"], nets["controlnet"]
    (ae_in,), (ae_out,) = meta["autoencoder_data_format"]["inputs"].values(), meta["autoencoder_data_format"]["outputs"].values()
    latent_spec = meta["diffusion_unet_data_format"]["inputs"]["latent"]
    with torch.no_grad():
        image = torch.rand(spec_shape(ae_in))
        latent = ae.encode_stage_2_inputs(image)
        assert latent.shape == spec_shape(latent_spec)
        assert ae.decode_stage_2_outputs(latent).shape == spec_shape(ae_out) == ae.reconstruct(image).shape
        t, context = torch.tensor([10]), torch.tensor([[[0.0, 1.0]]])
        masks = (torch.rand(spec_shape(meta["controlnet_data_format"]["inputs"]["masks"])) > 0.5).float()
        down, mid = controlnet(latent, t, controlnet_cond=masks, context=context)
        noise = unet(latent, t, context=context, down_block_additional_residuals=down, mid_block_additional_residual=mid)
        assert noise.shape == spec_shape(meta["controlnet_data_format"]["outputs"]["pred"])
    # MONAI's own check for the one network whose forward returns a single tensor; it reads the
    # input called "image" of network_data_format, so the UNet's format is put there under that name
    unet_format = {"inputs": {"image": latent_spec}, "outputs": meta["diffusion_unet_data_format"]["outputs"]}
    verify_net_in_out(net_id="diffusion_unet_def", meta_file=str(CONFIGS / "metadata.json"),
                      config_file=[str(CONFIGS / "inference.json"), *map(str, TINY)], device="cpu",
                      extra_forward_args={"timesteps": t, "context": context},
                      **{"_meta_#network_data_format": unet_format})


@pytest.mark.slow
def test_networks_export_to_torchscript_by_tracing(trained, tmp_path):
    """MONAI's generative networks do not script (variable arguments); they trace. The autoencoder goes
    through `monai.bundle ckpt_export --use_trace`, the UNet and ControlNet (three inputs) through
    torch.jit.trace, each checked against the eager network."""
    nets, meta = tiny_networks(trained / "models")
    configs = "[" + ",".join(f"'{c}'" for c in [CONFIGS / "inference.json", *TINY]) + "]"
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "ckpt_export", "autoencoder_def", "--use_trace", "True",
         "--input_shape", "[1, 1, 64, 64, 32]", "--filepath", str(tmp_path / "autoencoder.ts"), "--ckpt_file",
         str(trained / "models" / "model_autoencoder.pt"), "--meta_file", str(CONFIGS / "metadata.json"),
         "--config_file", configs, "--bundle_root", str(BUNDLE)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    image = torch.rand(1, 1, 64, 64, 32)
    with torch.no_grad():
        torch.manual_seed(0)
        recon = torch.jit.load(tmp_path / "autoencoder.ts", map_location="cpu")(image)[0]
        torch.manual_seed(0)  # the forward pass samples the latent: same seed, same sample
        torch.testing.assert_close(recon, nets["autoencoder"](image)[0], rtol=1e-4, atol=1e-5)

        latent_channels = nets["autoencoder"].latent_channels  # one latent voxel per 2x2x2 block of the crop
        latent, t, context = torch.rand(1, latent_channels, 32, 32, 16), torch.tensor([10]), torch.tensor([[[0.0, 1.0]]])
        unet = torch.jit.trace(nets["diffusion_unet"], (latent, t, context))
        torch.testing.assert_close(unet(latent, t, context), nets["diffusion_unet"](latent, t, context=context))
        masks = (torch.rand(1, 2, 64, 64, 32) > 0.5).float()
        inputs = {"x": latent, "timesteps": t, "controlnet_cond": masks, "context": context}
        controlnet = torch.jit.trace(nets["controlnet"], example_kwarg_inputs=inputs)
        down, mid = controlnet(**inputs)
        expected_down, expected_mid = nets["controlnet"](**inputs)
        torch.testing.assert_close(list(down), list(expected_down))
        torch.testing.assert_close(mid, expected_mid)


@pytest.mark.slow
def test_cpu_autoencoder_script_fine_tunes_its_first_phase_on_whole_crops(tmp_path):
    """scripts/train_autoencoder_cpu.sh: phase 2 starts from phase 1's last weights and writes the bundle's file."""
    tiny = ("--autoencoder_def#block_size 2 --autoencoder_def#channels [8] --autoencoder_def#latent_channels 2 "
            "--autoencoder_def#norm_num_groups 4")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PHASE_EPOCHS": "1 1", "PHASE_UPDATES": "2 1", "AUTOENCODER_ARGS": tiny, "AMP": "False"}
    result = subprocess.run(["bash", str(BUNDLE / "scripts" / "train_autoencoder_cpu.sh"),
                             str(BUNDLE / "sample_data" / "patches.json"), str(tmp_path)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    phase1 = tmp_path / "phase1" / "checkpoints" / "checkpoint_epoch=1.pt"
    assert f"Started model from the weights in {phase1}" in output
    from neonet_ext.networks import neogen_autoencoder

    autoencoder = neogen_autoencoder(block_size=2, channels=(8,), latent_channels=2, norm_num_groups=4)
    autoencoder.load_state_dict(torch.load(tmp_path / "models" / "model_autoencoder.pt", map_location="cpu", weights_only=True))
