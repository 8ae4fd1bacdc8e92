"""What an attention map of NeoCls must equal, computed here without the code under test.

The spatial map is read off PattenNet's spatial-attention gates with forward hooks (not through
``forward_with_attention``, ``attention_maps`` or ``upsample_attention_map``); Grad-CAM is written
out from its definition (Selvaraju et al., ICCV 2017): the PNI logit's gradients at a layer,
averaged over space, weight that layer's activations; the positive part of their sum,
resized to the patch and scaled so that its minimum is 0 and its maximum 1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser
from monai.transforms import LoadImage
from torch import nn

from neonet_ext.networks import SpatialAttention


def neocls_network(config_files: Sequence[str | os.PathLike], checkpoint: str | os.PathLike) -> nn.Module:
    """NeoCls's ``network_def`` as the layered ``config_files`` define it, with the weights of
    ``checkpoint`` (a state dict), in eval mode."""
    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files])
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return network.eval()


def saved_patch(path: str | os.PathLike) -> torch.Tensor:
    """A TLCR patch file as NeoCls reads it: (2, X, Y, Z), float32."""
    return torch.as_tensor(LoadImage(image_only=True, ensure_channel_first=True)(str(path)), dtype=torch.float32)


def _resize(volume: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(volume, size=tuple(size), mode="trilinear", align_corners=False)


def spatial_gate_map(network: nn.Module, patch: torch.Tensor) -> torch.Tensor:
    """The mean over PattenNet's blocks of the spatial-attention gates of ``patch`` (C, X, Y, Z),
    each resized trilinearly to the patch (strided blocks' gates are coarser): (1, X, Y, Z)."""
    gates: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: gates.append(out))
             for m in network.modules() if isinstance(m, SpatialAttention)]
    try:
        with torch.no_grad():
            network.eval()(torch.as_tensor(patch, dtype=torch.float32)[None])
    finally:
        for h in hooks:
            h.remove()
    assert gates, f"{type(network).__name__} has no spatial attention gate"
    return torch.stack([_resize(gate, patch.shape[1:]) for gate in gates]).mean(0)[0]


def gradcam_map(network: nn.Module, layer: str, patch: torch.Tensor, class_idx: int = 1) -> torch.Tensor:
    """Grad-CAM of logit ``class_idx`` at module ``layer`` for ``patch`` (C, X, Y, Z), on the patch
    grid and scaled to [0, 1] (high where the class's evidence is): (1, X, Y, Z)."""
    saved: dict[str, torch.Tensor] = {}
    hook = dict(network.named_modules())[layer].register_forward_hook(lambda _m, _i, out: saved.update(a=out))
    try:
        with torch.enable_grad():
            logits = network.eval()(torch.as_tensor(patch, dtype=torch.float32)[None])
            (grad,) = torch.autograd.grad(logits[0, class_idx], saved["a"])
    finally:
        hook.remove()
    weights = grad.mean(dim=tuple(range(2, grad.ndim)), keepdim=True)
    cam = _resize(torch.relu((weights * saved["a"].detach()).sum(1, keepdim=True)), patch.shape[1:])[0]
    return (cam - cam.min()) / (cam.max() - cam.min())
