"""BatchNormRecalibration: running statistics recomputed from the training batches for the final weights."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from neonet_ext.engines import BatchNormRecalibration, drop_single_item_batch


def _network() -> torch.nn.Sequential:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3), torch.nn.BatchNorm3d(4), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    with torch.no_grad():
        net[0].weight.mul_(1e-5)
        net[0].bias.zero_()  # activations far below the initial running variance of 1, as deep in a 3D EfficientNet
    net(torch.zeros(1, 2, 6, 6, 6))  # materialise the lazy layer
    return net


def test_running_statistics_become_those_of_the_training_batches():
    net = _network().eval()
    batches = [{"image": torch.randn(4, 2, 6, 6, 6)} for _ in range(3)]
    before = [net(b["image"]).detach() for b in batches]
    assert torch.allclose(before[0], before[0][:1].expand_as(before[0]), atol=1e-4)  # every input alike
    evaluator = Engine(lambda engine, batch: None)
    BatchNormRecalibration(batches, net).attach(evaluator)
    evaluator.run([0], max_epochs=1)  # recalibrates when the evaluator starts
    features = torch.cat([net[0](b["image"]) for b in batches]).detach()
    torch.testing.assert_close(net[1].running_mean, features.mean(dim=(0, 2, 3, 4)), rtol=1e-4, atol=1e-7)
    assert not net.training and net[1].momentum == 0.1  # mode and momentum restored
    after = net(batches[0]["image"]).detach()
    assert (after.std(dim=0) > 10 * before[0].std(dim=0)).all()  # inputs are told apart again


def test_a_network_without_batch_norm_is_unchanged():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 2))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    BatchNormRecalibration([{"image": torch.randn(2, 8)}], net)()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize("num_items, batch_size, dropped", [(5, 4, True), (9, 8, True), (8, 4, False), (7, 4, False),
                                                            (3, 1, False)])
def test_only_a_last_batch_of_one_item_is_dropped(num_items, batch_size, dropped):
    assert drop_single_item_batch(num_items, batch_size) is dropped
