"""Model-zoo form of the three bundles: releases, sharing by download, declared versions, exports."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from bundle_runs import REPO
from neonet_ext import zoo
from neonet_ext.utils.bundle import check_versions, parse_overrides

BUNDLES = REPO / "bundles"
NAMES = ["neocls", "neogen", "neoseg"]


def pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def monai_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """`python -m neonet_ext.zoo` as `make release` runs it: every bundle, into one folder."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "neonet_ext.zoo", "--out", str(out)], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return out


# ------------------------------------------------------------------ the docs' figures of the shipped weights


@pytest.mark.parametrize("name", NAMES)
def test_the_docs_quote_the_shipped_weights_sha1(name):
    """Each `<file>.pt` or `.json` (..., sha1 `<40 hex digits>`) of a bundle's docs is that file of its models/."""
    import hashlib
    import re

    docs = (BUNDLES / name / "docs" / "README.md").read_text()
    quoted = re.findall(r"`(?:models/)?([\w.]+\.(?:pt|json))`\s*\([^()`]*sha1\s+`([0-9a-f]{40})`", docs)
    shipped = {p.name for p in (BUNDLES / name / "models").iterdir() if p.suffix in (".pt", ".json")}
    assert {file for file, _ in quoted} == shipped
    for file, sha1 in quoted:
        assert hashlib.sha1((BUNDLES / name / "models" / file).read_bytes()).hexdigest() == sha1, file


# ------------------------------------------------------------------ declared versions


@pytest.mark.parametrize("name", NAMES)
def test_metadata_declares_the_pinned_versions(name):
    meta = json.loads((BUNDLES / name / "configs" / "metadata.json").read_text())
    pinned = pins()
    assert meta["monai_version"] == pinned["monai"] and meta["pytorch_version"] == pinned["torch"]
    assert meta["numpy_version"] == pinned["numpy"]
    for package, version in meta["required_packages_version"].items():
        expected = __import__("neonet_ext").__version__ if package == "neonet-ext" else pinned[package]
        assert version == expected, package
    assert meta["version"] in meta["changelog"] and list(meta["changelog"])[0] == meta["version"]  # newest first
    for required in ("LICENSE", "configs/metadata.json", "configs/inference.json", "docs/README.md",
                     "docs/data_license.txt", "configs/logging.conf"):
        assert (BUNDLES / name / required).is_file(), required


def write_meta(bundle: Path, **changes) -> None:
    meta_file = bundle / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta.update(changes)
    meta_file.write_text(json.dumps(meta))


def test_check_versions_reports_other_releases_and_missing_packages(tmp_path):
    bundle = tmp_path / "neoseg"
    shutil.copytree(BUNDLES / "neoseg" / "configs", bundle / "configs")
    assert check_versions(bundle) == []
    installed_monai = __import__("monai").__version__
    patch_release = ".".join(installed_monai.split(".")[:2] + ["99"])
    write_meta(bundle, monai_version=patch_release)  # a patch release apart: no warning
    assert check_versions(bundle) == []
    write_meta(bundle, monai_version="1.3.0", required_packages_version={"no-such-package-xyz": "1.0"})
    with pytest.warns(UserWarning) as caught:
        messages = check_versions(bundle)
    assert len(messages) == 2 and [str(w.message) for w in caught] == messages
    assert f"monai {installed_monai} is installed (tested with 1.3.0)" in messages[0]
    assert messages[0].startswith("NeoSeg ")
    assert "no-such-package-xyz is not installed (tested with 1.0)" in messages[1]


def test_parse_overrides_reads_values_as_the_bundle_command_line_does():
    parsed = parse_overrides(["--", "--network_def#strides", "[1,2]", "--pooling", "attention", "--lr", "3e-4"])
    assert parsed == {"network_def#strides": [1, 2], "pooling": "attention", "lr": 3e-4}
    with pytest.raises(ValueError, match="'--id value' pairs"):
        parse_overrides(["--pooling"])
    with pytest.raises(ValueError, match="'--id value' pairs"):
        parse_overrides(["pooling", "attention"])


def test_a_run_on_another_monai_version_warns_at_the_start(tmp_path):
    bundle = tmp_path / "neoseg"
    shutil.copytree(BUNDLES / "neoseg", bundle, ignore=shutil.ignore_patterns("eval", "runs"))
    write_meta(bundle, monai_version="1.3.0")
    (bundle / "sample_data" / "imagesTr" / "case_001.nii.gz").unlink()  # one case is enough
    result = monai_cli("run", "--config_file", "configs/inference.json", "--output_dir", str(tmp_path / "out"),
                       cwd=bundle)
    assert "was tested with other versions: monai" in result.stderr and "(tested with 1.3.0)" in result.stderr
    assert (tmp_path / "out" / "patches.json").is_file()  # a warning, not a failure


# ------------------------------------------------------------------ releases


def test_release_zips_are_reproducible_and_indexed(release, tmp_path):
    zips = sorted(release.glob("*.zip"))
    versions = {n: json.loads((BUNDLES / n / "configs" / "metadata.json").read_text())["version"] for n in NAMES}
    assert [z.name for z in zips] == [f"{n}_v{versions[n]}.zip" for n in NAMES]
    again = [zoo.build_release(BUNDLES / n, tmp_path) for n in NAMES]
    for first, second in zip(zips, again):
        assert first.read_bytes() == second.read_bytes(), first.name
    info = json.loads((release / "model_info.json").read_text())
    assert set(info) == {z.stem for z in zips}
    for path in zips:
        assert info[path.stem] == {"checksum": zoo.sha1(path), "source": path.resolve().as_uri()}


