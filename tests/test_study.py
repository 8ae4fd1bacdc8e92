"""The study runner end to end at the tiny profile: every stage for real, killed halfway and continued."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neonet_ext.networks import NEOGEN_AUTOENCODER
from neonet_ext.study import Cell, Study, load_profile
from neonet_ext.study.scheduler import run_tasks

REPO = Path(__file__).resolve().parents[1]


def study_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "neonet_ext.study", "--profile", "tiny", "--patches", "ground_truth", "--out", str(out),
            *extra]


def done_cells(out: Path) -> list[Path]:
    return sorted((out / "cells").glob("*/.done")) if (out / "cells").is_dir() else []


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, str]:
    """The tiny study, killed (SIGKILL, whole process group) once two cells are done, then run to the end.

    Returns the folder and the second run's output.
    """
    out = tmp_path_factory.mktemp("study")
    first = subprocess.Popen(study_command(out), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.time() + 480
    while len(done_cells(out)) < 2 and first.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_with = {p.parent.name: p.stat().st_mtime_ns for p in done_cells(out)}
    assert 2 <= len(killed_with) < 10, "the first run should have been killed halfway"
    second = subprocess.run(study_command(out), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for name, mtime in killed_with.items():  # finished cells were not trained again
        assert (out / "cells" / name / ".done").stat().st_mtime_ns == mtime, name
    return out, second.stdout


def test_a_killed_study_continues_without_retraining_finished_cells(study):
    out, log = study
    assert "resuming:" in log and "tasks were done before" in log
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10  # 2 folds x (2 models x 2 ratios + 1 ablation)
    assert all(not r["error"] for r in rows)
    from sklearn.metrics import roc_auc_score

    for r in rows:  # each fold AUC is the AUC of the cell's own held-out predictions
        cell = Cell(int(r["fold"]), r["model"], float(r["ratio"]), r["variant"])
        with (out / "cells" / cell.name / "predictions.csv").open() as f:
            scored = [(int(p["pni"]), float(p["pni_probability"])) for p in csv.DictReader(f)]
        assert float(r["auc"]) == pytest.approx(roc_auc_score(*zip(*scored)), abs=5e-5), cell.name  # 4 decimals
    assert {r["patch_source"] for r in rows} == {"ground_truth"} and {r["leaky_generator"] for r in rows} == {"False"}
    # the tiny cohort (16 patients, 6 PNI+) in 2 folds: each trains on 8 patients, 3 of them PNI+; ratio 1
    # balances the classes with 5 - 3 = 2 synthetic PNI+ patches, ratio 0 adds none. The counts are what
    # each cell's training loaded (its training_items.json)
    assert {(r["ratio"], r["n_train_real"], r["n_train_synthetic"]) for r in rows} == {("0.0", "8", "0"), ("1.0", "8", "2")}
    trained_on = json.loads((out / "cells" / "fold1-pattennet-channel_only-r1.00" / "training_items.json").read_text())
    assert sorted((i["pni"], bool(i.get("synthetic"))) for i in trained_on["training"]) == [
        (0, False)] * 5 + [(1, False)] * 3 + [(1, True)] * 2


def test_a_cell_reruns_by_hand_from_its_logged_command(study, tmp_path):
    """A cell's command.sh (also at the top of its log) is a plain `monai.bundle run` of config files and
    command-line overrides: run in a shell, it trains the cell again and scores the same held-out patients alike."""
    out, _ = study
    cell = out / "cells" / "fold0-densenet121-r1.00"
    command = (cell / "command.sh").read_text()
    assert "== the same run by hand: " + command.splitlines()[1] in (cell / "log.txt").read_text()
    assert "$" not in command and "networks/densenet121.json" in command and "configs/cell.json" in command
    (tmp_path / "command.sh").write_text(command.replace(str(cell), str(tmp_path / "rerun")))
    result = subprocess.run(["bash", str(tmp_path / "command.sh")], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]

    def predictions(folder: Path) -> dict[str, float]:
        with (folder / "predictions.csv").open() as f:
            return {r["case"]: float(r["pni_probability"]) for r in csv.DictReader(f)}

    again, first = predictions(tmp_path / "rerun"), predictions(cell)
    assert again.keys() == first.keys()
    assert list(again.values()) == pytest.approx(list(first.values()), abs=1e-4)


def test_each_fold_trains_its_own_generator_on_its_training_patients_only(study):
    out, _ = study
    for k in (0, 1):
        fold = out / "folds" / f"fold{k}"
        train = {i["case_id"] for i in json.loads((fold / "train.json").read_text())["testing"]}
        test = {i["case_id"] for i in json.loads((fold / "test.json").read_text())["testing"]}
        assert train and test and not train & test
        for stage in ("autoencoder", "diffusion", "controlnet"):
            assert (fold / "neogen" / stage / ".done").is_file()
        assert (fold / "neogen" / "models" / "model_autoencoder.pt").is_file()
        synthetic = json.loads((fold / "neogen" / "synthetic" / "synthetic_patches.json").read_text())["training"]
        assert synthetic and {s["source_case"] for s in synthetic} <= train  # masks of training patients only
    # every cell was scored on exactly its fold's held-out patients
    test0 = {i["case_id"] for i in json.loads((out / "folds" / "fold0" / "test.json").read_text())["testing"]}
    with (out / "cells" / "fold0-densenet121-r1.00" / "predictions.csv").open() as f:
        assert {r["case"] for r in csv.DictReader(f)} == test0


def test_the_report_and_the_mlflow_store(study):
    out, log = study
    for name in ("auc_table.md", "ablation_table.md", "tests.md", "tests.csv", "summary.md", "predictions.csv", "roc_curves.png"):
        assert (out / name).is_file(), name
    table = (out / "auc_table.md").read_text()
    assert "| PattenNet | 0." in table and "| DenseNet-121 | 0." in table and "*seed: PattenNet*" in table
    assert "channel attention only | 0." in (out / "ablation_table.md").read_text()
    summary = (out / "summary.md").read_text()
    assert "synthetic-data results" in summary and "ground-truth labels" in summary and "| verdict |" in summary
    assert re.search(r"reader of the exact imaging signs, fit on each fold's training cases, reaches [01]\.\d{3}", summary)
    from unittest import mock

    import mlflow

    with mock.patch.dict(os.environ):  # set_tracking_uri exports MLFLOW_TRACKING_URI to later tests' bundle runs
        mlflow.set_tracking_uri(f"sqlite:///{out / 'mlruns.db'}")
        runs = mlflow.search_runs(experiment_names=["neonet-study"])
        mlflow.set_tracking_uri("")
    cells = runs[runs["params.model"].notna()]
    assert set(cells["tags.mlflow.runName"]) >= {"fold0-pattennet-r0.00", "fold1-densenet121-r1.00"}
    finished = cells[cells["status"] == "FINISHED"]
    assert len(set(finished["tags.mlflow.runName"])) == 10
    assert finished["metrics.train_loss"].notna().all()
    # each run logged the AUC its cell's table row reports (one evaluation, after the last epoch)
    with (out / "results.csv").open() as f:
        auc = {Cell(int(r["fold"]), r["model"], float(r["ratio"]), r["variant"]).name: float(r["auc"])
               for r in csv.DictReader(f)}
    # every cell's scores beside its test patients' tumour volumes (the ground-truth patches carry them)
    with (out / "results.csv").open() as f:
        correlations = [r["size_correlation"] for r in csv.DictReader(f)]
    assert len(correlations) == 10 and all(-1 <= float(c) <= 1 for c in correlations), correlations
    for name, val_auc in zip(finished["tags.mlflow.runName"], finished["metrics.val_auc"]):
        assert val_auc == pytest.approx(auc[name], abs=5e-5), name  # results.csv has 4 decimals
    assert set(runs["tags.mlflow.runName"]) >= {"fold0-neogen-autoencoder", "fold1-neogen-controlnet"}


def test_a_finished_study_reruns_nothing_and_other_settings_are_refused(study):
    out, _ = study
    again = subprocess.run(study_command(out), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "tasks were done before, 0 to run" in again.stdout
    other = subprocess.run(study_command(out, "--shared-generator"), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "shared_generator" in other.stderr and "other settings" in other.stderr


def test_folds_only_writes_the_cohort_references_the_report_quotes(study):
    out, _ = study
    written_by_the_run = json.loads((out / "cohort_summary.json").read_text())
    result = subprocess.run(study_command(out, "--folds-only"), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    references = json.loads((out / "cohort_summary.json").read_text())
    assert f"sign reader (mean over the folds) AUC {references['sign_reader_auc']:.3f}" in result.stdout
    assert f"reaches {references['sign_reader_auc']:.3f}" in (out / "summary.md").read_text()
    assert len(references["sign_reader_fold_aucs"]) == len(references["folds"]) == load_profile("tiny").folds
    # the tumour-size reader needs no synthetic latents: the ground-truth patches carry their tumour volumes
    assert f"tumour-size reader (mean over the folds) AUC {references['size_reader_auc']:.3f}" in result.stdout
    assert len(references["size_reader_fold_aucs"]) == len(references["folds"])
    assert f"| *reference: tumour-size reader* | {references['size_reader_auc']:.3f} |" in (out / "auc_table.md").read_text()
    # the linear read of each fold's frozen latent, on the items its real-only PattenNet cell recorded
    test_items = json.loads((out / "cells" / "fold0-pattennet-r0.00" / "test_items.json").read_text())["testing"]
    assert all(item["latent"][0].endswith("-identity.pt") for item in test_items)
    assert f"latent region reader (mean over the folds) AUC {references['latent_reader_auc']:.3f}" in result.stdout
    assert len(references["latent_reader_fold_aucs"]) == len(references["folds"])
    assert f"| *reference: latent region reader (linear, PattenNet's frozen latent)* | {references['latent_reader_auc']:.3f} |" \
        in (out / "auc_table.md").read_text()
    assert sum(fold["n_test"] for fold in references["folds"]) == references["n_cases"]
    # the tiny cohort's oracle: its latent PNI risk ranks 3 of every 4 (PNI+, PNI-) pairs right
    assert references["oracle_auc"] == pytest.approx(0.75) and references == written_by_the_run


def test_the_results_count_the_synthetic_patches_each_cell_trained_on(tmp_path):
    """n_train_synthetic is read from what the cell's training loaded (its training_items.json), not
    computed from the ratio: here 4 recorded where the ratio would ask for 2, none at ratio 0, and
    nothing (an empty column) for a cell without a record."""
    study = Study(tmp_path, load_profile("tiny"), tracking=False, log=lambda _: None)
    fold = {"fold": 0, "n_train": 8, "n_train_pos": 3, "n_test": 2, "n_test_pos": 1}
    cells = [Cell(0, "densenet121", 1.0), Cell(0, "densenet121", 0.0), Cell(0, "pattennet", 1.0)]
    real = [{"case_id": f"case_{i}", "pni": int(i < 3)} for i in range(8)]
    synthetic = [{"case_id": f"synthetic_{i}", "pni": 1, "synthetic": True} for i in range(4)]
    for cell, items in zip(cells, (real + synthetic, real, None)):
        workdir = tmp_path / "cells" / cell.name
        workdir.mkdir(parents=True)
        (workdir / "predictions.csv").write_text("case,pni_probability,pni\ncase_8,0.7,1\ncase_9,0.2,0\n")
        (workdir / "metrics.json").write_text(json.dumps({"roc_auc": 1.0}))
        if items is not None:
            (workdir / "training_items.json").write_text(json.dumps({"training": items}))
    rows = study.collect(cells, [fold], {c.name: {"error": "", "seconds": 1.0} for c in cells})
    assert [(r["n_train_synthetic"], r["error"]) for r in rows] == [(4, ""), (0, ""), (None, "")]


def test_a_baseline_cell_trains_when_its_last_batch_would_hold_one_patch(tmp_path):
    """Batch norm in training mode refuses one item whose feature maps are 1x1x1 (DenseNet-121 on the
    tiny and quick profiles' 32x32x32 patches): 5 training patches in batches of 4 would leave one,
    for the second update and for the batch-norm recalibration before the held-out evaluation."""
    import nibabel as nib
    import numpy as np

    from neonet_ext.data.patches import write_patch_datalist
    from neonet_ext.study.tasks import execute

    profile = load_profile("tiny")
    assert tuple(profile.patch_size) == (32, 32, 32) and profile.classifier["batch_size"] == 4
    rng = np.random.default_rng(0)
    items = []
    for i in range(11):
        patch = tmp_path / "patches" / f"case_{i}.nii.gz"
        patch.parent.mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(rng.random((32, 32, 32, 2), dtype=np.float32), np.eye(4)), patch)
        items.append({"case_id": f"case_{i}", "patch": str(patch), "pni": i % 2, "tumour_found": True})
    files = {"train": write_patch_datalist(items[:5], tmp_path / "train.json"),
             "test": write_patch_datalist(items[5:], tmp_path / "test.json")}
    study = Study(tmp_path / "study", profile, tracking=False, log=lambda _: None)
    task = study.cell_task(Cell(0, "densenet121", 0.0), {"files": files}, tmp_path / "no_generator", None, [])
    result = execute(task, None, "test")
    assert result["error"] == "", Path(task.log_file).read_text()[-3000:]
    assert (Path(task.workdir) / "metrics.json").is_file()


@pytest.mark.slow
def test_a_shared_generator_is_trained_once_and_labels_the_results_leaky(tmp_path):
    profile = dataclasses.replace(load_profile("tiny"), models=("densenet121",), ablations=())
    lines = []
    assert Study(tmp_path, profile, patch_source="ground_truth", shared_generator=True, tracking=False,
                 log=lines.append).run() == 0
    assert (tmp_path / "shared_generator" / "controlnet" / ".done").is_file()
    assert not list((tmp_path / "folds").glob("fold*/neogen/autoencoder"))  # no per-fold generator
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["leaky_generator"] for r in rows} == {"True"}
    assert "LEAKY" in (tmp_path / "auc_table.md").read_text() and "LEAKY" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_neoseg_cuts_the_patches_in_chunks_and_they_are_resampled(tmp_path):
    from neonet_ext.data.synthetic import write_cohort

    write_cohort(tmp_path / "cohort", 3, seed=5, verbose=False)
    profile = load_profile("tiny")
    study = Study(tmp_path / "study", profile, cohort=tmp_path / "cohort", tracking=False, log=lambda _: None)
    tasks, patches_file = study.patch_tasks(tmp_path / "cohort" / "dataset.json")
    assert [t.name for t in tasks] == ["patches-neoseg-0", "patches-neoseg-1", "patches-neoseg", "patches-32x32x32"]
    results = run_tasks(tasks, 2, 1, None, "unused", log=lambda _: None)
    assert not any(r["error"] for r in results.values()), results
    from neonet_ext.data.patches import load_patch_datalist

    items = load_patch_datalist(patches_file, required_keys=["patch", "patch_mask", "pni", "tumour_found"])
    assert [i["case_id"] for i in items] == ["case_000", "case_001", "case_002"]
    import nibabel as nib

    patch = nib.load(items[0]["patch"])  # the same 128x128x96 mm field of view as the 64x64x32 TLCR crop
    assert patch.shape == (32, 32, 32, 2) and patch.header.get_zooms()[:3] == (4.0, 4.0, 3.0)


@pytest.mark.slow
def test_the_paper_profile_runs_end_to_end_at_a_smoke_budget(tmp_path):
    """``paper_smoke``: the paper profile as it is (64x64x32 NeoSeg patches, full-width networks, the bundles'
    NeoGen), with only its cohort, folds, grid and budgets shrunk: what a CPU can check of a profile for a GPU."""
    import nibabel as nib

    paper = load_profile("paper")
    profile = load_profile("paper_smoke").with_models(["efficientnet-b0", "pattennet"])  # ResNet-200 takes minutes a cell
    assert Study(tmp_path, profile, tracking=False, log=lambda _: None).run() == 0
    with (tmp_path / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and not any(r["error"] for r in rows) and {r["patch_source"] for r in rows} == {"neoseg"}
    patch = nib.load(next((tmp_path / "patches" / "neoseg").glob("chunk0/case_*/*_tlcr.nii.gz")))
    assert patch.shape == (*paper.patch_size, 2)
    autoencoder = torch.load(tmp_path / "folds" / "fold0" / "neogen" / "models" / "model_autoencoder.pt", map_location="cpu",
                             weights_only=True)
    assert autoencoder["encoder.blocks.blocks.0.conv.weight"].shape[0] == NEOGEN_AUTOENCODER["channels"][0]


def test_bad_cohorts_are_refused_with_a_clear_error(tmp_path):
    result = subprocess.run(study_command(tmp_path / "out", "--cohort", str(tmp_path)), cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "has no dataset.json" in result.stderr


def test_a_profile_built_on_another_gives_only_what_differs(tmp_path):
    paper, smoke = load_profile("paper"), load_profile("paper_smoke")
    assert smoke.name == "paper_smoke" and smoke.patch_size == paper.patch_size and smoke.workers == paper.workers
    assert smoke.classifier == {**paper.classifier, "epochs": 1, "train#trainer#epoch_length": 2, "num_workers": 0}
    assert smoke.models == ("resnet200", "pattennet") and smoke.cohort["cases"] == 12
    (tmp_path / "mine.json").write_text(json.dumps({"base": "paper_smoke", "folds": 3, "classifier": {"epochs": 2}}))
    mine = load_profile(tmp_path / "mine.json")
    assert mine.name == "mine" and mine.folds == 3 and mine.classifier == {**smoke.classifier, "epochs": 2}
    (tmp_path / "bad.json").write_text(json.dumps({"base": "paper", "epochs": 2}))
    with pytest.raises(ValueError, match=r"bad.json: unknown keys \['epochs'\]"):
        load_profile(tmp_path / "bad.json")
    (tmp_path / "lost.json").write_text(json.dumps({"base": "no_such_profile"}))
    with pytest.raises(FileNotFoundError, match="no study profile 'no_such_profile'"):
        load_profile(tmp_path / "lost.json")


def pattennet_layout(network: torch.nn.Module) -> tuple[int, bool, bool] | None:
    """(blocks, channel attention in every block, spatial attention in every block) of a PattenNet, else None."""
    from neonet_ext.networks import PattenNet

    if not isinstance(network, PattenNet):
        return None
    blocks = [stage.attention for stage in network.stages]
    return (len(blocks), all(b.channel_attention is not None for b in blocks),
            all(b.spatial_attention is not None for b in blocks))


# what each cell's network must be: PattenNet's layout for the full network and each ablation, None for a baseline
CELL_NETWORKS = {"full": (2, True, True), "channel_only": (2, True, False), "spatial_only": (2, False, True),
                 "blocks_0": (0, True, True), "blocks_1": (1, True, True), "blocks_3": (3, True, True)}


def test_every_baseline_has_its_override_file_and_cells_need_no_expressions(tmp_path):
    """Cells compose config files and plain command-line values: no `$` expression or dictionary among the
    overrides, and each of table 1's baselines trains from its own file in bundles/neocls/configs/networks."""
    from neonet_ext.study import BASELINES

    study = Study(tmp_path, load_profile("quick"), tracking=False, log=lambda _: None)
    fold = {"files": {"train": tmp_path / "train.json", "test": tmp_path / "test.json"}}
    for model in (*BASELINES, "pattennet"):
        task = study.cell_task(Cell(0, model, 1.0), fold, tmp_path / "neogen", tmp_path / "synthetic.json", [])
        if model != "pattennet":
            assert (REPO / "bundles" / "neocls" / "configs" / "networks" / f"{model}.json") in map(Path, task.config_files)
        for key, value in task.overrides.items():
            assert not isinstance(value, dict) and not (isinstance(value, str) and value.startswith("$")), (model, key)
        assert task.command_line().count("--config_file") == 1


@pytest.mark.parametrize("profile_name", ["tiny", "quick", "learning", "paper"])
def test_every_run_of_a_profile_parses_and_builds_its_networks(tmp_path, profile_name):
    """The profiles' overrides name real config ids: each NeoGen stage and each kind of cell builds its network
    (the paper profile is meant for a GPU, so this is what a CPU can check of it), and each PattenNet ablation
    cell builds the ablated network (blocks and attentions), each baseline cell a baseline."""
    from monai.bundle import ConfigParser

    from neonet_ext.study import ABLATIONS

    profile = load_profile(profile_name)
    study = Study(tmp_path, profile, tracking=False, log=lambda _: None)
    fold = {"files": {"train": tmp_path / "train.json", "test": tmp_path / "test.json"}}
    tasks = study.generator_tasks("fold0", tmp_path / "neogen", tmp_path / "train.json", tmp_path / "pos.json", 4)
    cells = [Cell(0, "pattennet", 1.0, variant) for variant in ("full", *ABLATIONS)]
    cells += [Cell(0, "swin-transformer", 0.0), Cell(0, "efficientnet-b3", 0.5)]
    tasks += [study.cell_task(c, fold, tmp_path / "neogen", None, []) for c in cells]
    expected = {c.name: CELL_NETWORKS.get(c.variant) if c.model == "pattennet" else None for c in cells}
    assert set(expected) >= {t.name for t in tasks if t.kind == "cell"}
    for task in tasks:
        parser = ConfigParser()
        parser.read_config([str(f) for f in task.config_files])
        parser.update(dict(task.overrides))
        if "network_def" in parser and parser["network_def"].get("autoencoder_checkpoint") is not None:
            parser["network_def"]["autoencoder_checkpoint"] = None  # no NeoGen weights here
        keys = [k for k in ("autoencoder_def", "diffusion_unet_def", "controlnet_def", "network_def") if k in parser]
        assert keys, task.name
        for key in keys:
            assert isinstance(parser.get_parsed_content(key), torch.nn.Module), (task.name, key)
        if task.kind == "cell":
            assert pattennet_layout(parser.get_parsed_content("network_def")) == expected[task.name], task.name
