"""The NeoCls bundle's training run for real with `python -m monai.bundle run`, at tiny size."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.transforms import LoadImage
from sklearn.metrics import roc_auc_score

from bundle_runs import TWO_CPU_PROCESSES, check_two_rank_run, parse_configs, run_bundle
from neonet_ext.data.patches import load_patch_datalist, patches_with_tumour
from neonet_ext.data.splits import split_cases
from neonet_ext.networks import neogen_autoencoder

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "neocls"
CONFIGS = BUNDLE / "configs"
SCHEMA = Path(__file__).parent / "data" / "meta_schema_20240725.json"
TINY = Path(__file__).parent / "data" / "neocls_tiny.json"


def bundle_run(configs: list[str | Path], *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_bundle(CONFIGS, configs, *overrides, check=check)


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory) -> Path:
    """A NeoGen-shaped autoencoder checkpoint at the tiny override's widths (weights random)."""
    overrides = json.loads(TINY.read_text())
    torch.manual_seed(0)
    net = neogen_autoencoder(channels=overrides["autoencoder_def#channels"],
                             norm_num_groups=overrides["autoencoder_def#norm_num_groups"])
    path = tmp_path_factory.mktemp("neocls") / "model_autoencoder.pt"
    torch.save(net.state_dict(), path)
    return path


def train_args(out: Path, autoencoder: Path, *extra: str, configs: list[str | Path] = ()) -> tuple[list, list[str]]:
    """The configs and overrides of ``train``."""
    return ["train.json", TINY, *configs], [
        "--autoencoder_path", str(autoencoder), "--output_dir", str(out / "run"), "--ckpt_dir", str(out / "models"),
        "--epochs", "1", "--batch_size", "2", "--num_workers", "0", *extra,
    ]


def train(out: Path, autoencoder: Path, *extra: str, configs: list[str | Path] = ()) -> subprocess.CompletedProcess:
    layers, args = train_args(out, autoencoder, *extra, configs=configs)
    return bundle_run(layers, *args)


def saved_weights_fit_the_config(out: Path, autoencoder: Path, *extra: str, configs: list[str | Path] = ()) -> None:
    """Assert that the weights ``train`` saved in ``out`` have the parameter names and shapes of the
    network its configs and overrides build (so an override the run ignored cannot pass)."""
    layers, args = train_args(out, autoencoder, *extra, configs=configs)
    built = parse_configs(CONFIGS, layers, *args).get_parsed_content("network_def")
    saved = torch.load(out / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in built.state_dict().items()}


def test_metadata_is_valid_offline():
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))  # raises when invalid


def test_pattennet_uses_the_autoencoder_neogen_trains():
    """Every config builds the autoencoder from its one definition, with no widths of its own."""
    one_source = {"_target_": "neonet_ext.networks.neogen_autoencoder"}
    neogen = REPO / "bundles" / "neogen" / "configs"
    for config in (CONFIGS / "train.json", CONFIGS / "inference.json", neogen / "train_autoencoder.json",
                   neogen / "inference.json"):
        assert json.loads(config.read_text())["autoencoder_def"] == one_source, config


@pytest.mark.parametrize("posterior_sampling_prob, pooling, keys", [
    (0.5, "avg", {"latent_mu", "latent_sigma", "label", "case_id"}),
    (0.0, "avg", {"latent_mu", "label", "case_id"}),
    (0.0, "regions", {"latent_mu", "latent_regions", "label", "case_id"}),
    (0.0, "attention", {"latent_mu", "latent_regions", "label", "case_id"}),
])
def test_latent_inputs_keep_sigma_and_regions_only_when_needed(posterior_sampling_prob, pooling, keys):
    """Sigma is loaded (and kept) only when a draw needs it, the region fractions only for region
    pooling (and then the cache must hold them); every other key must be there."""
    parser = parse_configs(CONFIGS, ["train.json"], "--posterior_sampling_prob", str(posterior_sampling_prob),
                           "--network_def#pooling", pooling, "--autoencoder_path", "None")
    load, _, select = parser.get_parsed_content("latent_inputs#load")
    assert load.with_sigma == (posterior_sampling_prob > 0)
    assert load.with_regions == parser.get_parsed_content("latent_cache").require_regions == (pooling != "avg")
    item = {k: 0 for k in keys | {"latent", "pni"}}
    assert set(select(item)) == keys
    with pytest.raises(KeyError, match="case_id"):
        select({k: v for k, v in item.items() if k != "case_id"})


