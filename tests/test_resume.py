"""A resumed training draws fresh, reproducible random streams instead of replaying its first epochs."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset
from monai.transforms import RandShiftIntensity
from monai.utils import set_determinism

from neonet_ext.engines.checkpoints import latest_checkpoint, resumable_checkpoint_handlers

EPOCH_LENGTH = 3


def _training(out, epochs: int, resume: bool) -> list[tuple]:
    """A stand-in training of ``epochs`` epochs over shuffled, randomly shifted numbers; the batches it saw."""
    set_determinism(seed=0)  # what every training config does at start-up
    numbers = Dataset([np.array([float(i)]) for i in range(12)], transform=RandShiftIntensity(offsets=0.4, prob=1.0))
    loader = DataLoader(numbers, batch_size=2, shuffle=True, num_workers=0)
    seen: list[tuple] = []
    trainer = Engine(lambda engine, batch: seen.append((engine.state.epoch, tuple(batch.flatten().tolist()))))
    resume_checkpoint = latest_checkpoint(out, "*.pt") if resume else None
    for handler in resumable_checkpoint_handlers({"trainer": trainer}, out, resume_checkpoint=resume_checkpoint):
        handler.attach(trainer)
    trainer.run(loader, max_epochs=epochs, epoch_length=EPOCH_LENGTH)
    return seen


def _epoch(batches: list[tuple], epoch: int) -> list[tuple]:
    return [batch for e, batch in batches if e == epoch]


def test_a_resumed_training_does_not_replay_the_first_epoch(tmp_path):
    first = _training(tmp_path / "run", epochs=1, resume=False)
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    resumed = _training(tmp_path / "run", epochs=2, resume=True)
    assert not _epoch(resumed, 1), "the resumed run started again from epoch 1"
    replayed_order = [tuple(round(x) for x in batch) for batch in _epoch(first, 1)]
    assert [tuple(round(x) for x in batch) for batch in _epoch(resumed, 2)] != replayed_order
    assert {x % 1 for batch in _epoch(resumed, 2) for x in batch}.isdisjoint({x % 1 for batch in _epoch(first, 1) for x in batch})
    assert _training(tmp_path / "copy", epochs=2, resume=True) == resumed, "two resumptions drew different streams"


def _cosine_training(out, epochs: int) -> list[float]:
    """A stand-in training with a cosine learning rate over ``epochs`` epochs, resumable; its rate after each epoch."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    trainer = Engine(lambda engine, batch: None)
    rates: list[float] = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda engine: (optimizer.step(), scheduler.step(), rates.append(scheduler.get_last_lr()[0])))
    save_dict = {"trainer": trainer, "optimizer": optimizer, "lr_scheduler": scheduler}
    for handler in resumable_checkpoint_handlers(save_dict, out, resume_checkpoint=latest_checkpoint(out, "*.pt")):
        handler.attach(trainer)
    trainer.run([0], max_epochs=epochs)
    return rates


def test_a_resumed_training_with_more_epochs_decays_to_its_new_last_epoch(tmp_path):
    assert _cosine_training(tmp_path, epochs=2) == pytest.approx([0.5, 0.0], abs=1e-9)
    # epochs 3 and 4 of a 4-epoch cosine, not the 2-epoch schedule's 0 carried on
    assert _cosine_training(tmp_path, epochs=4) == pytest.approx([(1 + math.cos(math.pi * 3 / 4)) / 2, 0.0], abs=1e-9)
