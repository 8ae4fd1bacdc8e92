"""Checkpoints: the handlers every NeoNet training attaches (resume where it stopped, or start from given
weights), the lookup of the newest checkpoint, and loading saved weights into a network."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.data.utils import set_rnd
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.utils import set_determinism

__all__ = [
    "STATE_DICT_KEYS",
    "KeepScheduleHorizon",
    "PretrainedWeightsLoader",
    "ReseedOnResume",
    "latest_checkpoint",
    "load_checkpoint",
    "load_weights",
    "resumable_checkpoint_handlers",
]


def resumable_checkpoint_handlers(
    save_dict: Mapping[str, Any],
    checkpoint_dir: str | os.PathLike,
    resume_checkpoint: str | os.PathLike | None = None,
    pretrained_checkpoint: str | os.PathLike | None = None,
    pretrained_dict: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> list[Any]:
    """Handlers that make a training resumable, to attach to its trainer.

    A loader of ``resume_checkpoint`` into everything in ``save_dict`` (networks, optimisers,
    schedulers, the trainer's epoch) when there is one, followed by :class:`KeepScheduleHorizon` and
    :class:`ReseedOnResume`; otherwise, a :class:`PretrainedWeightsLoader` of
    ``pretrained_checkpoint`` into ``pretrained_dict`` alone (weights to start from, e.g.
    ``{"model": network}``: a bare state dict, a bundle's weights or another training's checkpoint);
    then a saver of ``save_dict`` to ``checkpoint_dir`` after every epoch, keeping the last (ignite
    writes it atomically).

    Args:
        save_dict: what a checkpoint holds, e.g. ``{"model": net, "optimizer": opt, "trainer": trainer}``.
        checkpoint_dir: folder of the per-epoch checkpoints (``latest_checkpoint`` finds the newest).
        resume_checkpoint: a checkpoint of this training to resume from, or None.
        pretrained_checkpoint: weights to start a new training from, or None (ignored when resuming).
        pretrained_dict: what ``pretrained_checkpoint`` is loaded into.
        device: ``map_location`` of the loaders.
        seed: the training's seed (the one ``set_determinism`` got), from which a resumed run's seed derives.
    """
    handlers: list[Any] = []
    if resume_checkpoint:
        handlers.append(CheckpointLoader(load_path=str(resume_checkpoint), load_dict=dict(save_dict), map_location=device))
        handlers.append(KeepScheduleHorizon(save_dict))
        handlers.append(ReseedOnResume(seed))
    elif pretrained_checkpoint:
        if not pretrained_dict:
            raise ValueError("a pretrained_checkpoint needs a pretrained_dict to load it into, e.g. {'model': network}.")
        handlers.append(PretrainedWeightsLoader(pretrained_checkpoint, pretrained_dict, map_location=device))
    handlers.append(CheckpointSaver(save_dir=str(checkpoint_dir), save_dict=dict(save_dict), save_interval=1, n_saved=1, epoch_level=True))
    return handlers


class PretrainedWeightsLoader:
    """Weights to start a training from, loaded into its networks when it starts (``Events.STARTED``).

    The file may hold a bare state dict (one network), a bundle's weights, or a whole training
    checkpoint (e.g. another run's ``checkpoint_epoch=N.pt``, whose optimiser state is not wanted):
    each network of ``networks`` gets the entry of its own name when the checkpoint has one, else
    the state dict :func:`load_weights` would find (itself, or the first under :data:`STATE_DICT_KEYS`).

    Args:
        path: the weights file.
        networks: name -> network to load, e.g. ``{"model": network}``.
        map_location: where tensors are read to.
    """

    def __init__(self, path: str | os.PathLike, networks: Mapping[str, torch.nn.Module], map_location: Any = "cpu") -> None:
        self.path = path
        self.networks = dict(networks)
        self.map_location = map_location

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        checkpoint = load_checkpoint(self.path, self.map_location, "pretrained")
        for name, network in self.networks.items():
            if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(name), Mapping):
                state = checkpoint[name]
            else:
                state = _state_dict(checkpoint, self.path, name)
            _load_state_dict(network, state, self.path, name)
        logging.getLogger(__name__).info(f"Started {', '.join(self.networks)} from the weights in {self.path}")


class KeepScheduleHorizon:
    """The learning-rate schedule's horizon of this run's config, not of the checkpoint it resumes.

    A cosine schedule (``CosineAnnealingLR``) saves its horizon (``T_max``, the config's epochs)
    with its state, so a run resumed with more ``--epochs`` would keep the old one and train on at
    a rate of 0. Made before the checkpoint is loaded, this handler remembers the configured horizon
    of every cosine schedule in ``save_dict``; after loading (``Events.STARTED``, attached after the
    loader), where the two differ, it puts the configured horizon back and sets the rate to what
    that schedule gives at the restored step, as if the run had had its new length from the start.
    """

    def __init__(self, save_dict: Mapping[str, Any]) -> None:
        self.horizons = {name: (obj, obj.T_max) for name, obj in save_dict.items()
                         if isinstance(obj, torch.optim.lr_scheduler.CosineAnnealingLR)}

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        for name, (scheduler, t_max) in self.horizons.items():
            if scheduler.T_max != t_max:
                logging.getLogger(__name__).info(f"{name}: schedule horizon {scheduler.T_max} -> {t_max} (this run's config)")
                scheduler.T_max = t_max
                step = min(scheduler.last_epoch, t_max)
                rates = [scheduler.eta_min + (base - scheduler.eta_min) * (1 + math.cos(math.pi * step / t_max)) / 2
                         for base in scheduler.base_lrs]
                for group, rate in zip(scheduler.optimizer.param_groups, rates):
                    group["lr"] = rate
                scheduler._last_lr = rates


class ReseedOnResume:
    """Fresh, reproducible random streams for a resumed training.

    A training seeds its random generators once, at start-up, so a run resumed from a checkpoint
    would draw the shuffling and augmentations of its first epochs all over again. Attached after
    the checkpoint loader, this handler re-seeds ``torch``, ``numpy``, ``random`` and the random
    transforms of the trainer's dataset with ``seed + restored iteration`` once the checkpoint is
    loaded (``Events.STARTED``); a run that starts from scratch (iteration 0) is left as it is.
    Two resumptions from the same checkpoint draw the same streams.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        iteration = engine.state.iteration
        if iteration == 0:
            return
        seed = self.seed + iteration
        set_determinism(seed=seed)
        dataset = getattr(engine.state.dataloader, "dataset", None)
        if dataset is not None:
            set_rnd(dataset, seed)


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
    _load_state_dict(network, state, path, what)
    return network


def _load_state_dict(network: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike, what: str
                     ) -> None:
    try:
        network.load_state_dict(state)
    except RuntimeError as e:
        details = "\n".join(str(e).splitlines()[1:6])
        raise RuntimeError(
            f"{what} weights {path} do not fit the network in the config (were they trained with other "
            f"network settings?):\n{details}"
        ) from None


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
