"""The patch-grid study: the crop keeps the field of view, and each feature reads the sign it is meant to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neonet_ext.study.patch_grid import NEOSEG_SPACING, GridPatchCutter, grid_roi, patch_features
from neonet_ext.transforms import TLCR_ROI_SIZE

NEOSEG = Path(__file__).resolve().parents[1] / "bundles" / "neoseg"


def test_grid_roi_keeps_the_field_of_view():
    assert grid_roi(NEOSEG_SPACING) == tuple(TLCR_ROI_SIZE)
    assert grid_roi((1.0, 1.0, 2.0)) == (128, 128, 48)
    fov = np.asarray(TLCR_ROI_SIZE) * np.asarray(NEOSEG_SPACING)
    for spacing in [(1.0, 1.0, 2.0), (1.6349, 1.6349, 2.541), (1.5, 1.5, 2.7)]:
        # within half a voxel per axis of 128 x 128 x 96 mm
        assert np.all(np.abs(np.asarray(grid_roi(spacing)) * spacing - fov) <= 0.5 * np.asarray(spacing) + 1e-9)


def phantom(spacing, halo=0.0, tube=False, spikes=False, size_mm=(90.0, 90.0, 90.0), radius=9.0, seed=0):
    """A liver block (signal 1, 2 % noise) holding a spherical tumour (0.4), as a TLCR patch and masks.

    ``halo`` darkens the liver by ``1 - halo * exp(-d / 4 mm)`` (d: mm outside the tumour), as the
    generator does; ``tube`` adds a dark (0.42) track of radius 1.2 mm running 20 mm out of the tumour;
    ``spikes`` adds six narrow cones reaching 0.5 radius beyond the margin.
    Returns ``(patch (2, X, Y, Z), masks (2, X, Y, Z))``.
    """
    spacing = np.asarray(spacing, float)
    shape = np.round(np.asarray(size_mm) / spacing).astype(int)
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    r = np.sqrt(x**2 + y**2 + z**2) + 1e-6
    bumps = np.zeros_like(r)
    if spikes:
        for axis in np.eye(3).tolist() + (-np.eye(3)).tolist():
            cos = np.clip((x * axis[0] + y * axis[1] + z * axis[2]) / r, 0, 1)
            bumps += 0.5 * cos**60
    distance = r - radius * (1 + bumps)
    tumour = distance <= 0
    image = np.ones(shape, np.float32) * (1 - halo * np.exp(-np.clip(distance, 0, None) / 4.0))
    if tube:  # along +x from inside the tumour to 20 mm beyond it
        along = (x > 0.7 * radius) & (x < radius + 20)
        image[along & (np.sqrt(y**2 + z**2) <= 1.2) & ~tumour] = 0.42
    image[tumour] = 0.4
    image += np.random.default_rng(seed).normal(0, 0.02, shape).astype(np.float32)
    masks = np.stack([np.ones(shape, np.uint8), tumour.astype(np.uint8)])
    return np.stack([image, image * tumour]), masks


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 3.0), (1.0, 1.0, 2.0)])
def test_halo_feature_follows_the_halo_strength(spacing):
    contrast = [patch_features(*phantom(spacing, halo=h), spacing)["halo_contrast"] for h in (0.0, 0.1, 0.2)]
    assert abs(contrast[0]) < 0.02
    assert contrast[0] + 0.03 < contrast[1] < contrast[2] - 0.03
    # 0-4 mm out the halo is exp(-d / 4) of its strength: between e^-1 and 1 of it
    assert 0.2 * np.exp(-1) - 0.02 < contrast[2] < 0.2 + 0.02


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 3.0), (1.0, 1.0, 2.0)])
def test_volume_and_margin_features(spacing):
    smooth = patch_features(*phantom(spacing), spacing)
    spiky = patch_features(*phantom(spacing, spikes=True), spacing)
    assert smooth["tumour_volume_ml"] == pytest.approx(4 / 3 * np.pi * 9.0**3 / 1000, rel=0.15)
    assert spiky["radial_cv"] > 1.3 * smooth["radial_cv"]
    assert spiky["surface_ratio"] > smooth["surface_ratio"]


def test_track_feature_sees_a_track_on_the_fine_grid():
    spacing = (1.0, 1.0, 2.0)
    without = patch_features(*phantom(spacing), spacing)
    with_track = patch_features(*phantom(spacing, tube=True), spacing)
    assert without["tracks_1p5mm"] == 0 and with_track["tracks_1p5mm"] >= 1
    assert with_track["line_1p5mm"] > 2 * without["line_1p5mm"]


def test_cutter_on_generated_cases(tmp_path):
    from neonet_ext.data.synthetic import SyntheticCohortConfig, write_cohort

    write_cohort(tmp_path, 2, 3, SyntheticCohortConfig(shape=(64, 56, 24)), verbose=False)
    truth = pd.read_csv(tmp_path / "cohort.csv", dtype={"case_id": str}).set_index("case_id")
    cutter = GridPatchCutter(NEOSEG, {"2x2x3": NEOSEG_SPACING, "1x1x2": (1.0, 1.0, 2.0), "native": None})
    fov = np.asarray(TLCR_ROI_SIZE) * np.asarray(NEOSEG_SPACING)
    for case_id in truth.index:
        patches = cutter({"image": str(tmp_path / "imagesTr" / f"{case_id}.nii.gz"),
                          "label": str(tmp_path / "labelsTr" / f"{case_id}.nii.gz")})
        assert patches["2x2x3"]["patch"].shape == (2, *TLCR_ROI_SIZE)
        assert patches["1x1x2"]["patch"].shape == (2, 128, 128, 48)
        native = patches["native"]
        assert native["spacing"] == pytest.approx(tuple(truth.loc[case_id, ["spacing_x_mm", "spacing_y_mm", "spacing_z_mm"]]), rel=1e-3)
        for name, p in patches.items():
            assert p["patch"].shape[1:] == tuple(p["roi"])
            assert np.all(np.abs(np.asarray(p["roi"]) * p["spacing"] - fov) <= 0.5 * np.asarray(p["spacing"]) + 1e-6)
            assert p["masks"][1].any()
            features = patch_features(p["patch"], p["masks"], p["spacing"])
            # the label's tumour volume, exactly on its own grid; a tumour of a few voxels (the tiny
            # cases' ~0.4 ml) gains or loses a lot in nearest-neighbour resampling
            rel = 0.01 if name == "native" else 0.5
            assert features["tumour_volume_ml"] == pytest.approx(truth.loc[case_id, "tumour_volume_ml"], rel=rel)


def test_track_contrast_reads_a_painted_track():
    from neonet_ext.study.patch_grid import track_contrast

    spacing = (1.0, 1.0, 2.0)
    patch, masks = phantom(spacing, tube=True)
    shape = patch.shape[1:]
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    core = (x > 9.0) & (x < 29.0) & (np.sqrt(y**2 + z**2) <= 0.6)  # the tube's axis
    elsewhere = (-x > 9.0) & (-x < 29.0) & (np.sqrt(y**2 + z**2) <= 0.6)  # mirror image: plain liver
    on = track_contrast(patch, masks, core, spacing)
    off = track_contrast(patch, masks, elsewhere, spacing)
    assert on["track_mm3"] > 0 and on["contrast"] == pytest.approx(0.58, abs=0.05) and on["visible"] > 0.9
    assert abs(off["contrast"]) < 0.03 and off["visible"] < 0.2


def test_painted_tracks_match_the_written_cohort(tmp_path):
    import nibabel as nib

    from neonet_ext.data.synthetic import SyntheticCohortConfig, write_cohort
    from neonet_ext.study.patch_grid import painted_tracks

    config = SyntheticCohortConfig(shape=(64, 56, 24))
    write_cohort(tmp_path, 2, 3, config, verbose=False)
    truth = pd.read_csv(tmp_path / "cohort.csv", dtype={"case_id": str})
    for index, row in truth.iterrows():
        case, fraction = painted_tracks(index, 3, config)
        stored = np.asarray(nib.load(tmp_path / "labelsTr" / f"{row['case_id']}.nii.gz").dataobj)
        assert np.array_equal(case.label, stored)  # the wrapper changes nothing that is painted
        assert fraction.shape == stored.shape and ((fraction > 0).any() == (row["n_extensions"] > 0))
        assert fraction.max() <= 1.0
