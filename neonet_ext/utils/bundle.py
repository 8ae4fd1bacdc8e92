"""Where a NeoNet bundle lives, so its configs run from the bundle folder or the repository root."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["BundleStage", "bundle_root", "latest_checkpoint", "load_weights", "select_channel", "split_cases"]

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


def latest_checkpoint(folder: str | os.PathLike, pattern: str = "checkpoint*.pt") -> str | None:
    """Newest file matching ``pattern`` in ``folder`` (to resume training), or None."""
    paths = sorted(Path(folder).glob(pattern), key=lambda p: p.stat().st_mtime)
    return str(paths[-1]) if paths else None


def split_cases(datalist: Sequence[dict], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Shuffle ``datalist`` with ``seed`` and split it into (train, validation).

    The validation part holds ``round(val_fraction * n)`` cases, at least one and at
    most ``n - 1`` when there are two or more.
    """
    items = list(datalist)
    if len(items) < 2:
        raise ValueError(f"need at least two cases to split into training and validation, got {len(items)}.")
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = min(max(1, round(val_fraction * len(items))), len(items) - 1)
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]


def select_channel(batch: tuple[Sequence, Sequence], channel: int) -> tuple[list, list]:
    """Keep the background and one class of one-hot ``(preds, labels)`` (each C, X, Y, Z),
    so that a Dice metric with ``include_background=False`` scores that class alone."""
    keep = [0, channel]
    return [p[keep] for p in batch[0]], [y[keep] for y in batch[1]]


def load_weights(network: torch.nn.Module, path: str | os.PathLike, what: str = "model") -> torch.nn.Module:
    """Load a state dict saved with ``torch.save`` into ``network`` (on the CPU first, weights only).

    Raises:
        FileNotFoundError: no file at ``path`` (the message says where it looked).
        RuntimeError: the weights do not fit the network defined in the config (the
            message names the file and the first mismatches).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights not found: {path.resolve()} does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        network.load_state_dict(state)
    except RuntimeError as e:
        details = "\n".join(str(e).splitlines()[1:6])
        raise RuntimeError(
            f"{what} weights {path} do not fit the network in the config (were they trained with other "
            f"network settings?):\n{details}"
        ) from None
    return network


class BundleStage:
    """Another bundle's parsed config, to run that bundle as one stage of a chain.

    Reads ``config_file`` of the bundle at ``bundle_root`` (with ``bundle_root`` set to that
    folder and ``overrides`` applied) and loads its weights (``weights_key``) into its
    network (``network_key``). Components are then parsed on demand: ``stage["preprocessing"]``.

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
        network_key: str = "network",
        weights_key: str = "checkpoint",
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
        self.network = load_weights(self[network_key], self[weights_key], what=name)

    def __getitem__(self, id: str) -> Any:
        """The parsed (instantiated) config item ``id``."""
        return self.parser.get_parsed_content(id)
