"""Atomic writing: a failed write leaves the old file whole and no debris."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, SaveImage

from neonet_ext.utils.io import atomic_write
from neonet_ext.utils.writers import AtomicNibabelWriter


def test_atomic_write_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write(target, lambda p: p.write_text("new"))
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def broken(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_temporary_file_keeps_the_nifti_suffix(tmp_path):
    seen = []
    atomic_write(tmp_path / "a.nii.gz", lambda p: (seen.append(p.name), p.write_bytes(b"x")))
    assert seen[0].endswith(".nii.gz") and seen[0] != "a.nii.gz"


def test_atomic_nibabel_writer_with_save_image(tmp_path):
    image = MetaTensor(torch.arange(60, dtype=torch.float32).reshape(1, 3, 4, 5), meta={"filename_or_obj": "c.nii.gz"})
    SaveImage(output_dir=tmp_path, writer=AtomicNibabelWriter, separate_folder=False, print_log=False)(image)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["c_trans.nii.gz"]
    loaded = LoadImage(image_only=True)(tmp_path / files[0])
    torch.testing.assert_close(loaded, image[0])


def test_written_files_are_not_owner_only(tmp_path):
    target = atomic_write(tmp_path / "shared.txt", lambda p: p.write_text("x"))
    assert target.stat().st_mode & 0o044 == 0o044
