"""Bundle-level helpers: where a bundle lives (so its configs run from the bundle folder or the repository
root), the versions it was tested with, the command line that runs it, and another bundle as a stage of a chain."""

from __future__ import annotations

import itertools
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BundleStage",
    "bundle_root",
    "bundle_run_command",
    "bundle_version",
    "check_versions",
    "parse_overrides",
]

_REPO_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def bundle_root(name: str) -> str:
    """The folder of bundle ``name``: the working directory when it is that bundle (the
    model-zoo convention), else ``./bundles/<name>``, else the copy beside this package.
    ``--bundle_root`` on the command line overrides it.
    """
    cwd = Path.cwd()
    for candidate in (cwd, cwd / "bundles" / name, _REPO_BUNDLES / name):
        if (candidate / "configs" / "metadata.json").is_file() and candidate.resolve().name == name:
            return str(candidate.resolve())
    raise FileNotFoundError(
        f"cannot find the '{name}' bundle from {cwd}: run from the bundle folder or the repository root, "
        "or pass --bundle_root."
    )


def _installed_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    """Major and minor release numbers: ``"2.13.0+cpu"`` -> ``(2, 13)``."""
    numbers = []
    for part in version.split("+")[0].split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)


def bundle_version(bundle_root: str | os.PathLike) -> str:
    """The bundle's own version, from its ``configs/metadata.json``."""
    return str(json.loads((Path(bundle_root) / "configs" / "metadata.json").read_text())["version"])


def check_versions(bundle_root: str | os.PathLike) -> list[str]:
    """Warn about each package whose installed version differs from the one the bundle was tested with.

    Reads ``configs/metadata.json`` of the bundle: ``monai_version``, ``pytorch_version``,
    ``numpy_version`` and ``required_packages_version``. A package is reported when it is
    missing or its major.minor release differs (patch releases do not change results).
    Configs call it first in ``initialize``, so a run on a mismatched stack says so at the start.

    Returns:
        the messages, one per mismatched package (empty when all match); each is also
        issued as a ``UserWarning``.
    """
    meta_file = Path(bundle_root) / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    tested = {"monai": meta.get("monai_version"), "torch": meta.get("pytorch_version"), "numpy": meta.get("numpy_version")}
    tested.update(meta.get("required_packages_version", {}))
    found = []
    for package, version in tested.items():
        if not version:
            continue
        installed = _installed_version(package)
        if installed is None:
            found.append(f"{package} is not installed (tested with {version})")
        elif _release(installed) != _release(version):
            found.append(f"{package} {installed} is installed (tested with {version})")
    messages = [
        f"{meta.get('name', meta_file.parent.parent.name)} {meta.get('version', '')} was tested with other versions: "
        f"{problem}. Results may differ or the run may fail; install the tested versions "
        "(pip install -c constraints.txt ...) to reproduce the documented figures."
        for problem in found
    ]
    for message in messages:
        warnings.warn(message, stacklevel=2)
    return messages


def parse_overrides(arguments: Sequence[str]) -> dict[str, Any]:
    """``monai.bundle run``-style ``--id value`` pairs (a lone ``--`` ignored) as ``{id: value}``, each value read as
    a Python literal where it is one (``"[1,2]"`` -> ``[1, 2]``), else kept as the string.

    Raises:
        ValueError: the arguments do not come as ``--id value`` pairs.
    """
    import ast

    pairs = [a for a in arguments if a != "--"]
    if len(pairs) % 2 or not all(key.startswith("--") for key in pairs[::2]):
        raise ValueError(f"extra arguments must be '--id value' pairs of the bundle's config, got {list(arguments)}")
    overrides: dict[str, Any] = {}
    for key, value in zip(pairs[::2], pairs[1::2]):
        try:
            overrides[key[2:]] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key[2:]] = value
    return overrides


def bundle_run_command(config_files: Sequence[str | os.PathLike], *overrides: str,
                       launcher: Sequence[str] | None = None) -> list[str]:
    """The command line of ``python -m monai.bundle run`` on ``config_files`` layered in order.

    ``launcher`` replaces the interpreter (e.g. ``[python, "-m", "torch.distributed.run", ...]``).
    """
    layers = "[" + ",".join(repr(str(f)) for f in config_files) + "]"
    return [*(launcher or [sys.executable]), "-m", "monai.bundle", "run", "--config_file", layers, *overrides]


class BundleStage:
    """Another bundle's parsed config, to run that bundle as one stage of a chain.

    Reads ``config_file`` of the bundle at ``bundle_root`` (with ``bundle_root`` set to that
    folder and ``overrides`` applied) and runs its ``initialize`` section, as ``monai.bundle run``
    does before ``run``: the bundle's own version check, seed and weight loading, so the stage
    loads every network the bundle loads (NeoSeg's tumour refiner included) and nothing is
    restated here. Components are then parsed on demand: ``stage["preprocessing"]``, the same
    objects ``initialize`` loaded.

    Args:
        bundle_root: the other bundle's folder.
        name: the bundle's name, for messages.
        root_option: the command-line option that sets ``bundle_root``, for messages.
        config_file: the config to read, relative to ``bundle_root``.
        overrides: config ids and values to replace, e.g. ``{"output_dir": ...}``.

    Raises:
        FileNotFoundError: no such bundle or no weights, saying where it looked.
        RuntimeError: weights that do not fit the bundle's network.
    """

    def __init__(
        self,
        bundle_root: str | os.PathLike,
        name: str,
        root_option: str = "--bundle_root",
        config_file: str = "configs/inference.json",
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        from monai.bundle import ConfigParser

        root = Path(bundle_root).resolve()
        config = root / config_file
        if not config.is_file():
            raise FileNotFoundError(f"{name} bundle not found: {config} does not exist; set {root_option}.")
        self.parser = ConfigParser()
        self.parser.read_config(str(config))
        self.parser["bundle_root"] = str(root)
        for key, value in (overrides or {}).items():
            self.parser[key] = value
        if "initialize" in self.parser.config:
            self.parser.get_parsed_content("initialize")

    def __getitem__(self, id: str) -> Any:
        """The parsed (instantiated) config item ``id``."""
        return self.parser.get_parsed_content(id)