def imbalanced_real(tmp_path: Path) -> tuple[Path, list[dict]]:
    """The shipped sample plus four more PNI- items (copies of its negatives), so PNI+ is the minority."""
    real = patches_with_tumour(load_patch_datalist(BUNDLE / "sample_data" / "patches.json", required_keys=["patch", "pni"]))
    negatives = [item for item in real if item["pni"] == 0]
    real += [{**negatives[i % len(negatives)], "case_id": f"extra{i}"} for i in range(4)]
    path = tmp_path / "real.json"
    path.write_text(json.dumps({"testing": real}))
    return path, real


def test_pattennet_trains_on_real_and_synthetic_patches(autoencoder, tmp_path):
    real_file, real = imbalanced_real(tmp_path)
    train_split, _ = split_cases(real, 0.2, seed=0, stratify_by="pni")
    n_neg, n_pos = sum(i["pni"] == 0 for i in train_split), sum(i["pni"] == 1 for i in train_split)
    assert n_neg > n_pos
    sources = [item for item in train_split if item["pni"] == 1]
    synthetic = [{"case_id": f"syn{i}", "patch": sources[i % len(sources)]["patch"], "pni": 1, "synthetic": True,
                  "source_case": sources[i % len(sources)]["case_id"]} for i in range(n_neg - n_pos)]
    (tmp_path / "synthetic.json").write_text(json.dumps({"training": synthetic}))
    result = train(tmp_path, autoencoder, "--datalist_file", str(real_file), "--synthetic_datalist_file",
                   str(tmp_path / "synthetic.json"), "--synthetic_ratio", "1.0", "--tracking", "mlflow")
    log = result.stdout + result.stderr
    # r = 1 balances the classes: 2 x n_neg items, so ceil(2 n_neg / 2) iterations of batch 2
    assert f"Iter: {n_neg}/{n_neg}" in log
    assert "val_auc" in log and (tmp_path / "models" / "model.pt").is_file()
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("latent_encoder.") for k in state) and any(".attention." in k for k in state)
    assert (tmp_path / "run" / "mlruns.db").is_file() and list((tmp_path / "run" / "tensorboard").iterdir())
    # PattenNet trains on latents its frozen encoder made once: 8 views of each training patch, 1 of validation's
    n_train, n_val = 2 * n_neg, len(real) - len(train_split)
    assert f"{n_train} patches x 8 views" in log and f"{n_val} patches x 1 views" in log
    assert len(list((tmp_path / "run" / "latent_cache").glob("*/*.pt"))) > 0


def test_autoencoder_of_other_widths_is_named(tmp_path):
    ae = neogen_autoencoder(channels=[16, 16, 16], norm_num_groups=4)
    torch.save(ae.state_dict(), tmp_path / "wide.pt")
    result = bundle_run(["train.json", TINY], "--autoencoder_path", str(tmp_path / "wide.pt"), "--output_dir",
                        str(tmp_path / "run"), "--epochs", "1", check=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0 and f"NeoGen autoencoder weights {tmp_path / 'wide.pt'} do not fit the network" in log


def test_synthetic_patches_from_validation_masks_are_refused(autoencoder, tmp_path):
    real_file, real = imbalanced_real(tmp_path)
    _, val_split = split_cases(real, 0.2, seed=0, stratify_by="pni")
    positive = next(item for item in val_split if item["pni"] == 1)
    leak = [{"case_id": f"syn{i}", "patch": positive["patch"], "pni": 1, "synthetic": True,
             "source_case": positive["case_id"]} for i in range(10)]
    (tmp_path / "leak.json").write_text(json.dumps({"training": leak}))
    result = bundle_run(["train.json", TINY], "--autoencoder_path", str(autoencoder), "--output_dir",
                        str(tmp_path / "run"), "--datalist_file", str(real_file), "--synthetic_datalist_file",
                        str(tmp_path / "leak.json"), "--synthetic_ratio", "1.0", "--epochs", "1", check=False)
    assert result.returncode != 0 and "outside the training split" in result.stdout + result.stderr


def override_files(folder: str) -> list[str]:
    return sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.glob(f"{folder}/*.json"))


