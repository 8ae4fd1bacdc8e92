"""bfloat16 autocast for CPU training (MONAI's engines autocast on CUDA only)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from monai.inferers import SimpleInferer

from neonet_ext.engines import AutocastInferer, cpu_has_fast_bfloat16

CONFIGS = Path(__file__).resolve().parents[1] / "bundles" / "neoseg" / "configs"


class RecordsDtype(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 3, padding=1)
        self.seen = None

    def forward(self, x):
        out = self.conv(x)
        self.seen = out.dtype
        return out


def test_the_forward_runs_in_bfloat16_and_the_output_is_float32_with_float32_gradients():
    network, x = RecordsDtype(), torch.rand(2, 1, 8, 8, 8)
    out = AutocastInferer(SimpleInferer())(x, network)
    assert network.seen == torch.bfloat16 and out.dtype == torch.float32
    out.sum().backward()
    assert network.conv.weight.grad.dtype == torch.float32  # the weights stay float32
    reference = network.conv(x)
    assert (out - reference).abs().max() < 0.05 and not torch.equal(out, reference)  # bfloat16's precision
    AutocastInferer(SimpleInferer(), enabled=False)(x, network)
    assert network.seen == torch.float32


def test_neoseg_training_autocasts_on_a_cpu_with_native_bfloat16():
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser["device"] = "$torch.device('cpu')"
    inferer = parser.get_parsed_content("train#inferer")
    assert isinstance(inferer, AutocastInferer) and inferer.enabled == cpu_has_fast_bfloat16()
    parser["device"] = "$torch.device('cuda:0')"  # a GPU keeps the engine's own amp
    assert parser.get_parsed_content("cpu_bfloat16") is False
    assert json.loads((CONFIGS / "train.json").read_text())["validate"]["inferer"]["_target_"] == "SlidingWindowInferer"
