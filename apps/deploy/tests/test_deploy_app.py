"""End-to-end tests of the NeoNet MONAI Deploy application, against the bundles' own runs.

Run from the repository root with the deploy environment (``bash apps/deploy/install.sh``):

    /work/main/.venv-deploy/bin/python -m pytest apps/deploy/tests -x -q

The tests write a DICOM MR series from a synthetic case (one file per slice, shuffled, with
non-square pixels and a rescale intercept), run the application for real (a subprocess, as a
MAP would), read its DICOM SEG, report and JSON back, and compare them with what
``python -m monai.bundle run`` of the NeoSeg and NeoCls bundles gives for the same input.
About two minutes on two CPU cores; nothing is written under ``bundles/``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import EncapsulatedPDFStorage, SegmentationStorage

HERE = Path(__file__).resolve().parent
APP_DIR = HERE.parent / "neonet_app"
REPO = HERE.parents[2]
BUNDLES = REPO / "bundles"
SAMPLE = BUNDLES / "neoseg" / "sample_data" / "imagesTr"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(APP_DIR))

from dicom_series import SeriesInfo, series_affine_ras, write_mr_series  # noqa: E402

LIVER, TUMOUR = 1, 2
# The app reads the series with pydicom (the SDK's operators), the bundle with ITK: the voxel values are
# the same, the affines may differ in the last digits, which could move a voxel across a resampling
# boundary. Seen: identical maps; allowed: 1 voxel in 1000 and a Dice of 0.99 per label.
MIN_AGREEMENT, MIN_DICE = 0.999, 0.99
PROBABILITY_ATOL = 1e-4  # predictions.csv keeps 6 decimals


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("NEONET_BUNDLES_DIR", None)  # the repository's bundles, whatever the caller's shell says
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    proc.wall_s = time.perf_counter() - start  # type: ignore[attr-defined]
    return proc


def _app(input_path: Path, output: Path, cwd: Path) -> subprocess.CompletedProcess:
    # no `ulimit -s 32768` needed here: __main__ raises the stack limit and re-executes itself
    return _run([sys.executable, str(APP_DIR), "-i", str(input_path), "-o", str(output)], cwd)


def _bundle(config: str, dataset_dir: Path, output: Path, cwd: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLES / config),
                 "--dataset_dir", str(dataset_dir), "--output_dir", str(output)], cwd)


def _ok(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


def _predictions(csv_path: Path) -> dict[str, dict[str, str]]:
    with open(csv_path, newline="") as f:
        return {row["case"]: row for row in csv.DictReader(f)}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _bundle_files() -> set[str]:
    return {str(Path(root, name).relative_to(BUNDLES)) for root, _, files in os.walk(BUNDLES) for name in files
            if "__pycache__" not in root}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    before = _bundle_files()
    folder = tmp_path_factory.mktemp("deploy")
    yield folder
    assert _bundle_files() == before, "the tests wrote into bundles/"


@pytest.fixture(scope="module")
def series(work: Path) -> SeriesInfo:
    # the series in its own subfolder: the bundles take a folder of cases, one series a subfolder
    return write_mr_series(SAMPLE / "case_000.nii.gz", work / "dicom_in" / "hbp_series", row_spacing_scale=0.92)


@pytest.fixture(scope="module")
def app_dicom(work: Path, series: SeriesInfo) -> Path:
    out = work / "app_dicom"
    proc = _app(series.folder, out, work)
    _ok(proc, "the app on the DICOM series")
    print(f"\napp, DICOM series {series.shape}: {proc.wall_s:.1f} s")
    return out


@pytest.fixture(scope="module")
def bundle_dicom(work: Path, series: SeriesInfo) -> dict[str, Path]:
    neoseg, neocls = work / "neoseg_dicom", work / "neocls_dicom"
    for config, out in (("neoseg/configs/inference.json", neoseg), ("neocls/configs/inference.json", neocls)):
        proc = _bundle(config, series.folder.parent, out, work)
        _ok(proc, f"monai.bundle run {config}")
        print(f"\nbundle {config}, DICOM: {proc.wall_s:.1f} s")
    return {"neoseg": neoseg, "neocls": neocls}


def _source_datasets(series: SeriesInfo) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(series.folder / f"{uid}.dcm", stop_before_pixels=True) for uid in series.sop_uids]


def test_dicom_seg_refers_to_the_series(app_dicom: Path, series: SeriesInfo) -> None:
    seg = hd.seg.segread(app_dicom / "seg.dcm")
    source = _source_datasets(series)[0]
    assert seg.SOPClassUID == SegmentationStorage and seg.Modality == "SEG"
    assert seg.StudyInstanceUID == series.study_uid
    assert seg.FrameOfReferenceUID == series.frame_of_reference_uid
    assert seg.PatientID == source.PatientID and seg.PatientName == source.PatientName
    assert seg.SeriesInstanceUID != series.series_uid
    referenced = seg.ReferencedSeriesSequence
    assert [r.SeriesInstanceUID for r in referenced] == [series.series_uid]
    assert {i.ReferencedSOPInstanceUID for i in referenced[0].ReferencedInstanceSequence} <= set(series.sop_uids)
    labels = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    assert {k: s.SegmentLabel for k, s in labels.items()} == {LIVER: "liver", TUMOUR: "tumour"}
    assert labels[LIVER].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Liver"
    assert labels[TUMOUR].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Neoplasm"
    assert all(s.SegmentAlgorithmType == "AUTOMATIC" for s in labels.values())


def test_dicom_seg_frames_lie_on_the_source_slices(app_dicom: Path, series: SeriesInfo) -> None:
    seg = pydicom.dcmread(app_dicom / "seg.dcm")
    sources = {ds.SOPInstanceUID: ds for ds in _source_datasets(series)}
    first = next(iter(sources.values()))
    assert (seg.Rows, seg.Columns) == (first.Rows, first.Columns)
    shared = seg.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(shared.PlaneOrientationSequence[0].ImageOrientationPatient,
                               first.ImageOrientationPatient, atol=1e-6)
    measures = shared.PixelMeasuresSequence[0]
    # non-square pixels: a writer that swapped row and column spacing would fail here
    assert float(first.PixelSpacing[0]) != pytest.approx(float(first.PixelSpacing[1]), abs=0.05)
    np.testing.assert_allclose(measures.PixelSpacing, first.PixelSpacing, rtol=1e-6)
    assert float(measures.SliceThickness) == pytest.approx(float(first.SliceThickness), rel=1e-6)
    frames_per_segment = {LIVER: 0, TUMOUR: 0}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        np.testing.assert_allclose(frame.PlanePositionSequence[0].ImagePositionPatient,
                                   sources[uid].ImagePositionPatient, atol=1e-4)
        frames_per_segment[int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)] += 1
    assert frames_per_segment[LIVER] > 10 and frames_per_segment[TUMOUR] > 0


def test_dicom_seg_masks_match_the_neoseg_bundle(app_dicom: Path, bundle_dicom: dict, series: SeriesInfo) -> None:
    seg = hd.seg.segread(app_dicom / "seg.dcm")
    # frames left out because they were empty come back as background
    label = seg.get_pixels_by_source_instance(series.sop_uids, combine_segments=True)  # (slices, rows, columns)
    assert label.shape == series.shape[::-1]
    ours = np.transpose(label, (2, 1, 0))  # (columns, rows, slices), the NIfTI grid of the series
    reference = nib.load(bundle_dicom["neoseg"] / "hbp_series" / "hbp_series_seg.nii.gz")
    # the bundle's label map is on the series grid too: same shape and affine as the tags say
    np.testing.assert_allclose(reference.affine, series.affine_ras, atol=1e-3)
    np.testing.assert_allclose(series.affine_ras, series_affine_ras(_source_datasets(series)), atol=1e-9)
    theirs = np.asarray(reference.dataobj)
    assert theirs.shape == ours.shape
    assert (ours == theirs).mean() >= MIN_AGREEMENT
    for value in (LIVER, TUMOUR):
        assert (theirs == value).any(), f"the bundle found no label {value}: the comparison would prove nothing"
        assert _dice(ours == value, theirs == value) >= MIN_DICE, f"label {value}"
    # the app's own NIfTI copy of the label map is NeoSeg's, on the same grid
    app_nifti = nib.load(app_dicom / "hbp_series" / "hbp_series_seg.nii.gz")
    np.testing.assert_array_equal(np.asarray(app_nifti.dataobj), ours)


def test_dicom_probability_matches_the_neocls_bundle(app_dicom: Path, bundle_dicom: dict, series: SeriesInfo) -> None:
    result = json.loads((app_dicom / "pni_result.json").read_text())
    row = _predictions(bundle_dicom["neocls"] / "predictions.csv")["hbp_series"]
    assert row["error"] == "" and row["tumour_found"] == "True"
    assert result["tumour_found"] is True
    assert result["pni_probability"] == pytest.approx(float(row["pni_probability"]), abs=PROBABILITY_ATOL)
    assert result["tumour_volume_ml"] == pytest.approx(float(row["tumour_volume_ml"]), rel=1e-3)
    assert result["input_type"] == "dicom" and result["case"] == "hbp_series"
    assert result["series_instance_uid"] == series.series_uid and result["study_instance_uid"] == series.study_uid
    assert result["refused"] == "" and result["measurements"]["series_uid"] == series.series_uid  # the gate saw the series
    assert result["measurements"]["latent_distance"] == pytest.approx(float(row["latent_distance"]), rel=1e-4)
    assert result["labels"] == {"1": "liver", "2": "tumour"}
    for name in ("seg_dicom", "report_dicom", "label_map", "report_png", "attention", "tlcr_patch"):
        assert (app_dicom / result["files"][name]).is_file(), name
    assert not list(app_dicom.rglob(".*.tmp*")), "a temporary file of an atomic write was left behind"


def test_a_series_the_input_gate_refuses_gets_its_reasons_and_no_probability(work: Path) -> None:
    """A real brain MR (nibabel's test volume) written as an MR series: the series selector takes it, and
    the bundle's input gate refuses it; the JSON gives the reasons, the report's title says it was refused."""
    brain = write_mr_series(Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii", work / "brain_in" / "brain",
                            rescale_intercept=-1000.0)  # its values reach -610
    out = work / "app_brain"
    _ok(_app(brain.folder, out, work), "the app on a brain MR series")
    result = json.loads((out / "pni_result.json").read_text())
    # NeoSeg draws a "liver" with a "tumour" inside: the patch's look gives the brain away
    assert result["pni_probability"] is None and result["tumour_found"] is True
    assert result["refused"].startswith("the patch does not look like the HBP MRI NeoNet was trained on")
    threshold = json.loads((BUNDLES / "neocls" / "models" / "latent_reference.json").read_text())["threshold"]
    assert result["measurements"]["series_uid"] == brain.series_uid and result["measurements"]["latent_distance"] > threshold
    assert pydicom.dcmread(out / "report.dcm").DocumentTitle == "NeoNet PNI report: refused by the input gate"


def test_dicom_report_is_an_encapsulated_pdf_in_the_study(app_dicom: Path, series: SeriesInfo) -> None:
    from pypdf import PdfReader

    report = pydicom.dcmread(app_dicom / "report.dcm")
    result = json.loads((app_dicom / "pni_result.json").read_text())
    assert report.SOPClassUID == EncapsulatedPDFStorage and report.Modality == "DOC"
    assert report.StudyInstanceUID == series.study_uid and report.PatientID == "NEONET-0001"
    assert report.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert f"{result['pni_probability']:.3f}" in report.DocumentTitle
    document = bytes(report.EncapsulatedDocument)[: int(report.EncapsulatedDocumentLength)]
    assert document.startswith(b"%PDF")
    import io

    assert len(PdfReader(io.BytesIO(document)).pages) == 1


def test_nifti_input_matches_the_neocls_bundle(work: Path) -> None:
    folder = work / "nifti_in"
    folder.mkdir()
    image = shutil.copy(SAMPLE / "case_001.nii.gz", folder / "case_001.nii.gz")
    out, bundle_out = work / "app_nifti", work / "neocls_nifti"
    proc = _app(Path(image), out, work)
    _ok(proc, "the app on a NIfTI file")
    print(f"\napp, NIfTI: {proc.wall_s:.1f} s")
    bundle = _bundle("neocls/configs/inference.json", folder, bundle_out, work)
    _ok(bundle, "monai.bundle run neocls on the NIfTI")
    result = json.loads((out / "pni_result.json").read_text())
    row = _predictions(bundle_out / "predictions.csv")["case_001"]
    assert result["input_type"] == "nifti" and result["case"] == "case_001"
    assert result["tumour_found"] is (row["tumour_found"] == "True") is True
    assert result["pni_probability"] == pytest.approx(float(row["pni_probability"]), abs=PROBABILITY_ATOL)
    ours = nib.load(out / result["files"]["label_map"])
    theirs = nib.load(bundle_out / "case_001" / "case_001_seg.nii.gz")
    np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(theirs.dataobj))
    np.testing.assert_allclose(ours.affine, nib.load(image).affine, atol=1e-5)  # on the input's grid
    assert not (out / "seg.dcm").exists() and not (out / "report.dcm").exists()  # no series to refer to


def test_folder_without_dicom_is_refused_by_name(work: Path) -> None:
    folder = work / "no_dicom"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub" / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    proc = _app(folder, work / "out_no_dicom", work)
    assert proc.returncode == 2
    assert f"Input folder {folder} holds no DICOM files" in proc.stderr
    assert "notes.txt" in proc.stderr
    assert not (work / "out_no_dicom" / "pni_result.json").exists()


def test_series_of_another_modality_fails_naming_the_input(work: Path, series: SeriesInfo) -> None:
    folder = work / "ct_only"
    folder.mkdir()
    for uid in series.sop_uids[:4]:
        ds = pydicom.dcmread(series.folder / f"{uid}.dcm")
        ds.Modality = "CT"
        ds.save_as(folder / f"{uid}.dcm")
    proc = _app(folder, work / "out_ct", work)
    assert proc.returncode == 1
    assert f"Input {folder}: no DICOM series matches" in proc.stderr and "CT 'T1 HBP 20 min' (4 instances)" in proc.stderr
    assert not (work / "out_ct" / "pni_result.json").exists()


# --- the pieces, without running the graph ---------------------------------------------------------


def test_resolve_input_kinds(tmp_path: Path) -> None:
    from neonet_operators import InputError, resolve_input

    nifti = tmp_path / "one" / "Case.A.nii.gz"
    nifti.parent.mkdir()
    nifti.write_bytes(b"")
    assert resolve_input(nifti).kind == "nifti" and resolve_input(nifti).case == "Case.A"
    assert resolve_input(nifti.parent).path == nifti  # a MAP's input folder holding one NIfTI
    (tmp_path / "one" / "b.nii").write_bytes(b"")
    with pytest.raises(InputError, match="holds 2 NIfTI files"):
        resolve_input(nifti.parent)
    with pytest.raises(InputError, match=f"Input {tmp_path / 'missing'} does not exist"):
        resolve_input(tmp_path / "missing")
    other = tmp_path / "scan.png"
    other.write_bytes(b"")
    with pytest.raises(InputError, match="is not a NIfTI file"):
        resolve_input(other)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="it is empty"):
        resolve_input(empty)


class _Instance:
    def __init__(self, ds: pydicom.Dataset) -> None:
        self.ds = ds

    def get_native_sop_instance(self) -> pydicom.Dataset:
        return self.ds


class _Series:
    def __init__(self, datasets: list[pydicom.Dataset]) -> None:
        self.instances = [_Instance(ds) for ds in datasets]
        self.SeriesInstanceUID = str(datasets[0].SeriesInstanceUID)

    def get_sop_instances(self) -> list[_Instance]:
        return self.instances


def test_series_geometry_fits_the_tags_and_refuses_gaps(series: SeriesInfo) -> None:
    from neonet_operators.geometry import series_geometry

    datasets = _source_datasets(series)
    geometry = series_geometry(_Series(datasets), "test series")
    np.testing.assert_allclose(geometry.affine_ras, series.affine_ras, atol=1e-9)
    assert geometry.shape == series.shape and geometry.sop_instance_uids == tuple(series.sop_uids)
    with_gap = datasets[:10] + datasets[11:]
    with pytest.raises(ValueError, match="test series: slices are not evenly spaced"):
        series_geometry(_Series(with_gap), "test series")


@pytest.mark.parametrize("labels", [(), (LIVER,)], ids=["nothing found", "liver only"])
def test_seg_writer_without_tumour(tmp_path: Path, series: SeriesInfo, labels: tuple[int, ...]) -> None:
    from monai.deploy.core import Fragment, Image
    from neonet_operators import DICOMSegWriterOperator

    datasets = [pydicom.dcmread(series.folder / f"{uid}.dcm") for uid in series.sop_uids]
    label = np.zeros(series.shape[::-1], dtype=np.uint8)
    for value in labels:
        label[20:30, 40:80, 50:90] = value
    writer = DICOMSegWriterOperator(Fragment(), output_folder=tmp_path, algorithm_version="0", name="w")
    path = writer.write(Image(label, {"sop_instance_uids": tuple(series.sop_uids)}), _Series(datasets))
    seg = hd.seg.segread(path)
    back = seg.get_pixels_by_source_instance(series.sop_uids, combine_segments=True)
    np.testing.assert_array_equal(back, label)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["liver", "tumour"]
    with pytest.raises(ValueError, match="not the series' slices"):
        writer.write(Image(label, {"sop_instance_uids": tuple(reversed(series.sop_uids))}), _Series(datasets))


def test_manifest_passes_the_packagers_reader() -> None:
    # `monai-deploy package` cannot run here (it fetches an artifact list from the internet, then needs
    # Docker), but its own configuration reader can check app.yaml
    from holoscan_cli.packager.config_reader import ApplicationConfiguration

    config = ApplicationConfiguration()
    config.read(APP_DIR / "app.yaml")
    assert config.title().startswith("NeoNet PNI")
    resources = config._resource_object
    assert resources["memory"] == "4Gi" and resources["cpu"] >= 1
    assert (APP_DIR / "__main__.py").is_file() and (APP_DIR / "requirements.txt").is_file()
