"""The NeoNet MONAI Label app served for real: `monailabel start_server` on 127.0.0.1, then
/infer for NeoSeg and NeoCls against the bundles' own `monai.bundle run` output, and /train.

Run it in the MONAI Label environment (apps/monailabel/install.sh):

    .venv-label/bin/python -m pytest apps/monailabel/tests -x -q

Nothing is written into the repository: the app, the studies and the served bundle copies
all live in a temporary folder.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("monailabel", reason="MONAI Label is not installed: run apps/monailabel/install.sh .venv-label")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402
from monai.bundle import ConfigParser  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
APP = REPO / "apps" / "monailabel" / "neonet"
BUNDLES = REPO / "bundles"
CASES = ["case_000", "case_001", "case_002"]
# small synthetic studies keep each inference at a few seconds on 2 CPU cores; int16 as many scanners write
COHORT_ARGS = ["--cases", str(len(CASES)), "--seed", "7", "--shape", "112", "96", "48", "--int16", "--quiet"]
# the tiny settings of tests/test_neoseg_bundle.py, as /train options
TINY_TRAIN = {"max_epochs": 1, "val_split": 0.34, "val_interval": 1, "patch_size": [32, 32, 16],
              "num_workers": 0, "cache_rate": 0, "batch_size": 1, "num_samples": 1}
# voxels whose label may differ from the bundle's own run: none measured (same code, weights and
# thread count); the bound only absorbs argmax ties that another summation order could flip
MAX_DIFFERENT_FRACTION = 1e-4
STARTUP_TIMEOUT_S = 180
TRAIN_TIMEOUT_S = 600


def bundle_run(bundle: str, *overrides: str, log: Path) -> None:
    """``python -m monai.bundle run`` of ``bundles/<bundle>/configs/inference.json`` from the repository root."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
           str(BUNDLES / bundle / "configs" / "inference.json"), *overrides]
    with open(log, "w") as out:
        result = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=600)
    assert result.returncode == 0, f"{bundle} bundle run failed:\n{log.read_text()[-3000:]}"


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file of the two served bundles, to show nothing was written there."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for name in ("neoseg", "neocls") for p in (root / name).rglob("*") if p.is_file()}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bundles_before():
    return tree_state(BUNDLES)


@pytest.fixture(scope="module")
def work(tmp_path_factory, bundles_before) -> Path:
    """Synthetic studies (imagesTr, labelsTr) and the bundles' own outputs on them."""
    root = tmp_path_factory.mktemp("monailabel")
    cohort = root / "cohort"
    subprocess.run([sys.executable, "-m", "neonet_ext.data.synthetic", "--out", str(cohort), *COHORT_ARGS],
                   cwd=REPO, check=True, timeout=300)
    bundle_run("neoseg", "--dataset_dir", str(cohort / "imagesTr"), "--output_dir", str(root / "ref_neoseg"),
               log=root / "ref_neoseg.log")
    bundle_run("neocls", "--dataset_dir", str(cohort / "imagesTr"), "--output_dir", str(root / "ref_neocls"),
               log=root / "ref_neocls.log")
    return root


@pytest.fixture(scope="module")
def server(work):
    """The real server on a free port of 127.0.0.1, on a copy of the app and of the studies;
    killed (with its training subprocesses) at the end."""
    app = work / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("model", "logs", "bin", "__pycache__"))
    studies = work / "studies"
    studies.mkdir()
    for case in CASES:
        shutil.copy(work / "cohort" / "imagesTr" / f"{case}.nii.gz", studies)
    port = free_port()
    env = {**os.environ, "MONAI_LABEL_SESSION_PATH": str(work / "sessions")}  # not under ~/.cache
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies", str(studies),
           "--host", "127.0.0.1", "--port", str(port)]  # what the `monailabel` script runs
    log_path = work / "server.log"
    log = open(log_path, "w")
    # its own process group: the training subprocesses it starts are ended with it
    process = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/info/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                tail = log_path.read_text()[-3000:]
                raise AssertionError(f"server not answering after {STARTUP_TIMEOUT_S} s:\n{tail}")
            time.sleep(1)
        yield {"url": url, "app": app, "studies": studies, "log": log_path}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def infer(server, model: str, case: str, output: str) -> requests.Response:
    response = requests.post(f"{server['url']}/infer/{model}", params={"image": case, "output": output}, timeout=300)
    assert response.status_code == 200, f"/infer/{model} {case}: {response.status_code} {response.text[:2000]}"
    return response


def check_label_map(path: Path, image_path: Path, reference_path: Path) -> None:
    """The label map at ``path`` lies on the input's grid, holds NeoNet's labels and matches the bundle's own."""
    seg, image, reference = nib.load(path), nib.load(image_path), nib.load(reference_path)
    assert seg.shape == image.shape
    np.testing.assert_allclose(seg.affine, image.affine, atol=1e-4)
    labels = np.asarray(seg.dataobj)
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2} and {1, 2} <= set(np.unique(labels))  # liver and tumour found
    different = int((labels != np.asarray(reference.dataobj)).sum())
    assert different <= MAX_DIFFERENT_FRACTION * labels.size, f"{different} of {labels.size} voxels differ"


