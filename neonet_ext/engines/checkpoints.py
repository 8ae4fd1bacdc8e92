"""Checkpoints: the handlers every NeoNet training attaches (resume where it stopped, or start from given
weights), the lookup of the newest checkpoint, and loading saved weights into a network."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from monai.handlers import CheckpointLoader, CheckpointSaver

__all__ = ["latest_checkpoint", "load_weights", "resumable_checkpoint_handlers"]


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