def test_release_holds_the_bundle_under_its_name_and_no_run_outputs(release, tmp_path):
    bundle = tmp_path / "neoseg"
    shutil.copytree(BUNDLES / "neoseg", bundle, ignore=shutil.ignore_patterns("eval", "runs"))
    for leftover in ("eval/case_000/seg.nii.gz", "runs/log.txt", "configs/__pycache__/x.pyc", ".DS_Store"):
        (bundle / leftover).parent.mkdir(parents=True, exist_ok=True)
        (bundle / leftover).write_text("run output")
    with zipfile.ZipFile(zoo.build_release(bundle, tmp_path / "dist")) as archive:
        names = archive.namelist()
    expected = sorted(f"neoseg/{p.relative_to(BUNDLES / 'neoseg').as_posix()}" for p in (BUNDLES / "neoseg").rglob("*")
                      if p.is_file() and not {"eval", "runs", "__pycache__"} & set(p.parts))
    assert sorted(names) == expected and "neoseg/models/model.pt" in names


def test_release_refuses_weights_saved_on_a_gpu_and_oversized_files(tmp_path):
    bundle = tmp_path / "neocls"
    shutil.copytree(BUNDLES / "neocls" / "configs", bundle / "configs")
    state = torch.load(BUNDLES / "neocls" / "models" / "model.pt", map_location="cpu", weights_only=True)
    (bundle / "models").mkdir()
    torch.save(state, bundle / "models" / "model.pt")
    # rewrite the saved storage location as a GPU run would have recorded it
    with zipfile.ZipFile(bundle / "models" / "model.pt") as src, zipfile.ZipFile(tmp_path / "gpu.pt", "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0") if item.filename.endswith("data.pkl") else data)
    shutil.move(tmp_path / "gpu.pt", bundle / "models" / "model.pt")
    if not torch.cuda.is_available():  # what users of such weights meet
        with pytest.raises(RuntimeError, match="CUDA device"):
            torch.load(bundle / "models" / "model.pt", weights_only=True)
    with pytest.raises(ValueError, match=r"model\.pt holds tensors saved on cuda:0"):
        zoo.build_release(bundle, tmp_path / "dist")
    zoo.weights_to_cpu(bundle / "models" / "model.pt")
    zoo.check_weights_load_on_cpu(bundle)  # loadable everywhere now
    (bundle / "models" / "big.bin").write_bytes(b"\0" * (zoo.MAX_FILE_BYTES + 1))
    with pytest.raises(ValueError, match=r"big\.bin is 25\.0 MB, over the model zoo's 25 MB limit"):
        zoo.build_release(bundle, tmp_path / "dist")
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").iterdir())  # nothing half-written


@pytest.mark.slow
def test_downloaded_bundles_run_the_chain(release, tmp_path):
    """What a user of a model zoo does: download by name from the index's URL, then run the copy."""
    info = json.loads((release / "model_info.json").read_text())
    bundles = tmp_path / "bundles"
    for name in ("neoseg", "neocls"):
        (key,) = [k for k in info if k.startswith(f"{name}_v")]
        assert zoo.sha1(release / f"{key}.zip") == info[key]["checksum"]
        monai_cli("download", "--name", name, "--url", info[key]["source"], "--bundle_dir", str(bundles))
        assert (bundles / name / "configs" / "metadata.json").is_file()
    # from inside the downloaded bundle, as model-zoo READMEs say; NeoSeg is found beside it
    monai_cli("run", "--config_file", "configs/inference.json", "--output_dir", str(tmp_path / "out"),
              cwd=bundles / "neocls")
    with open(tmp_path / "out" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["case"] for r in rows] == ["case_000", "case_001"] and not any(r["error"] for r in rows)
    assert all(0 <= float(r["pni_probability"]) <= 1 for r in rows)
    assert not (bundles / "neocls" / "eval").exists()  # the output went where it was told


def test_release_command_names_a_folder_that_is_not_a_bundle(tmp_path):
    result = subprocess.run([sys.executable, "-m", "neonet_ext.zoo", "--out", str(tmp_path / "dist"), str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"{tmp_path} is not a bundle: {tmp_path / 'configs' / 'metadata.json'} does not exist" in result.stderr
    assert not (tmp_path / "dist" / "model_info.json").exists()


# ------------------------------------------------------------------ network checks and export


@pytest.mark.slow
@pytest.mark.parametrize("name, shape_options", [("neoseg", ["--n", "4"]), ("neocls", [])])
def test_network_matches_its_data_format_and_exports_to_torchscript(name, shape_options, tmp_path):
    from monai.bundle import ConfigParser

    bundle = BUNDLES / name
    files = ["--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json"]
    monai_cli("verify_net_in_out", "network_def", *files, "--device", "cpu", *shape_options, cwd=bundle)
    monai_cli("ckpt_export", "network_def", "--filepath", str(tmp_path / "model.ts"), "--ckpt_file",
              "models/model.pt", *files, cwd=bundle)  # scripted, not traced: both networks script

    exported = torch.jit.load(tmp_path / "model.ts", map_location="cpu")
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    network = parser.get_parsed_content("network_def").eval()
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True))
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())["network_data_format"]["inputs"]["image"]
    shape = [32 if isinstance(s, str) else s for s in meta["spatial_shape"]]
    x = torch.rand(1, meta["num_channels"], *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(exported(x), network(x), rtol=1e-4, atol=1e-5)
