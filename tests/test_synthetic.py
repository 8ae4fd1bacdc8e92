"""Tests of the synthetic HBP-MRI cohort generator (neonet_ext.data.synthetic)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from neonet_ext.data.synthetic import (
    GENERATOR_VERSION,
    IMAGING_SIGNS,
    NOISE_FREE_SNR,
    SyntheticCohortConfig,
    cohort,
    generate_case,
    main,
    sample_cohort_latents,
    scoring_cohort_config,
    sign_reader_auc,
    write_cohort,
    write_cohort_once,
)
from neonet_ext.labels import BACKGROUND, LABEL_NAMES, LIVER, TUMOUR
from neonet_ext.roc import roc_auc

REPO = Path(__file__).resolve().parents[1]
#: Small enough that a case takes ~0.1 s, large enough to hold all the anatomy.
TINY = SyntheticCohortConfig(shape=(64, 56, 24))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "cohort"
    write_cohort(out, 3, seed=7, config=TINY, verbose=False)
    return out


@pytest.fixture(scope="module")
def default_case():
    """A default-size case with its tissue masks (the generator's own ground truth)."""
    return generate_case(1, 0, SyntheticCohortConfig(), return_tissues=True)


# ------------------------------------------------------------------ determinism


def test_same_arguments_give_byte_identical_files(tiny_cohort, tmp_path):
    again = tmp_path / "again"
    write_cohort(again, 3, seed=7, config=TINY, verbose=False)
    first, second = _files(tiny_cohort), _files(again)
    images = {f"{folder}/case_00{i}.nii.gz" for folder in ("imagesTr", "labelsTr") for i in range(3)}
    expected = {"dataset.json", "cohort.csv"} | images
    assert set(first) == expected
    assert set(second) == expected
    for name in expected:
        assert first[name] == second[name], name


#: The tiny cohort (seed 7) as generator 1.0.0 writes it, summarised by :func:`cohort_summary`: pinned so that a
#: refactoring that changes the voxels fails here (and a deliberate change bumps GENERATOR_VERSION and rewrites
#: the file: ``python tests/test_synthetic.py``). A summary with tolerances, not a digest: the float32 arithmetic
#: of numpy and scipy differs in the last bits between CPUs (AVX-512 and AVX2 machines write other bytes).
COHORT_SUMMARY = Path(__file__).resolve().parent / "data" / "tiny_cohort_summary.json"


def cohort_summary(root: Path) -> dict:
    """Per NIfTI file: shape, dtype, affine, sum and sum of squares, 64 voxels at fixed places, and each label's
    count in a label map; and cohort.csv's columns."""
    summary = {}
    for path in sorted(root.rglob("*.nii.gz")):
        image = nib.load(path)
        voxels = np.asarray(image.dataobj)
        flat = voxels.astype(np.float64).ravel()
        places = np.random.default_rng(0).choice(flat.size, 64, replace=False)
        entry = {"shape": list(voxels.shape), "dtype": str(voxels.dtype), "affine": image.affine.tolist(),
                 "sum": flat.sum(), "sum_of_squares": (flat**2).sum(), "voxels": flat[places].tolist()}
        if path.parent.name == "labelsTr":
            values, counts = np.unique(voxels, return_counts=True)
            entry["label_counts"] = {str(v): int(c) for v, c in zip(values, counts)}
        summary[f"{path.parent.name}/{path.name}"] = entry
    summary["cohort.csv"] = pd.read_csv(root / "cohort.csv").to_dict(orient="list")
    return summary


def test_generator_output_is_pinned(tiny_cohort):
    assert GENERATOR_VERSION == "1.0.0"
    expected, actual = json.loads(COHORT_SUMMARY.read_text()), cohort_summary(tiny_cohort)
    assert sorted(actual) == sorted(expected)
    for name, want in expected.items():
        got = actual[name]
        if name == "cohort.csv":
            assert list(got) == list(want)
            for column, values in want.items():
                if isinstance(values[0], str):
                    assert got[column] == values, column
                else:  # volumes count voxels: one voxel's label may flip on another CPU
                    np.testing.assert_allclose(got[column], values, rtol=2e-3, err_msg=column)
            continue
        assert (got["shape"], got["dtype"]) == (want["shape"], want["dtype"]), name
        np.testing.assert_allclose(got["affine"], want["affine"], rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose([got["sum"], got["sum_of_squares"]], [want["sum"], want["sum_of_squares"]],
                                   rtol=1e-4, err_msg=name)
        if "label_counts" in want:
            assert sorted(got["label_counts"]) == sorted(want["label_counts"]), name
            np.testing.assert_allclose([got["label_counts"][k] for k in want["label_counts"]],
                                       list(want["label_counts"].values()), rtol=2e-3, atol=2, err_msg=name)
        else:
            np.testing.assert_allclose(got["voxels"], want["voxels"], rtol=1e-4, atol=1e-3, err_msg=name)


def test_gzip_headers_carry_no_time_or_name(tiny_cohort):
    raw = (tiny_cohort / "imagesTr" / "case_000.nii.gz").read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert raw[3] & 0x08 == 0, "FNAME flag set: the file name is stored in the header"
    assert int.from_bytes(raw[4:8], "little") == 0, "gzip mtime is not zero"


def test_different_seed_gives_different_cases(tiny_cohort, tmp_path):
    other = tmp_path / "other"
    write_cohort(other, 3, seed=8, config=TINY, verbose=False)
    first, second = _files(tiny_cohort), _files(other)
    for name in first:
        if name.endswith(".nii.gz"):
            assert first[name] != second[name], name
    a, b = generate_case(0, 7, TINY), generate_case(0, 8, TINY)
    assert a.image.shape == b.image.shape
    assert not np.array_equal(a.image, b.image)


def test_case_alone_equals_case_in_cohort(tiny_cohort):
    case = generate_case(2, 7, TINY)
    image = nib.load(tiny_cohort / "imagesTr" / "case_002.nii.gz")
    label = nib.load(tiny_cohort / "labelsTr" / "case_002.nii.gz")
    np.testing.assert_array_equal(np.asanyarray(image.dataobj), case.image)
    np.testing.assert_array_equal(np.asanyarray(label.dataobj), case.label)
    np.testing.assert_allclose(image.affine, case.affine)
    row = pd.read_csv(tiny_cohort / "cohort.csv").set_index("case_id").loc["case_002"]
    for key, value in case.record.items():
        if key != "case_id":
            assert row[key] == pytest.approx(value, abs=1e-6), key


def test_latents_match_generated_cases():
    latents = sample_cohort_latents(3, 7, TINY)
    for i in range(3):
        record = generate_case(i, 7, TINY).record
        for key in latents.columns:
            assert record[key] == latents.loc[i, key], key
    window = sample_cohort_latents(4, 7, TINY, start=5)
    full = sample_cohort_latents(9, 7, TINY).iloc[5:]
    pd.testing.assert_frame_equal(window.reset_index(drop=True), full.reset_index(drop=True))


# ------------------------------------------------------------------ labels and geometry


@pytest.mark.parametrize("index", range(6))
def test_labels_dtypes_and_affine(index):
    case = generate_case(index, 3, TINY)
    assert case.image.dtype == np.float32 and case.image.shape == TINY.shape
    assert case.label.dtype == np.uint8 and case.label.shape == TINY.shape
    assert set(np.unique(case.label)) <= {BACKGROUND, LIVER, TUMOUR}
    assert (case.label == LIVER).sum() > 0
    assert (case.label == TUMOUR).sum() > 0
    assert np.isfinite(case.image).all() and case.image.min() >= 0
    spacing = [case.record[f"spacing_{a}_mm"] for a in "xyz"]
    assert TINY.inplane_spacing_mm[0] <= spacing[0] <= TINY.inplane_spacing_mm[1]
    assert TINY.slice_spacing_mm[0] <= spacing[2] <= TINY.slice_spacing_mm[1]
    np.testing.assert_allclose(np.diag(case.affine)[:3], spacing)
    np.testing.assert_allclose(case.affine[:3, 3], -(np.array(TINY.shape) - 1) / 2 * spacing)
    assert nib.aff2axcodes(case.affine) == ("R", "A", "S")
    # the tumour sits in the liver: its outer shell is mostly liver
    tumour = case.label == TUMOUR
    shell = ndimage.binary_dilation(tumour) & ~tumour
    assert (case.label[shell] == LIVER).mean() > 0.6
    assert case.record["tumour_volume_ml"] == pytest.approx(tumour.sum() * np.prod(spacing) / 1000, abs=1e-4)


def test_anatomy_sides_in_ras(default_case):
    """RAS+: the liver is on the patient's right (+X), the spleen on the left (-X)."""
    world_x = lambda mask: (default_case.affine @ np.r_[np.argwhere(mask).mean(0), 1.0])[0]  # noqa: E731
    assert world_x(default_case.tissues["liver"]) > 20
    assert world_x(default_case.tissues["spleen"]) < -20
    assert world_x(default_case.tissues["aorta"]) < world_x(default_case.tissues["ivc"])


def test_hbp_intensity_ordering(default_case):
    image, tissues = default_case.image, default_case.tissues
    median = {name: float(np.median(image[mask])) for name, mask in tissues.items()}
    assert median["liver"] > median["spleen"] > median["tumour"]
    assert median["liver"] > 1.5 * median["muscle"]
    assert median["muscle"] > median["subcutaneous_fat"] > median["air"]
    for vessel in ("portal_vein", "hepatic_vein", "aorta", "ivc"):
        assert median[vessel] < 0.8 * median["liver"], vessel
    assert median["lung"] < 0.2 * median["liver"]
    # the liver signal follows the drawn intensity scale (bias field normalised to median 1)
    assert 0.7 < median["liver"] / default_case.record["intensity_scale"] < 1.4


def test_background_noise_is_rician():
    case = generate_case(0, 5, TINY, return_tissues=True)
    air = case.image[case.tissues["air"]]
    sigma = case.record["intensity_scale"] / case.record["snr"]
    # magnitude of complex Gaussian noise on zero signal: Rayleigh, mean sigma * sqrt(pi / 2)
    assert air.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.15)


def test_extensions_fall_in_the_tlcr_crop():
    from neonet_ext.transforms.tlcr import TLCR_ROI_SIZE, tlcr_window, tumour_bounding_box

    config = SyntheticCohortConfig()
    assert config.crop_size == TLCR_ROI_SIZE
    latents = sample_cohort_latents(60, 0, config)
    chosen = latents[latents.n_extensions > 0].sort_values("tumour_diameter_nominal_mm").index[-2:]
    for index in chosen:
        case = generate_case(int(index), 0, config, return_tissues=True)
        extension = case.tissues.get("extension")
        assert extension is not None and extension.any(), f"case {index} has no visible extension"
        start = tlcr_window(*tumour_bounding_box(case.label), TLCR_ROI_SIZE)
        window = tuple(slice(a, a + c) for a, c in zip(start, TLCR_ROI_SIZE))
        assert extension[window].sum() == extension.sum(), f"case {index}: extension outside the TLCR crop"
        assert (case.label[extension] == LIVER).all()


# ------------------------------------------------------------------ PNI statistics


def test_prevalence_is_exact_per_block():
    for seed in range(3):
        assert sample_cohort_latents(128, seed).pni.sum() == 44
    half = SyntheticCohortConfig(prevalence=0.5, block_size=10)
    pni = sample_cohort_latents(40, 0, half).pni.to_numpy()
    assert (pni.reshape(4, 10).sum(axis=1) == 5).all()
    assert sample_cohort_latents(30, 0, SyntheticCohortConfig(prevalence=0.0)).pni.sum() == 0


@pytest.mark.parametrize(("effect", "low", "high"), [(0.0, 0.45, 0.55), (1.0, 0.82, 0.92), (2.0, 0.96, 1.0)])
def test_oracle_auc_follows_effect(effect, low, high):
    latents = sample_cohort_latents(2000, 11, SyntheticCohortConfig(effect=effect))
    assert low <= roc_auc(latents.pni, latents.pni_risk) <= high


def test_signs_differ_by_class_but_overlap():
    latents = sample_cohort_latents(200, 2)
    positive, negative = latents[latents.pni == 1], latents[latents.pni == 0]
    for sign in ("spiculation_amplitude", "halo_strength", "n_extensions", "margin_irregularity_mm"):
        assert positive[sign].mean() > negative[sign].mean(), sign
        assert 0.55 < roc_auc(latents.pni, latents[sign]) < 0.85, sign
        assert positive[sign].min() < negative[sign].max(), sign
    # with no effect a sign says nothing about PNI
    null = sample_cohort_latents(2000, 2, SyntheticCohortConfig(effect=0.0))
    assert abs(roc_auc(null.pni, null.spiculation_amplitude) - 0.5) < 0.05


def test_oracle_auc_of_one_class_is_nan():
    assert np.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_sign_reader_sits_between_chance_and_the_oracle():
    train, test = sample_cohort_latents(2000, 3), sample_cohort_latents(2000, 4)
    reader, oracle = sign_reader_auc(train, test), roc_auc(test.pni, test.pni_risk)
    # the signs together say more than any one of them, and less than the risk they are drawn from
    assert max(roc_auc(test.pni, test[sign]) for sign in IMAGING_SIGNS) + 0.03 < reader < oracle - 0.03
    null = SyntheticCohortConfig(effect=0.0)
    assert abs(sign_reader_auc(sample_cohort_latents(2000, 3, null), sample_cohort_latents(2000, 4, null)) - 0.5) < 0.05
    assert np.isnan(sign_reader_auc(train[train.pni == 0], test))


# ------------------------------------------------------------------ command line and writing


def test_cli_end_to_end(tmp_path, capsys):
    from monai.data import load_decathlon_datalist

    out = tmp_path / "cli"
    assert main(["--out", str(out), "--cases", "3", "--seed", "1", "--shape", "64", "56", "24", "--effect", "1.5"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:3] == [f"case_00{i} written ({i + 1}/3)" for i in range(3)]
    assert re.match(r"synthetic cohort: 3 cases, \d+ PNI\+ .*oracle AUC (nan|[01]\.\d{3})", printed[-1])

    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["labels"] == {str(k): v for k, v in LABEL_NAMES.items()}
    assert dataset["modality"] == {"0": "HBP-MRI"}
    assert dataset["numTraining"] == 3 and dataset["tensorImageSize"] == "3D"
    assert dataset["generator"]["seed"] == 1 and dataset["generator"]["config"]["effect"] == 1.5
    datalist = load_decathlon_datalist(out / "dataset.json", data_list_key="training")
    assert len(datalist) == 3
    for item in datalist:
        assert Path(item["image"]).is_file() and Path(item["label"]).is_file()
        assert item["pni"] in (0, 1)
    cohort = pd.read_csv(out / "cohort.csv")
    assert len(cohort) == 3
    assert list(cohort.case_id) == ["case_000", "case_001", "case_002"]
    assert list(cohort.pni) == [item["pni"] for item in dataset["training"]]


def test_module_runs_as_a_script(tmp_path):
    out = tmp_path / "script"
    result = subprocess.run(
        [sys.executable, "-m", "neonet_ext.data.synthetic", "--out", str(out), "--cases", "1"]
        + ["--shape", "48", "40", "16", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning" not in result.stderr
    assert "oracle AUC n/a (one class only)" in result.stdout
    assert (out / "imagesTr" / "case_000.nii.gz").is_file()


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--prevalence", "1.5"])
    assert "prevalence" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--cases", "0"])
    assert "--cases" in capsys.readouterr().err
    with pytest.raises(ValueError):
        SyntheticCohortConfig(shape=(8, 8, 8))


def test_failed_write_leaves_existing_files_intact(tiny_cohort, tmp_path, monkeypatch):
    out = tmp_path / "cohort"
    write_cohort(out, 3, seed=7, config=TINY, verbose=False)
    before = _files(out)

    def half_then_fail(self, data):
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_cohort(out, 3, seed=99, config=TINY, verbose=False)
    monkeypatch.undo()
    assert _files(out) == before, "a failed write changed or left files"


def test_failed_case_leaves_no_partial_cohort(tmp_path, monkeypatch):
    real = cohort.generate_case

    def fail_on_second(index, *args, **kwargs):
        if index == 1:
            raise RuntimeError("boom")
        return real(index, *args, **kwargs)

    monkeypatch.setattr(cohort, "generate_case", fail_on_second)  # where write_cohort looks it up
    out = tmp_path / "partial"
    with pytest.raises(RuntimeError, match="boom"):
        write_cohort(out, 3, seed=0, config=TINY, verbose=False)
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    # the finished case is complete; no index (dataset.json, cohort.csv) claims the others
    assert names == ["imagesTr/case_000.nii.gz", "labelsTr/case_000.nii.gz"]
    with gzip.open(out / "imagesTr" / "case_000.nii.gz") as f:
        assert len(f.read()) == 352 + 4 * np.prod(TINY.shape)
    assert not [p for p in out.rglob(".*") if p.is_file()], "temporary files left behind"


def test_a_cohort_is_written_once_and_another_in_its_folder_is_refused(tmp_path, capsys):
    config = dataclasses.replace(scoring_cohort_config(4), shape=TINY.shape)
    dataset = write_cohort_once(tmp_path, 4, 7, config)
    assert "4 cases, 1 PNI+" in capsys.readouterr().out  # one block of 4: round(44/128 * 4) positives
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert write_cohort_once(tmp_path, 4, 7, config) == dataset and capsys.readouterr().out == ""
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == written
    assert np.asarray(nib.load(tmp_path / "imagesTr" / "case_000.nii.gz").dataobj).dtype == np.int16
    with pytest.raises(ValueError, match=r"holds another synthetic cohort \(seed differ\)"):
        write_cohort_once(tmp_path, 4, 8, config)
    with pytest.raises(ValueError, match=r"\(config, n_cases differ\)"):
        write_cohort_once(tmp_path, 5, 7, scoring_cohort_config(5))
    dataset.unlink()  # as an interrupted run leaves it: written again
    write_cohort_once(tmp_path, 4, 8, config)
    assert json.loads(dataset.read_text())["generator"]["seed"] == 8


def test_written_files_are_readable_by_others(tiny_cohort):
    for path in tiny_cohort.rglob("*"):
        if path.is_file():
            assert os.stat(path).st_mode & 0o044 == 0o044, path


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        write_cohort(folder, 3, seed=7, config=TINY, verbose=False)
        COHORT_SUMMARY.write_text(json.dumps(cohort_summary(Path(folder)), indent=1) + "\n")
    print(f"wrote {COHORT_SUMMARY}")


def test_a_noise_free_twin_has_the_same_phantom_labels_and_signs_without_the_noise():
    noisy_config = dataclasses.replace(scoring_cohort_config(2), shape=TINY.shape)
    twin_config = dataclasses.replace(scoring_cohort_config(2, noise_free=True), shape=TINY.shape)
    noisy, twin = generate_case(0, 3, noisy_config), generate_case(0, 3, twin_config)
    assert np.array_equal(noisy.label, twin.label) and np.array_equal(noisy.affine, twin.affine)
    differ = {k for k in noisy.record if noisy.record[k] != twin.record[k]}
    assert differ == {"snr"} and twin.record["snr"] == NOISE_FREE_SNR
    liver = noisy.label == 1
    residual = noisy.image[liver] - twin.image[liver]
    # the twin is the noisy image's mean: the difference is the noise (sigma = intensity scale / SNR), centred
    assert residual.std() == pytest.approx(noisy.record["intensity_scale"] / noisy.record["snr"], rel=0.1)
    assert abs(residual.mean()) < 0.2 * residual.std()