def overrides(folder: str, in_default_suite: set[str]) -> list:
    """Every override file under ``configs/folder``; those not named train only with the slow tests.

    ``test_every_override_builds_a_network_that_classifies_a_patch`` builds and runs each one's
    network in the default suite, so a slow run adds only the training loop the named ones cover.
    """
    return [pytest.param(name, marks=() if Path(name).stem in in_default_suite else pytest.mark.slow)
            for name in override_files(folder)]


@pytest.mark.parametrize("override", override_files("ablations") + override_files("networks"))
def test_every_override_builds_a_network_that_classifies_a_patch(override, autoencoder):
    from monai.bundle import ConfigParser

    from neonet_ext.transforms import TLCR_ROI_SIZE

    def network(*layers: Path) -> torch.nn.Module:
        parser = ConfigParser()
        parser.read_config([str(CONFIGS / "train.json"), str(TINY), *map(str, layers)])
        parser["autoencoder_path"] = str(autoencoder)
        return parser.get_parsed_content("network_def").eval()

    net = network(CONFIGS / override)
    with torch.no_grad():
        logits = net(torch.rand(2, 2, *TLCR_ROI_SIZE))
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    shapes = lambda m: sorted((k, tuple(v.shape)) for k, v in m.state_dict().items())  # noqa: E731
    assert shapes(net) != shapes(network()), f"{override} leaves train.json's PattenNet as it is"


@pytest.mark.parametrize("override", overrides("ablations", {"blocks_0", "channel_only"}))
def test_each_ablation_trains(override, autoencoder, tmp_path):
    """Each ablation trains, and saves the weights of the ablated PattenNet its override builds
    (``test_every_override_builds_a_network_that_classifies_a_patch``: not those of the full one)."""
    assert "val_auc" in (lambda r: r.stdout + r.stderr)(train(tmp_path, autoencoder, configs=[override]))
    saved_weights_fit_the_config(tmp_path, autoencoder, configs=[override])


@pytest.mark.parametrize("override", overrides("networks", {"densenet121", "efficientnet-b0"}))
def test_each_baseline_trains(override, autoencoder, tmp_path):
    result = train(tmp_path, autoencoder, configs=[override])
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("latent_encoder.") for k in state)  # no frozen autoencoder in a baseline
    assert "latent cache" not in result.stdout + result.stderr  # a baseline reads the patches themselves
    saved_weights_fit_the_config(tmp_path, autoencoder, configs=[override])


@pytest.mark.parametrize("pooling, vectors", [("regions", 5), ("attention", 3)])
def test_masked_pooling_trains_on_cached_latents_and_evaluates_from_patches(pooling, vectors, autoencoder, tmp_path):
    extra = ("--network_def#pooling", pooling, "--network_def#strides", "[1,2]")
    train(tmp_path, autoencoder, *extra)
    saved_weights_fit_the_config(tmp_path, autoencoder, *extra)
    saved = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert saved["head.1.weight"].shape[1] == vectors * json.loads(TINY.read_text())["network_def#features"] + 1
    entries = list((tmp_path / "run" / "latent_cache").rglob("*.pt"))
    assert entries and all("regions" in torch.load(e, weights_only=True) for e in entries)
    # evaluation reads the raw patches: the whole PattenNet finds the fractions itself
    bundle_run(["train.json", TINY, "evaluate.json"], "--autoencoder_path", str(autoencoder), *extra,
               "--output_dir", str(tmp_path / "eval"), "--checkpoint", str(tmp_path / "models" / "model.pt"))
    assert (tmp_path / "eval" / "metrics.json").is_file()


