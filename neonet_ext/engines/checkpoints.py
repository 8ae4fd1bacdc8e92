"""Checkpoints: the handlers every NeoNet training attaches (resume where it stopped, or start from given
weights), the lookup of the newest checkpoint, and loading saved weights into a network."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from monai.handlers import CheckpointLoader, CheckpointSaver

__all__ = ["STATE_DICT_KEYS", "latest_checkpoint", "load_checkpoint", "load_weights", "resumable_checkpoint_handlers"]


def resumable_checkpoint_handlers(
    save_dict: Mapping[str, Any],
    checkpoint_dir: str | os.PathLike,
    resume_checkpoint: str | os.PathLike | None = None,
    pretrained_checkpoint: str | os.PathLike | None = None,
    pretrained_dict: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> list[Any]:
    """Handlers that make a training resumable, to attach to its trainer.

    A loader of ``resume_checkpoint`` into everything in ``save_dict`` (networks, optimisers,
    schedulers, the trainer's epoch) when there is one; otherwise, a loader of
    ``pretrained_checkpoint`` into ``pretrained_dict`` alone (weights to start from, e.g.
    ``{"model": network}``); then a saver of ``save_dict`` to ``checkpoint_dir`` after every
    epoch, keeping the last (ignite writes it atomically).

    Args:
        save_dict: what a checkpoint holds, e.g. ``{"model": net, "optimizer": opt, "trainer": trainer}``.
        checkpoint_dir: folder of the per-epoch checkpoints (``latest_checkpoint`` finds the newest).
        resume_checkpoint: a checkpoint of this training to resume from, or None.
        pretrained_checkpoint: weights to start a new training from, or None (ignored when resuming).
        pretrained_dict: what ``pretrained_checkpoint`` is loaded into.
        device: ``map_location`` of the loaders.
    """
    handlers: list[Any] = []
    if resume_checkpoint:
        handlers.append(CheckpointLoader(load_path=str(resume_checkpoint), load_dict=dict(save_dict), map_location=device))
    elif pretrained_checkpoint:
        if not pretrained_dict:
            raise ValueError("a pretrained_checkpoint needs a pretrained_dict to load it into, e.g. {'model': network}.")
        handlers.append(CheckpointLoader(load_path=str(pretrained_checkpoint), load_dict=dict(pretrained_dict), map_location=device))
    handlers.append(CheckpointSaver(save_dir=str(checkpoint_dir), save_dict=dict(save_dict), save_interval=1, n_saved=1, epoch_level=True))
    return handlers


def latest_checkpoint(folder: str | os.PathLike, pattern: str = "checkpoint*.pt") -> str | None:
    """Newest file matching ``pattern`` in ``folder`` (to resume training), or None."""
    paths = sorted(Path(folder).glob(pattern), key=lambda p: p.stat().st_mtime)
    return str(paths[-1]) if paths else None


#: Keys under which a checkpoint may hold the network's state dict: NeoGen's autoencoder stage saves
#: ``{"autoencoder": ..., "discriminator": ...}``, ignite's ``CheckpointSaver`` ``{"model": ..., "optimizer": ...}``.
STATE_DICT_KEYS = ("autoencoder", "model", "state_dict", "network")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", what: str = "model") -> Any:
    """What ``torch.save`` wrote to ``path``, read with ``weights_only=True`` onto ``map_location``
    (a device, or any ``map_location`` that ``torch.load`` takes).

    Raises:
        FileNotFoundError: no file at ``path`` (the message says where it looked).
        ValueError: a file that ``torch.load`` cannot read as weights (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights not found: {path.resolve()} does not exist.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling fails in many ways (a truncated file, a text file, a refused global)
        raise ValueError(
            f"{what} weights {path} are not a checkpoint torch can read with weights_only=True: {e}"
        ) from e


def load_weights(
    network: torch.nn.Module, path: str | os.PathLike, what: str = "model", map_location: Any = "cpu"
) -> torch.nn.Module:
    """Load the state dict saved at ``path`` into ``network`` (strictly: every key and shape must match).

    The file holds the state dict itself or a checkpoint with it under one of :data:`STATE_DICT_KEYS`,
    and is read by :func:`load_checkpoint` onto ``map_location``.

    Returns:
        ``network``, so that a config can build and load it in one expression.

    Raises:
        FileNotFoundError: no file at ``path`` (the message says where it looked).
        ValueError: not a checkpoint, or one without a state dict (the message names the file).
        RuntimeError: the weights do not fit the network defined in the config (the
            message names the file and the first mismatches).
    """
    state = _state_dict(load_checkpoint(path, map_location, what), path, what)
    try:
        network.load_state_dict(state)
    except RuntimeError as e:
        details = "\n".join(str(e).splitlines()[1:6])
        raise RuntimeError(
            f"{what} weights {path} do not fit the network in the config (were they trained with other "
            f"network settings?):\n{details}"
        ) from None
    return network


def _state_dict(checkpoint: Any, path: str | os.PathLike, what: str) -> Mapping[str, torch.Tensor]:
    """The state dict in ``checkpoint``: itself when all its values are tensors, else the first under
    :data:`STATE_DICT_KEYS`."""
    if isinstance(checkpoint, Mapping):
        if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            return checkpoint
        for key in STATE_DICT_KEYS:
            if isinstance(checkpoint.get(key), Mapping):
                return checkpoint[key]
        found = f"keys {sorted(map(str, checkpoint))}"
    else:
        found = f"a {type(checkpoint).__name__}"
    raise ValueError(f"{what} weights {path} hold neither a state dict nor one under any of {STATE_DICT_KEYS}; "
                     f"found {found}.")
