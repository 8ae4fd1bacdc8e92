"""`make demo`'s job end to end, and its batch loop on bad input."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neonet_ext import demo
from neonet_ext.data.synthetic import SyntheticCohortConfig, write_cohort
from neonet_ext.labels import TUMOUR

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    write_cohort(out, 2, 3, SyntheticCohortConfig())
    return out


def test_demo_writes_patches_and_montage(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path), "--cases", "2", "--montage-cases", "2"]) == 0
    assert "2 of 2 cases cut into TLCR patches" in capsys.readouterr().out
    montage = tmp_path / "montage.png"
    assert montage.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for case in ("case_000", "case_001"):
        patch = nib.load(tmp_path / "tlcr" / f"{case}_tlcr.nii.gz")
        masks = nib.load(tmp_path / "tlcr" / f"{case}_tlcr_mask.nii.gz")
        label = nib.load(tmp_path / "cohort" / "labelsTr" / f"{case}.nii.gz")
        # channel last on disk: (X, Y, Z, 2)
        assert patch.shape[:3] == demo.TLCR_ROI_SIZE and patch.shape[-1] == 2
        tumour_mask = np.asarray(masks.dataobj)[..., 1]
        assert tumour_mask.sum() > 0 and masks.get_data_dtype() == np.uint8
        # the patch's affine puts its tumour voxels on the volume's tumour voxels
        ijk = np.argwhere(tumour_mask)[:5]
        world = nib.affines.apply_affine(patch.affine, ijk)
        back = np.rint(nib.affines.apply_affine(np.linalg.inv(label.affine), world)).astype(int)
        lab = np.asarray(label.dataobj)
        assert all(lab[tuple(v)] == TUMOUR for v in back)


def test_bad_cases_are_reported_and_the_batch_goes_on(tmp_path, cohort):
    good = {"image": str(cohort / "imagesTr" / "case_000.nii.gz"), "label": str(cohort / "labelsTr" / "case_000.nii.gz")}
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(Path(good["image"]).read_bytes()[:2000])
    not_nifti = tmp_path / "notes.nii.gz"
    not_nifti.write_bytes(gzip.compress(b"this is not an image"))
    four_d = tmp_path / "example4d.nii.gz"  # a real 4D file from nibabel's test data
    shutil.copy(NIBABEL_DATA / "example4d.nii.gz", four_d)
    other_label = str(cohort / "labelsTr" / "case_001.nii.gz")
    small_label = tmp_path / "small_label.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.uint8), np.eye(4)), small_label)
    datalist = [
        {"image": str(truncated), "label": good["label"]},
        {"image": str(not_nifti), "label": good["label"]},
        {"image": str(four_d), "label": str(four_d)},
        {"image": good["image"], "label": str(small_label)},
        {"image": str(tmp_path / "missing.nii.gz"), "label": other_label},
        good,
    ]
    kept, failures = demo.cut_patches(datalist, tmp_path / "out", demo.TLCR_ROI_SIZE, keep=3)
    assert len(kept) == 1 and kept[0]["case"] == "case_000"
    assert len(failures) == 5
    for line, item in zip(failures, datalist):
        assert line.startswith(item["image"])
    assert "spatial shapes differ" in failures[3]
    assert "(1, X, Y, Z)" in failures[2]
    assert (tmp_path / "out" / "case_000_tlcr.nii.gz").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["case_000_tlcr.nii.gz", "case_000_tlcr_mask.nii.gz"]


def test_case_report_page(tmp_path):
    from neonet_ext.data.synthetic import generate_case
    from neonet_ext.transforms import TLCR
    from neonet_ext.visualize import save_case_report

    case = generate_case(0, 5, SyntheticCohortConfig(shape=(64, 56, 24)))
    patch = TLCR(roi_size=(32, 32, 16))(case.image[None], case.label[None])
    attention = np.random.default_rng(0).uniform(size=(32, 32, 16))
    out = tmp_path / "case.png"
    spacing = np.abs(np.diag(case.affine)[:3])
    save_case_report(case.image, case.label, spacing, patch, attention, 0.731, "case_000", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and list(tmp_path.iterdir()) == [out]
    save_case_report(case.image, case.label, spacing, patch, np.zeros((32, 32, 16)), 0.0, "flat", out)