def attention_share_run(checkpoint: Path, out: Path, *extra: str) -> dict:
    subprocess.run([sys.executable, str(CONFIGS.parent / "scripts" / "attention_share.py"), "--patches",
                    str(BUNDLE / "sample_data" / "patches.json"), "--checkpoint", str(checkpoint), "--out", str(out),
                    "--config_file", str(CONFIGS / "inference.json"), str(TINY), "--", *extra], check=True, cwd=REPO)
    return json.loads((out / "summary.json").read_text())


def test_attention_share_script_scores_where_the_gates_look(autoencoder, tmp_path):
    extra = ("--network_def#pooling", "attention", "--network_def#strides", "[1,2]")
    train(tmp_path, autoencoder, *extra)
    summary = attention_share_run(tmp_path / "models" / "model.pt", tmp_path / "trained", *extra)
    rows = list(csv.DictReader((tmp_path / "trained" / "attention_share.csv").open()))
    assert summary["patches"] == len(rows) == 7  # the sample's patches with a tumour
    region = summary["tumour_rim_share_mean"]
    assert 0 < region < 1 and summary["attention_over_region_share"] != pytest.approx(1.0, abs=1e-3)
    # a last gate that is the same everywhere puts exactly the region's share of its mass there
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    last = max(int(k.split(".")[1]) for k in state if k.startswith("stages."))
    state[f"stages.{last}.attention.spatial_attention.conv.weight"].zero_()
    torch.save(state, tmp_path / "even_gate.pt")
    even = attention_share_run(tmp_path / "even_gate.pt", tmp_path / "even", *extra)
    assert even["last_gate_over_region_share"] == pytest.approx(1.0, abs=1e-6)
    assert even["tumour_rim_share_mean"] == pytest.approx(region)
    gate = torch.sigmoid(state[f"stages.{last}.attention.spatial_attention.conv.bias"]).item()
    for where in ("tumour", "liver_beyond_rim", "outside_liver"):
        assert even[f"last_gate_{where}_mean"] == pytest.approx(gate, abs=1e-5)


def test_training_resumes(autoencoder, tmp_path):
    train(tmp_path, autoencoder)
    result = train(tmp_path, autoencoder, "--epochs", "2")
    log = result.stdout + result.stderr
    assert "Restored all variables from" in log and "Epoch[2] Complete" in log and "Epoch[1] Complete" not in log


