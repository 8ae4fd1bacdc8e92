"""Batch-norm running statistics recomputed for the final weights, before an evaluation."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from ignite.engine import Engine, Events
from torch.optim.swa_utils import update_bn


class BatchNormRecalibration:
    """Before each run of an evaluator, recompute the running statistics of ``network``'s batch norms
    from ``loader`` (one pass, no gradients: ``torch.optim.swa_utils.update_bn``).

    After a short training the running statistics are still close to their initial values
    (mean 0, variance 1), far from the activations of the trained weights. A network whose
    activations shrink with depth, such as MONAI's 3D EfficientNets, then gives every input
    nearly the same output in evaluation (seen: the same probability for every patient after
    20 updates). Networks without batch norm are left as they are.

    Args:
        loader: training batches (dictionaries holding ``image_key``).
        network: the network the evaluator runs.
        image_key: the input's key in a batch.
    """

    def __init__(self, loader: Iterable, network: torch.nn.Module, image_key: str = "image") -> None:
        self.loader = loader
        self.network = network
        self.image_key = image_key

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine | None = None) -> None:
        device = next(self.network.parameters()).device
        was_training = self.network.training
        update_bn((batch[self.image_key] for batch in self.loader), self.network, device=device)
        self.network.train(was_training)


def drop_single_item_batch(num_items: int, batch_size: int) -> bool:
    """``drop_last`` for a training DataLoader of a network with batch norm: True only when the last
    batch would hold a single item.

    Batch norm in training mode refuses a batch of one whose feature maps have shrunk to 1x1x1
    (DenseNet-121 or ResNet-50 on 32x32x32 patches), in training and in
    :class:`BatchNormRecalibration`'s pass alike. Other partial batches are kept, so a run that
    does not end on one item trains on exactly what it did without this.
    """
    return num_items % batch_size == 1
