"""User inputs: case discovery and a corpus of bad files, each failing with its name and the problem.

The corpus mixes files written here with real malformed and multi-file data shipped
inside nibabel and pydicom, so the errors are those a user would meet, not only ones
this project's own writers can produce.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged

from neonet_ext.data import datalist_from, describe_case_error, find_cases
from neonet_ext.transforms import CheckImage, CheckImaged, LoadScand, image_problem

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
PYDICOM_DATA = Path(pydicom.__file__).parent / "data" / "test_files"
#: a real 5-slice 16x16 CT series; its files have no suffix, only the DICM magic
CT_SERIES = PYDICOM_DATA / "dicomdirtests" / "98892001" / "CT5N"


def write_nifti(path: Path, array: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, np.diag([0.8, 0.8, 2.5, 1.0])), path)
    return path


def volume(shape=(12, 10, 8), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 100, shape).astype(np.float32)


def load_and_check():
    """NeoSeg's loading: NIfTI files, and DICOM folders read as their one checked image series."""
    return Compose([LoadScand("image"), CheckImaged("image")])


# ----------------------------------------------------------------- the bad-input corpus

#: case id -> phrase its error must contain; None for the inputs that load and pass
CORPUS = {
    "good": None,
    "ct_series": None,
    "truncated": "Compressed file ended",
    "text": "not a gzip file",
    "truncated_series": "pixel data is less than expected",
    "garbage_series": "no DICOM image series in this folder; it holds IM0001.dcm: unreadable DICOM",
    "flat": "expected a single 3D volume, got a 2D image",
    "one_slice": "expected a single 3D volume, got a 2D image",
    "one_slice_series": "expected a single 3D volume, got a 2D image",
    "example4d": "expected a single 3D volume, got 2 channels",
    "zeros": "empty image (all voxels equal to 0)",
    "nan": "non-finite values: 2 NaN and 1 infinite",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    write_nifti(root / "good.nii.gz", volume())
    shutil.copytree(CT_SERIES, root / "ct_series")
    (root / "truncated.nii.gz").write_bytes((NIBABEL_DATA / "example4d.nii.gz").read_bytes()[:2000])
    (root / "text.nii.gz").write_text("patient 12, HBP phase, see scanner\n")
    (root / "truncated_series").mkdir()
    shutil.copy(PYDICOM_DATA / "MR_truncated.dcm", root / "truncated_series")
    (root / "garbage_series").mkdir()
    (root / "garbage_series" / "IM0001.dcm").write_bytes(np.random.default_rng(1).bytes(4096))
    write_nifti(root / "flat.nii.gz", volume((64, 64)))
    write_nifti(root / "one_slice.nii", volume((64, 64, 1)))
    (root / "one_slice_series").mkdir()
    shutil.copy(PYDICOM_DATA / "MR_small.dcm", root / "one_slice_series")
    shutil.copy(NIBABEL_DATA / "example4d.nii.gz", root)
    write_nifti(root / "zeros.nii.gz", np.zeros((12, 10, 8), np.float32))
    nan = volume()
    nan[0, 0, 0] = nan[5, 5, 5] = np.nan
    nan[1, 2, 3] = -np.inf
    write_nifti(root / "nan.nii.gz", nan)
    return root


def test_find_cases_lists_the_corpus(corpus):
    cases = find_cases(corpus)
    assert [c["case_id"] for c in cases] == sorted(CORPUS)
    by_id = {c["case_id"]: c["image"] for c in cases}
    assert by_id["ct_series"] == str(corpus / "ct_series")
    assert by_id["one_slice"] == str(corpus / "one_slice.nii")
    assert all(Path(c["image"]).is_absolute() for c in cases)


@pytest.mark.parametrize("case_id", sorted(k for k, v in CORPUS.items() if v))
def test_bad_input_fails_naming_file_and_problem(corpus, case_id):
    item = next(c for c in find_cases(corpus) if c["case_id"] == case_id)
    with pytest.raises(Exception) as raised:
        load_and_check()(item)
    message = describe_case_error(item, raised.value)
    assert message.startswith(f"{item['image']}: "), message
    assert CORPUS[case_id] in message
    assert message.count(item["image"]) <= 2, "the file name should not pile up"


def test_missing_file_is_named(tmp_path):
    item = {"image": str(tmp_path / "gone.nii.gz"), "case_id": "gone"}
    with pytest.raises(RuntimeError) as raised:
        load_and_check()(item)
    message = describe_case_error(item, raised.value)
    assert message.startswith(f"{item['image']}: ") and "No such file" in message


@pytest.mark.parametrize("case_id", ["good", "ct_series"])
def test_good_inputs_load_as_single_3d_volumes(corpus, case_id):
    item = next(c for c in find_cases(corpus) if c["case_id"] == case_id)
    image = load_and_check()(item)["image"]
    assert image.shape == ((1, 12, 10, 8) if case_id == "good" else (1, 16, 16, 5))
    assert image.meta["filename_or_obj"] == item["image"]


def test_check_errors_start_with_the_file_name(corpus):
    item = {"image": str(corpus / "zeros.nii.gz")}
    image = LoadImaged("image", ensure_channel_first=True)(item)["image"]
    with pytest.raises(ValueError, match=r"^/.*zeros\.nii\.gz: empty image"):
        CheckImage()(image)


# ----------------------------------------------------------------- find_cases


def dicom_series(folder: Path, suffix: str = "") -> Path:
    folder.mkdir(parents=True)
    for f in sorted(CT_SERIES.iterdir()):
        shutil.copy(f, folder / f"{f.name}{suffix}")
    return folder


def test_find_cases_reads_nifti_and_dicom_folders_and_skips_side_files(tmp_path):
    write_nifti(tmp_path / "b.nii.gz", volume())
    write_nifti(tmp_path / "A.NII", volume())
    dicom_series(tmp_path / "c_magic")
    dicom_series(tmp_path / "d_suffix", ".dcm")
    for side in [".hidden.nii.gz", "clinical.csv", "b.json", "README.txt"]:
        (tmp_path / side).write_text("x")
    (tmp_path / ".cache").mkdir()
    cases = find_cases(tmp_path)
    assert cases == [
        {"image": str(tmp_path / "A.NII"), "case_id": "A"},
        {"image": str(tmp_path / "b.nii.gz"), "case_id": "b"},
        {"image": str(tmp_path / "c_magic"), "case_id": "c_magic"},
        {"image": str(tmp_path / "d_suffix"), "case_id": "d_suffix"},
    ]


def test_find_cases_warns_about_what_it_skips(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", volume())
    (tmp_path / "scan.mha").write_bytes(b"\0" * 10)
    (tmp_path / "notes").mkdir()
    with pytest.warns(UserWarning, match=r"skipped notes/, scan\.mha"):
        assert [c["case_id"] for c in find_cases(tmp_path)] == ["a"]


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_cases(tmp_path / "nowhere")
    with pytest.raises(NotADirectoryError, match=r"a\.nii\.gz is not a folder"):
        find_cases(write_nifti(tmp_path / "a.nii.gz", volume()))


def test_folder_without_images_says_what_was_looked_for(tmp_path):
    with pytest.raises(ValueError, match=rf"{tmp_path} holds no images: looked for NIfTI .* DICOM .*empty"):
        find_cases(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "labels").mkdir()
    with pytest.raises(ValueError, match=r"holds no images.*it holds only: labels/"):
        find_cases(tmp_path)


def test_loose_dicom_files_ask_for_a_subfolder(tmp_path):
    for f in CT_SERIES.iterdir():
        shutil.copy(f, tmp_path)
    with pytest.raises(ValueError, match=r"holds no images.*5 DICOM file\(s\).*must be in a subfolder"):
        find_cases(tmp_path)


def test_duplicate_case_ids_name_both_files(tmp_path):
    write_nifti(tmp_path / "a.nii", volume())
    write_nifti(tmp_path / "a.nii.gz", volume())
    with pytest.raises(ValueError, match=r"'a' is given by both .*a\.nii and .*a\.nii\.gz"):
        find_cases(tmp_path)


# ----------------------------------------------------------------- datalist_from


def test_datalist_from_folder_or_json(tmp_path):
    write_nifti(tmp_path / "x.nii.gz", volume())
    dicom_series(tmp_path / "series")
    assert datalist_from(tmp_path) == datalist_from(tmp_path, "") == find_cases(tmp_path)

    listing = tmp_path / "lists" / "dataset.json"
    listing.parent.mkdir()
    listing.write_text(
        json.dumps({"training": [{"image": "x.nii.gz", "label": "x.nii.gz"}, {"image": "series", "case_id": "s1"}]})
    )
    items = datalist_from(tmp_path, listing, data_list_key="training")
    assert items == [
        {"image": str(tmp_path / "x.nii.gz"), "label": str(tmp_path / "x.nii.gz"), "case_id": "x"},
        {"image": str(tmp_path / "series"), "case_id": "s1"},
    ]
    # without dataset_dir, relative paths start at the JSON's folder, as in MONAI
    assert datalist_from(None, listing, "training")[0]["image"] == str(listing.parent / "x.nii.gz")


def test_datalist_from_rejects_duplicate_ids_and_no_input(tmp_path):
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps({"testing": [{"image": "p1/image.nii.gz"}, {"image": "p2/image.nii.gz"}]}))
    with pytest.raises(ValueError, match=r"'image' is given by both .*p1.* and .*p2.*give the items a 'case_id'"):
        datalist_from(datalist_file=listing)
    with pytest.raises(ValueError, match="dataset_dir .* or datalist_file"):
        datalist_from("", None)


# ----------------------------------------------------------------- describe_case_error


def test_describe_case_error_takes_the_innermost_cause():
    try:
        try:
            try:
                raise OSError("bad header")
            except OSError as e:
                raise RuntimeError("applying transform LoadImaged") from e
        except RuntimeError as e:
            raise RuntimeError("applying transform Compose") from e
    except RuntimeError as e:
        assert describe_case_error({"image": "/d/a.nii"}, e) == "/d/a.nii: bad header"
    assert describe_case_error({"image": "/d/a.nii"}, ValueError("/d/a.nii: empty image")) == "/d/a.nii: empty image"
    assert describe_case_error({}, KeyError()) == "image: KeyError"
    loaded = MetaTensor(torch.zeros(1), meta={"filename_or_obj": "/d/b.nii"})
    assert describe_case_error({"image": loaded}, ValueError("x")) == "/d/b.nii: x"


# ----------------------------------------------------------------- CheckImage on arrays


@pytest.mark.parametrize("kind", ["numpy", "tensor", "metatensor"])
def test_check_passes_volumes_through_uncopied(kind):
    x = volume()[None]
    x = {"numpy": x, "tensor": torch.from_numpy(x), "metatensor": MetaTensor(torch.from_numpy(x))}[kind]
    assert CheckImage()(x) is x
    assert CheckImaged("image")({"image": x})["image"] is x


@pytest.mark.parametrize(
    "shape, phrase",
    [
        ((1, 64, 64), "a 2D image"),
        ((1, 64, 1, 64), "a 2D image"),
        ((3, 8, 8, 8), "3 channels"),
        ((1, 8, 8, 8, 4), "a 4D image"),
        ((1, 8, 8, 8, 1), "4 spatial dims"),
        ((1, 8, 0, 8), "no voxels"),
        ((1, 1, 1, 1), "a single voxel"),
        ((64,), "no spatial dims"),
    ],
)
def test_check_rejects_anything_but_one_3d_volume(shape, phrase):
    message = image_problem(np.ones(shape, np.float32))
    assert message.startswith("expected a single 3D volume, got ") and phrase in message
    assert str(shape) in message


def test_check_values():
    x = torch.from_numpy(volume()[None])
    assert image_problem(x) is None
    x[0, 0, 0, :3] = torch.tensor([float("inf"), float("-inf"), float("nan")])
    assert image_problem(x) == "non-finite values: 1 NaN and 2 infinite among 960 voxels"
    assert image_problem(np.full((1, 8, 8, 8), 7, np.int16)) == "empty image (all voxels equal to 7)"
    assert image_problem(np.zeros((1, 8, 8, 8), bool)) == "empty image (all voxels equal to 0)"
    assert "complex" in image_problem(np.ones((1, 8, 8, 8), np.complex64))


def test_check_min_size_and_names():
    x = volume((16, 16, 5))[None]
    assert CheckImage(min_size=(8, 8, 4))(x) is x
    with pytest.raises(ValueError, match=r"^image: volume too small: \(16, 16, 5\) voxels, expected at least \(8, 8, 8\)"):
        CheckImage(min_size=8)(x)
    with pytest.raises(ValueError, match=r"^label: empty image"):
        CheckImaged(["image", "label"])({"image": x, "label": np.zeros_like(x)})
    assert CheckImaged(["image", "label"], allow_missing_keys=True)({"image": x})["image"] is x
    with pytest.raises(KeyError):
        CheckImaged(["image", "label"])({"image": x})