def test_evaluation_writes_probabilities_and_figures(autoencoder, tmp_path):
    train(tmp_path, autoencoder)
    result = bundle_run(["train.json", TINY, "evaluate.json"], "--ckpt_dir", str(tmp_path / "models"),
                        "--output_dir", str(tmp_path / "eval"), "--num_workers", "0")
    assert "ROC AUC" in result.stdout + result.stderr
    rows = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "case,pni_probability,pni" and len(rows) == 1 + 7  # the sample's 7 patches with a tumour
    # each probability is the trained network's PNI softmax on the case's patch
    network = parse_configs(CONFIGS, ["train.json", TINY, "evaluate.json"]).get_parsed_content("network_def").eval()
    network.load_state_dict(torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True))
    sample = load_patch_datalist(BUNDLE / "sample_data" / "patches.json", required_keys=["patch"])
    patches = {item["case_id"]: item["patch"] for item in sample}
    truth, scores = [], []
    for case, probability, pni in (r.split(",") for r in rows[1:]):
        patch = LoadImage(image_only=True, ensure_channel_first=True)(patches[case])
        with torch.no_grad():
            expected = torch.softmax(network(torch.as_tensor(patch, dtype=torch.float32)[None]), 1)[0, 1].item()
        assert float(probability) == pytest.approx(expected, abs=1e-4), case
        truth.append(int(pni))
        scores.append(float(probability))
    figures = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert figures["roc_auc"] == pytest.approx(roc_auc_score(truth, scores))
    assert figures["roc_auc_ci95_low"] <= figures["roc_auc"] <= figures["roc_auc_ci95_high"]
    assert figures["n_cases"] == 7 and figures["n_positive"] == 4
    assert (tmp_path / "eval" / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_multi_gpu_config_runs_with_two_cpu_processes(autoencoder, tmp_path):
    real_file, _ = imbalanced_real(tmp_path)  # enough cases that each rank gets validation data
    result = run_bundle(
        CONFIGS, ["train.json", TINY, "multi_gpu_train.json"], "--datalist_file", str(real_file), "--autoencoder_path",
        str(autoencoder), "--output_dir", str(tmp_path / "run"), "--ckpt_dir", str(tmp_path / "models"),
        "--epochs", "1", "--batch_size", "2", "--num_workers", "0", launcher=TWO_CPU_PROCESSES,
    )
    assert "val_auc" in result.stdout + result.stderr
    check_two_rank_run(result, tmp_path / "run")
    state = torch.load(tmp_path / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state) and any(k.startswith("latent_encoder.") for k in state)


@pytest.mark.slow
def test_training_size_script_compares_pattennet_with_the_sign_reader_per_size(autoencoder, tmp_path):
    import csv
    import sys

    result = subprocess.run(
        [sys.executable, str(CONFIGS.parent / "scripts" / "training_size.py"), "--out", str(tmp_path), "--sizes", "8",
         "10", "--heldout", "6", "--epochs", "1", "--override", str(TINY),
         "--", "--autoencoder_path", str(autoencoder), "--batch_size", "2", "--num_workers", "0",
         "--network_def#strides", "[1,2]"],  # a network change must reach the evaluation too
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["n_patients"]) for r in rows] == [8, 10]
    training_minutes = {r["n_patients"]: r["training_minutes"] for r in rows}
    for row in rows:
        assert float(row["training_minutes"]) >= 0
        assert int(row["n_heldout"]) == 6 and int(row["n_train"]) < int(row["n_patients"])
        auc, reader, oracle = float(row["pattennet_auc"]), float(row["sign_reader_auc"]), float(row["oracle_auc"])
        assert 0 <= auc <= 1 and 0 <= reader <= 1 and float(row["auc_over_oracle"]) == pytest.approx(auc / oracle)
    assert (tmp_path / "n10" / "eval" / "predictions.csv").is_file() and "| 10 (" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"

    # the same cohorts: does the latent keep the hand-made sign features, and can the head learn the signs
    result = subprocess.run(
        [sys.executable, str(CONFIGS.parent / "scripts" / "latent_readability.py"), "--out", str(tmp_path),
         "--train_cases", "10", "--heldout", "6", "--epochs", "2", "--views", "2", "--strides", "1", "2",
         "--features", "8", "8", "--override", str(TINY), "--", "--autoencoder_path", str(autoencoder)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with (tmp_path / "readability" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    volume = next(r for r in rows if r["name"] == "tumour_volume_ml")
    assert float(volume["spearman_patch"]) > 0.8  # the volume comes from the masks: the same on both
    assert float(volume["spearman_decoded"]) == pytest.approx(float(volume["spearman_patch"]))
    epochs = [r for r in rows if r["name"] == "predicted signs"]
    assert [int(r["epoch"]) for r in epochs] == [1, 2] and all(0 <= float(r["reader_auc"]) <= 1 for r in epochs)
    (regions,) = [r for r in rows if r["measure"] == "regions"]
    assert 0 <= float(regions["reader_auc"]) <= 1 and 0 <= float(regions["size_only_auc"]) <= 1
    text = (tmp_path / "readability" / "results.md").read_text()
    assert "Sign reader on the held-out true signs" in text and "Region means of the latent" in text

    # a held-out cohort added later: the trained runs are only scored on it
    trained = {n: (tmp_path / f"n{n}" / "train.log").stat().st_mtime for n in (8, 10)}
    result = subprocess.run(
        [sys.executable, str(CONFIGS.parent / "scripts" / "training_size.py"), "--out", str(tmp_path), "--sizes", "8",
         "10", "--heldout", "6", "6", "--heldout_seed", "2001", "2002", "--epochs", "1", "--override", str(TINY),
         "--", "--autoencoder_path", str(autoencoder), "--batch_size", "2", "--num_workers", "0",
         "--network_def#strides", "[1,2]"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert {n: (tmp_path / f"n{n}" / "train.log").stat().st_mtime for n in (8, 10)} == trained
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["n_patients"]), int(r["heldout_seed"]), int(r["n_heldout"])) for r in rows] == [
        (8, 2001, 6), (8, 2002, 6), (10, 2001, 6), (10, 2002, 6)]
    assert all(r["training_minutes"] == training_minutes[r["n_patients"]] for r in rows)  # the training's, not the scoring's
    assert (tmp_path / "n10" / "eval_2002" / "predictions.csv").is_file()


@pytest.mark.slow
def test_training_size_trains_on_neogen_patches_of_its_training_split_at_the_ratio(autoencoder, tmp_path):
    import csv
    import sys

    neogen_configs = REPO / "bundles" / "neogen" / "configs"
    neogen_tiny = [Path(__file__).parent / "data" / f"neogen_tiny_{stage}.json" for stage in ("autoencoder", "diffusion")]
    neogen = parse_configs(neogen_configs, ["inference.json", *neogen_tiny])
    models = tmp_path / "neogen_models"
    models.mkdir()
    torch.manual_seed(0)  # random weights: what is tested is which masks NeoGen is given and how many patches it makes
    torch.save(neogen.get_parsed_content("autoencoder_def").state_dict(), models / "model_autoencoder.pt")
    torch.save({"model": neogen.get_parsed_content("diffusion_unet_def").state_dict(),
                "latent_scale": neogen.get_parsed_content("latent_scale").state_dict()}, models / "model.pt")
    torch.save(neogen.get_parsed_content("controlnet_def").state_dict(), models / "model_controlnet.pt")

    command = [sys.executable, str(CONFIGS.parent / "scripts" / "training_size.py"), "--out", str(tmp_path), "--sizes", "10",
               "--heldout", "6", "--epochs", "1", "--override", str(TINY), "--synthetic_ratio", "1.0",
               "--neogen_models", str(models), "--neogen_override", *map(str, neogen_tiny),
               "--", "--autoencoder_path", str(autoencoder), "--batch_size", "2", "--num_workers", "0"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    train_split, _ = split_cases(patches_with_tumour(load_patch_datalist(tmp_path / "n10" / "patches.json",
                                                                         required_keys=["patch", "pni"])),
                                 0.2, seed=0, stratify_by="pni")
    positives = {item["case_id"] for item in train_split if item["pni"] == 1}
    negatives = len(train_split) - len(positives)
    synthetic = load_patch_datalist(tmp_path / "n10" / "synthetic" / "synthetic_patches.json", required_keys=["patch", "pni"])
    assert len(synthetic) == negatives - len(positives) > 0  # r = 1 balances the classes
    assert all(item["pni"] == 1 and item["synthetic"] for item in synthetic)
    assert {item["source_case"] for item in synthetic} <= positives  # only the training split's masks
    assert f"{2 * negatives} patches x 8 views" in (tmp_path / "n10" / "train.log").read_text()  # they were trained on
    with (tmp_path / "results.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["synthetic_ratio"]) == 1.0 and 0 <= float(row["pattennet_auc"]) <= 1
