"""Helpers that bundle configs call: channel selection, HD95 in mm, resume, weight loading, int16 data."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from neonet_ext.data.synthetic import SyntheticCohortConfig, generate_case, write_cohort
from neonet_ext.engines.checkpoints import PretrainedWeightsLoader, latest_checkpoint, load_checkpoint, load_weights
from neonet_ext.metrics import HausdorffDistanceMMMetric, select_channel
from neonet_ext.transforms import REFINER_FLIPS
from neonet_ext.utils.bundle import BundleStage, bundle_root


def test_select_channel_keeps_background_and_one_class():
    pred = [torch.arange(3 * 8).reshape(3, 2, 2, 2).float()]
    label = [torch.ones(3, 2, 2, 2)]
    p, y = select_channel((pred, label), 2)
    assert p[0].shape == (2, 2, 2, 2)
    torch.testing.assert_close(p[0][1], pred[0][2])


def test_hausdorff_distance_is_in_millimetres():
    a = torch.zeros(1, 2, 8, 8, 8)
    b = torch.zeros(1, 2, 8, 8, 8)
    a[0, 1, 2:5, 2:5, 2:5] = 1
    b[0, 1, 2:5, 2:5, 3:6] = 1  # shifted by one voxel along z
    a[0, 0], b[0, 0] = 1 - a[0, 1], 1 - b[0, 1]
    affine = torch.diag(torch.tensor([1.5, 1.5, 3.0, 1.0], dtype=torch.float64))
    metric = HausdorffDistanceMMMetric(include_background=False, percentile=95)
    metric(MetaTensor(a, affine=affine), b)
    assert metric.aggregate().item() == pytest.approx(3.0)
    voxels = HausdorffDistanceMMMetric(include_background=False, percentile=95)
    voxels(a, b)  # no affine: voxel units
    assert voxels.aggregate().item() == pytest.approx(1.0)
    missed = HausdorffDistanceMMMetric(include_background=False, percentile=95)
    empty = torch.zeros_like(a)
    empty[0, 0] = 1
    with pytest.warns(UserWarning):
        missed(MetaTensor(empty, affine=affine), b)  # the class was never predicted: no distance
    assert torch.isnan(missed.aggregate()).all()  # not MONAI's 0, which reads as perfect


def test_latest_checkpoint_picks_the_newest(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for i, name in enumerate(["checkpoint_epoch=3.pt", "checkpoint_epoch=10.pt", "model.pt"]):
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (time.time() + i, time.time() + i))
    assert latest_checkpoint(tmp_path).endswith("checkpoint_epoch=10.pt")



def test_load_weights_takes_a_state_dict_or_a_checkpoint_holding_one(tmp_path):
    saved = torch.nn.Linear(3, 2)
    torch.save(saved.state_dict(), tmp_path / "plain.pt")
    torch.save({"model": saved.state_dict(), "epoch": 4}, tmp_path / "ignite.pt")
    for name in ("plain.pt", "ignite.pt"):
        loaded = load_weights(torch.nn.Linear(3, 2), tmp_path / name, map_location=torch.device("cpu"))
        torch.testing.assert_close(loaded.weight, saved.weight)
    assert load_checkpoint(tmp_path / "ignite.pt")["epoch"] == 4


def test_pretrained_weights_come_from_a_state_dict_or_another_trainings_checkpoint(tmp_path):
    generator, discriminator = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(generator.parameters())
    torch.save({"autoencoder": generator.state_dict(), "discriminator": discriminator.state_dict(),
                "g_optimizer": optimizer.state_dict(), "trainer": {"epoch": 6}}, tmp_path / "checkpoint_epoch=6.pt")
    torch.save(generator.state_dict(), tmp_path / "plain.pt")
    for name in ("checkpoint_epoch=6.pt", "plain.pt"):  # "model" is found under the autoencoder's key
        network = torch.nn.Linear(3, 2)
        PretrainedWeightsLoader(tmp_path / name, {"model": network})()
        torch.testing.assert_close(network.weight, generator.weight)
    both = {"autoencoder": torch.nn.Linear(3, 2), "discriminator": torch.nn.Linear(2, 1)}
    PretrainedWeightsLoader(tmp_path / "checkpoint_epoch=6.pt", both)()  # each network by its own name
    torch.testing.assert_close(both["discriminator"].bias, discriminator.bias)
    with pytest.raises(RuntimeError, match="(?s)plain.pt do not fit the network.*size mismatch"):
        PretrainedWeightsLoader(tmp_path / "plain.pt", {"model": torch.nn.Linear(4, 2)})()


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"NeoSeg weights not found: {tmp_path / 'absent.pt'} does not exist"):
        load_weights(torch.nn.Linear(3, 2), tmp_path / "absent.pt", what="NeoSeg")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.pt are not a checkpoint"):
        load_checkpoint(tmp_path / "notes.pt")
    torch.save({"epoch": 3}, tmp_path / "unrelated.pt")
    with pytest.raises(ValueError, match="unrelated.pt hold neither a state dict"):
        load_weights(torch.nn.Linear(3, 2), tmp_path / "unrelated.pt")
    torch.save(torch.nn.Linear(4, 2).state_dict(), tmp_path / "other.pt")
    with pytest.raises(RuntimeError, match="(?s)other.pt do not fit the network.*size mismatch"):
        load_weights(torch.nn.Linear(3, 2), tmp_path / "other.pt")

def test_int16_cohort_stores_rounded_intensities(tmp_path):
    config = SyntheticCohortConfig(shape=(48, 40, 16), image_dtype="int16")
    write_cohort(tmp_path, 1, 4, config, verbose=False)
    stored = nib.load(tmp_path / "imagesTr" / "case_000.nii.gz")
    assert stored.get_data_dtype() == np.int16
    expected = generate_case(0, 4, config).image
    np.testing.assert_array_equal(np.asarray(stored.dataobj), np.rint(expected))
    with pytest.raises(ValueError, match="image_dtype"):
        SyntheticCohortConfig(image_dtype="uint8")


def test_time_limit_stops_at_the_end_of_an_epoch():
    from ignite.engine import Engine, Events

    from neonet_ext.engines import TimeLimitHandler

    engine = Engine(lambda engine, batch: time.sleep(0.02))
    iterations = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: iterations.append(e.state.iteration))
    TimeLimitHandler(0.05).attach(engine)
    engine.run(range(4), max_epochs=10)
    assert engine.state.epoch == 1 and iterations == [1, 2, 3, 4]  # the epoch that ran past the limit is finished

    unlimited = Engine(lambda engine, batch: None)
    TimeLimitHandler(None).attach(unlimited)
    unlimited.run(range(2), max_epochs=3)
    assert unlimited.state.epoch == 3
    with pytest.raises(ValueError, match="positive"):
        TimeLimitHandler(0)


def test_expected_calibration_error():
    from neonet_ext.metrics import expected_calibration_error

    assert expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0)
    assert expected_calibration_error([1, 1, 1, 1], [0.0, 0.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert expected_calibration_error([0, 0, 1, 1], [0.05, 0.05, 0.75, 0.75]) == pytest.approx(0.5 * 0.05 + 0.5 * 0.25)


def test_a_bundle_stage_loads_every_network_its_bundle_loads():
    """NeoSeg as a stage of a chain (NeoCls, MONAI Label, Deploy) with its tumour refiner on serves the
    shipped refiner weights, not a freshly initialised network: the stage runs the bundle's ``initialize``."""
    root = Path(bundle_root("neoseg"))
    stage = BundleStage(root, "NeoSeg", overrides={"refine_tumour": True, "datalist": []})
    for key, weights in (("network", "model.pt"), ("refiner", "refiner.pt")):
        expected = torch.load(root / "models" / weights, map_location="cpu", weights_only=True)
        loaded = stage[key].state_dict()
        assert loaded.keys() == expected.keys()
        for name, value in expected.items():
            torch.testing.assert_close(loaded[name], value, msg=f"{key} {name} not loaded from {weights}")
    # the runner's post-processing refines with that same network
    refine = next(t for t in stage["postprocessing"].transforms if type(t).__name__ == "TumourRefined")
    assert refine.refine.network is stage["refiner"]


def test_the_refiners_flips_are_a_setting_of_neoseg_inference_and_of_its_run_identity():
    root = Path(bundle_root("neoseg"))
    runs = {}
    for name, flips in (("default", None), ("one pass", [[]])):
        overrides = {"datalist": []} if flips is None else {"datalist": [], "refiner_flips": flips}
        stage = BundleStage(root, "NeoSeg", overrides=overrides)
        refine = next(t for t in stage["postprocessing"].transforms if type(t).__name__ == "TumourRefined")
        runs[name] = (refine.refine.flips, stage["runner"].run_sha1())
    assert runs["default"][0] == [tuple(axes) for axes in REFINER_FLIPS] and runs["one pass"][0] == [()]
    assert runs["default"][1] != runs["one pass"][1]  # a re-run with other flips does not keep the earlier outputs
