"""DICOM folders as users bring them: series choice, geometry refusals, nested layouts and DICOMDIR exports.

Real files from pydicom's test data; awkward series are written from them here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from neonet_ext.data import find_cases
from neonet_ext.data.dicom import MAX_TILT_DEGREES, read_series, series_geometry
from neonet_ext.transforms import INPUT_WARNINGS, LoadScan, LoadScand

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
DICOMDIR_TESTS = TEST_FILES / "dicomdirtests"
CT_SERIES = DICOMDIR_TESTS / "98892001" / "CT5N"  # 5 CT slices 2.5 mm apart
THREE_SERIES = DICOMDIR_TESTS / "98892003" / "MR2"  # two 3-plane pilots and a localizer
PROJECTIONS = DICOMDIR_TESTS / "98892003" / "MR700"  # angiography projections, each in its own orientation
GAP_SERIES = DICOMDIR_TESTS / "77654033" / "CT2"  # 3 slices 1.25 mm apart and one 200 mm away
CD_EXPORT = DICOMDIR_TESTS / "TINY_ALPHA"  # DICOMDIR + PT000000/ST000000/SE000000, images without geometry
SEGMENTATION = TEST_FILES / "liver_1frame.dcm"  # a DICOM SEG object


def ct_copy(tmp_path: Path, name: str = "ct") -> Path:
    folder = tmp_path / name
    shutil.copytree(CT_SERIES, folder)
    return folder


def slices_by_position(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file()]
    return sorted(files, key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))


def edit(path: Path, change) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


def test_a_series_loads_with_what_was_read_in_its_meta_data():
    image = LoadScan()(CT_SERIES)
    assert tuple(image.shape) == (1, 16, 16, 5)
    assert image.pixdim[2].item() == pytest.approx(2.5)
    header = pydicom.dcmread(next(CT_SERIES.iterdir()), stop_before_pixels=True)
    assert image.meta["series_uid"] == header.SeriesInstanceUID
    assert image.meta["series_description"] == header.SeriesDescription
    assert image.meta["modality"] == "CT" and image.meta["sop_class"] == "CT Image Storage"
    assert image.meta[INPUT_WARNINGS] == ["only 5 slices: the liver may not fit in the volume"]


def test_several_series_in_a_folder_are_refused_unless_one_is_chosen():
    with pytest.raises(ValueError, match="3 image series in one folder") as error:
        LoadScan()(THREE_SERIES)
    assert str(error.value).startswith(str(THREE_SERIES))
    assert error.value.args[0].count("T/S/C RF FAST PILOT") == 2 and "FAST LOCALIZER" in str(error.value)

    localizer = LoadScand("image")({"image": str(THREE_SERIES), "series": "localizer"})["image"]
    assert localizer.meta["series_description"] == "FAST LOCALIZER"
    uid = localizer.meta["series_uid"]
    assert LoadScand("image", series=uid)({"image": str(THREE_SERIES)})["image"].meta["series_uid"] == uid
    with pytest.raises(ValueError, match="'PILOT' names several"):
        LoadScan()(THREE_SERIES, series="PILOT")
    with pytest.raises(ValueError, match="'HBP' names none"):
        LoadScan()(THREE_SERIES, series="HBP")


@pytest.mark.parametrize(
    "folder, phrase",
    [(GAP_SERIES, "slice spacing not uniform: 1.25 mm, but 202.50 mm"),
     (PROJECTIONS, "different orientations"),
     (CD_EXPORT / "PT000000" / "ST000000" / "SE000000", "lack position, orientation or pixel spacing")],
)
def test_real_series_that_are_not_one_straight_uniform_stack_are_refused(folder, phrase):
    with pytest.raises(ValueError, match=phrase) as error:
        LoadScan()(folder)
    assert str(error.value).startswith(str(folder))


def test_a_missing_slice_is_refused(tmp_path):
    folder = ct_copy(tmp_path)
    slices_by_position(folder)[2].unlink()
    with pytest.raises(ValueError, match=r"2.50 mm, but 5.00 mm after slice 2 of 4 \(a missing slice\?\)"):
        LoadScan()(folder)


def test_a_duplicated_slice_is_refused(tmp_path):
    folder = ct_copy(tmp_path)
    copy = folder / "copy_of_slice"
    shutil.copy(slices_by_position(folder)[1], copy)
    edit(copy, lambda ds: setattr(ds, "SOPInstanceUID", generate_uid()))
    with pytest.raises(ValueError, match="two images at one position .*a duplicated slice"):
        LoadScan()(folder)


def test_a_time_series_is_refused(tmp_path):
    folder = ct_copy(tmp_path)
    for path in list(folder.iterdir()):
        shutil.copy(path, folder / f"{path.name}_t2")
    with pytest.raises(ValueError, match="2 images at each position"):
        LoadScan()(folder)


@pytest.mark.parametrize("degrees, refused", [(15.0, True), (0.5, False)])
def test_a_tilted_stack_is_refused(tmp_path, degrees, refused):
    folder = ct_copy(tmp_path)
    shift = np.tan(np.radians(degrees))
    for path in slices_by_position(folder):
        def tilt(ds):
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y + shift * z, z]
        edit(path, tilt)
    if refused:
        with pytest.raises(ValueError, match=r"tilted 15.0 degrees"):
            LoadScan()(folder)
    else:
        assert degrees < MAX_TILT_DEGREES
        assert LoadScan()(folder).shape[-1] == 5


def test_multi_frame_objects_and_missing_spacing_are_refused(tmp_path):
    cine = ct_copy(tmp_path, "cine")
    for path in cine.iterdir():
        edit(path, lambda ds: setattr(ds, "NumberOfFrames", 16))
    with pytest.raises(ValueError, match="multi-frame object \\(16 frames"):
        LoadScan()(cine)
    no_spacing = ct_copy(tmp_path, "no_spacing")
    for path in no_spacing.iterdir():
        edit(path, lambda ds: delattr(ds, "PixelSpacing"))
    with pytest.raises(ValueError, match="5 of 5 images lack position, orientation or pixel spacing"):
        LoadScan()(no_spacing)


def test_non_image_objects_are_left_out_and_named(tmp_path):
    with_seg = ct_copy(tmp_path)
    shutil.copy(SEGMENTATION, with_seg / "seg.dcm")
    series, left_out = read_series(with_seg)
    assert len(series) == 1 and left_out == ["seg.dcm: Segmentation Storage (not an image)"]
    assert LoadScan()(with_seg).shape[-1] == 5

    only_seg = tmp_path / "only_seg"
    only_seg.mkdir()
    shutil.copy(SEGMENTATION, only_seg / "seg.dcm")
    with pytest.raises(ValueError, match="no DICOM image series in this folder; it holds seg.dcm: Segmentation Storage"):
        LoadScan()(only_seg)


def test_series_are_sorted_along_the_slice_normal_whatever_the_file_names(tmp_path):
    folder = ct_copy(tmp_path)
    for i, path in enumerate(reversed(slices_by_position(folder))):
        path.rename(folder / f"im{i}")
    series = read_series(folder)[0][0]
    series_geometry(series)
    positions = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in series.files]
    assert positions == sorted(positions)
    np.testing.assert_array_equal(LoadScan()(folder).numpy(), LoadScan()(CT_SERIES).numpy())


def test_nested_series_and_a_cd_export_are_found_and_named_by_their_path(tmp_path):
    root = tmp_path / "inputs"
    shutil.copytree(CD_EXPORT, root / "cd")
    shutil.copytree(CT_SERIES, root / "patient_7" / "study_1" / "ct")
    shutil.copytree(THREE_SERIES, root / "patient_7" / "study_1" / "pilots")
    items = find_cases(root)
    assert [item["case_id"] for item in items] == [
        "cd_PT000000_ST000000_SE000000", "patient_7_study_1_ct", "patient_7_study_1_pilots"]
    assert items[1]["image"] == str(root / "patient_7" / "study_1" / "ct")


@pytest.mark.parametrize("name", ["DICOMDIR", "renamed_index.dcm", "renamed_index"])
def test_a_dicomdir_given_as_an_image_gets_a_one_line_message(name, tmp_path):
    """Known by its name, else by its header (its media storage SOP class)."""
    dicomdir = CD_EXPORT / "DICOMDIR" if name == "DICOMDIR" else shutil.copy(CD_EXPORT / "DICOMDIR", tmp_path / name)
    with pytest.raises(ValueError) as error:
        LoadScan()(dicomdir)
    assert str(error.value) == f"{dicomdir}: a DICOMDIR (the index of a CD export), not an image; give the folder that holds it."


def test_a_file_named_dcm_without_the_dicm_magic_is_not_taken_for_a_dicomdir(tmp_path):
    fake = tmp_path / "notes.dcm"
    fake.write_bytes(b"not DICOM at all")
    with pytest.raises(Exception) as error:
        LoadScan()(fake)
    assert "DICOMDIR" not in str(error.value)