def train_status(server, timeout_s: float) -> dict:
    """The last training task's status once it has ended."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = requests.get(f"{server['url']}/train/", timeout=30).json()
        if status.get("status") not in ("SUBMITTED", "RUNNING"):
            return status
        time.sleep(2)
    raise AssertionError(f"training still running after {timeout_s} s:\n{server['log'].read_text()[-3000:]}")


def test_info_lists_both_models_and_the_trainer(server):
    info = requests.get(f"{server['url']}/info/", timeout=30).json()
    assert info["models"]["neoseg"]["type"] == "segmentation"
    assert info["models"]["neoseg"]["labels"] == {"liver": 1, "tumour": 2}
    assert info["models"]["neocls"]["type"] == "classification"
    assert info["models"]["neocls"]["labels"] == {"PNI negative": 0, "PNI positive": 1}
    assert list(info["trainers"]) == ["neoseg"]
    # served from copies in the app's model folder, not from the repository's bundles
    assert info["models"]["neoseg"]["bundle_root"] == str(server["app"] / "model" / "neoseg")


@pytest.mark.parametrize("case", CASES)
def test_neoseg_returns_the_bundles_label_map(server, work, case, tmp_path):
    """Spacingd in NeoSeg's pre-processing made this an HTTP 500 before the image_path guard."""
    result = tmp_path / "seg.nii.gz"
    result.write_bytes(infer(server, "neoseg", case, "image").content)
    check_label_map(result, server["studies"] / f"{case}.nii.gz", work / "ref_neoseg" / case / f"{case}_seg.nii.gz")


def test_neocls_returns_the_bundles_pni_probability(server, work):
    with open(work / "ref_neocls" / "predictions.csv") as f:
        expected = {row["case"]: row for row in csv.DictReader(f)}
    for case in CASES:
        result = infer(server, "neocls", case, "json").json()
        p = result["pni_probability"]
        assert result["tumour_found"] is True and expected[case]["tumour_found"] == "True"
        # predictions.csv holds 6 decimals; the same chain on the same weights gives the same float
        assert p == pytest.approx(float(expected[case]["pni_probability"]), abs=1e-4), case
        assert result["tumour_volume_ml"] == pytest.approx(float(expected[case]["tumour_volume_ml"]), abs=1e-3)
        scores = {item["label"]: item["score"] for item in result["prediction"]}
        assert scores["PNI positive"] == pytest.approx(p) and scores["PNI negative"] == pytest.approx(1 - p)


def test_training_without_labels_fails_with_a_clear_error(server):
    response = requests.post(f"{server['url']}/train/neoseg", json=TINY_TRAIN, timeout=30)
    assert response.status_code == 200, response.text
    status = train_status(server, TRAIN_TIMEOUT_S)
    assert status["status"] == "ERROR"
    assert "needs at least 2 studies with a final label" in "\n".join(status["details"])


def test_training_one_tiny_epoch_writes_the_served_model(server, work, tmp_path):
    for case in CASES:
        with open(work / "cohort" / "labelsTr" / f"{case}.nii.gz", "rb") as label:
            response = requests.put(f"{server['url']}/datastore/label", params={"image": case, "tag": "final"},
                                    files={"label": (f"{case}.nii.gz", label)}, timeout=60)
        assert response.status_code == 200, response.text
    served = server["app"] / "model" / "neoseg" / "models" / "model.pt"
    before = md5(served)
    response = requests.post(f"{server['url']}/train/neoseg", json=TINY_TRAIN, timeout=30)
    assert response.status_code == 200, response.text
    status = train_status(server, TRAIN_TIMEOUT_S)
    details = "\n".join(status["details"])
    assert status["status"] == "DONE", details
    assert "Epoch[1] Complete" in details and "val_mean_dice" in details
    assert md5(served) != before
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / "neoseg" / "configs" / "inference.json"))
    parser.get_parsed_content("network_def").load_state_dict(torch.load(served, map_location="cpu", weights_only=True))

    # the running server serves the new weights at once: same label map as the bundle run with them
    trained = tmp_path / "trained.pt"
    shutil.copy(served, trained)
    one = tmp_path / "one_case"
    one.mkdir()
    shutil.copy(server["studies"] / "case_000.nii.gz", one)
    bundle_run("neoseg", "--dataset_dir", str(one), "--output_dir", str(tmp_path / "ref"), "--checkpoint", str(trained),
               log=tmp_path / "ref.log")
    result = tmp_path / "seg.nii.gz"
    result.write_bytes(infer(server, "neoseg", "case_000", "image").content)
    seg = np.asarray(nib.load(result).dataobj)
    reference = np.asarray(nib.load(tmp_path / "ref" / "case_000" / "case_000_seg.nii.gz").dataobj)
    different = int((seg != reference).sum())
    assert different <= MAX_DIFFERENT_FRACTION * seg.size, f"{different} of {seg.size} voxels differ"


def test_nothing_was_written_into_the_repository_bundles(server, bundles_before):
    after = tree_state(BUNDLES)
    changed = sorted(k for k in after.keys() | bundles_before.keys() if after.get(k) != bundles_before.get(k))
    assert not changed, f"written under bundles/ during the test: {changed}"
