"""Model-zoo releases of the NeoNet bundles: reproducible zips and a ``model_info.json`` index.

A release of bundle ``<name>`` (its folder name) at metadata version ``<version>`` is
``<name>_v<version>.zip`` with the top folder ``<name>/``, the layout that
``python -m monai.bundle download --name <name> --url <zip url>`` unpacks. The same bundle
folder gives the same bytes on every build: entries are sorted, and times, permissions and
compression are fixed.

``model_info.json`` indexes the zips as the MONAI model zoo does:
``{"<name>_v<version>": {"checksum": <sha1 of the zip>, "source": <url of the zip>}}``.

Command line (``make release``)::

    python -m neonet_ext.zoo --out dist [--base-url URL] [BUNDLE_DIR ...]
    python -m neonet_ext.zoo --to-cpu models/model.pt   # weights trained on a GPU, before a release
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from neonet_ext.utils.io import atomic_path, atomic_write, file_sha1

__all__ = ["MAX_FILE_BYTES", "build_release", "bundle_files", "check_weights_load_on_cpu", "release_name", "sha1",
           "weights_to_cpu", "write_model_info"]

# The model zoo keeps files over 25 MB out of its repository (they go to large_files.yml).
MAX_FILE_BYTES = 25 * 1024 * 1024
# Run outputs and caches that a user's runs leave inside a bundle folder: never released.
_EXCLUDED_DIRS = frozenset({"eval", "runs", "__pycache__", ".ipynb_checkpoints"})
_EXCLUDED_SUFFIXES = (".pyc", ".tmp")
# zip's epoch: the earliest time a zip entry can hold, so that no file time leaks into the bytes
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_REPO_BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def _metadata(bundle_dir: Path) -> dict:
    meta_file = bundle_dir / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{bundle_dir} is not a bundle: {meta_file} does not exist.")
    try:
        return json.loads(meta_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta_file} is not valid JSON: {e}") from None


def release_name(bundle_dir: str | os.PathLike) -> str:
    """``<folder name>_v<metadata version>``, e.g. ``neoseg_v0.2.0``."""
    bundle_dir = Path(bundle_dir).resolve()
    version = _metadata(bundle_dir).get("version")
    if not version:
        raise ValueError(f"{bundle_dir / 'configs' / 'metadata.json'} has no 'version'.")
    return f"{bundle_dir.name}_v{version}"


def bundle_files(bundle_dir: str | os.PathLike) -> list[Path]:
    """The files a release of ``bundle_dir`` holds, relative to it, sorted.

    Hidden files, run outputs (``eval/``, ``runs/``) and caches are left out.

    Raises:
        ValueError: a file over 25 MB (the model zoo's limit; such files belong in
            ``large_files.yml``), or a link that points outside the bundle.
    """
    root = Path(bundle_dir).resolve()
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _EXCLUDED_DIRS and not d.startswith("."))
        for name in names:
            if name.startswith(".") or name.endswith(_EXCLUDED_SUFFIXES):
                continue
            path = Path(folder) / name
            if not path.resolve().is_relative_to(root):
                raise ValueError(f"{path} links outside the bundle {root}: a release must be self-contained.")
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(
                    f"{path} is {path.stat().st_size / 2**20:.1f} MB, over the model zoo's 25 MB limit for files in a "
                    "bundle: host it elsewhere and list its url and hash in large_files.yml."
                )
            files.append(path.relative_to(root))
    return sorted(files, key=lambda p: p.as_posix())


def check_weights_load_on_cpu(bundle_dir: str | os.PathLike) -> None:
    """Raise if a ``models/*.pt`` file cannot be read on a CPU-only machine without ``map_location``.

    Checkpoints saved from a GPU hold CUDA tensors: ``torch.load`` then fails on a CPU machine
    unless the caller maps them, the zoo's most common user complaint. Such weights are
    re-saved on the CPU before a release (``torch.save({k: v.cpu() ...})``).
    """
    from neonet_ext.engines.checkpoints import load_checkpoint

    for path in sorted((Path(bundle_dir) / "models").glob("*.pt")):
        saved_on: set[str] = set()

        def record(storage, location: str):  # torch passes each storage with the device it was saved from
            saved_on.add(location)
            return storage

        load_checkpoint(path, map_location=record)
        if any(not location.startswith("cpu") for location in saved_on):
            raise ValueError(
                f"{path} holds tensors saved on {', '.join(sorted(saved_on))}: torch.load fails on CPU-only machines "
                "without map_location. Re-save it with its tensors on the CPU before releasing "
                "(python -m neonet_ext.zoo --to-cpu FILE)."
            )


def weights_to_cpu(path: str | os.PathLike) -> Path:
    """Re-save the state dict at ``path`` with every tensor on the CPU (atomically); return ``path``."""
    import torch

    from neonet_ext.engines.checkpoints import load_checkpoint

    state = load_checkpoint(path)
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def sha1(path: str | os.PathLike) -> str:
    """Hex SHA-1 of a file (the checksum the model zoo's ``model_info.json`` records)."""
    return file_sha1(path)


def build_release(bundle_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/<name>_v<version>.zip`` (top folder ``<name>/``) and return its path.

    Two builds of the same bundle folder give identical bytes. The zip is written atomically.
    """
    root = Path(bundle_dir).resolve()
    check_weights_load_on_cpu(root)
    target = Path(out_dir) / f"{release_name(root)}.zip"
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for relative in bundle_files(root):
            entry = zipfile.ZipInfo(f"{root.name}/{relative.as_posix()}", date_time=_FIXED_TIME)
            entry.create_system = 3  # unix, so that the permission bits below are read
            executable = os.access(root / relative, os.X_OK)
            entry.external_attr = (0o100755 if executable else 0o100644) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, (root / relative).read_bytes(), compresslevel=9)
    return target


def write_model_info(zips: Iterable[str | os.PathLike], out_file: str | os.PathLike, base_url: str) -> dict:
    """Write the ``model_info.json`` index of ``zips`` (sources ``<base_url>/<zip name>``) and return it.

    Entries already in ``out_file`` for other releases are kept, so that the index grows
    release by release as the model zoo's does.
    """
    out_file = Path(out_file)
    info = json.loads(out_file.read_text()) if out_file.is_file() else {}
    for path in map(Path, zips):
        info[path.name.removesuffix(".zip")] = {"checksum": sha1(path), "source": f"{base_url.rstrip('/')}/{path.name}"}
    info = dict(sorted(info.items()))
    atomic_write(out_file, lambda tmp: tmp.write_text(json.dumps(info, indent=4) + "\n"))
    return info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neonet_ext.zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="*", type=Path,
                        help="bundle folders (default: every bundle under the repository's bundles/)")
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where the zips and model_info.json go")
    parser.add_argument("--base-url", help="where the zips will be served (default: file:// URL of --out)")
    parser.add_argument("--to-cpu", nargs="+", type=Path, metavar="FILE",
                        help="only re-save these state-dict files with their tensors on the CPU")
    args = parser.parse_args(argv)
    if args.to_cpu:
        for path in args.to_cpu:
            print(f"re-saved on the CPU: {weights_to_cpu(path)}")
        return 0
    bundles = args.bundles or sorted(p.parent.parent for p in _REPO_BUNDLES.glob("*/configs/metadata.json"))
    base_url = args.base_url or args.out.resolve().as_uri()
    try:
        zips = [build_release(bundle, args.out) for bundle in bundles]
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    info = write_model_info(zips, args.out / "model_info.json", base_url)
    for path in zips:
        entry = info[path.name.removesuffix(".zip")]
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MB  sha1 {entry['checksum']}")
    print(f"index: {args.out / 'model_info.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
