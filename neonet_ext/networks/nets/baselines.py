"""The seed study's 3D baseline classifiers, built by name, randomly initialised (no pretrained downloads)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from monai.networks.nets import (
    DenseNet121,
    DenseNet169,
    DenseNet201,
    DenseNet264,
    EfficientNet,
    EfficientNetBN,
    resnet50,
    resnet101,
    resnet152,
    resnet200,
)
from monai.networks.nets.efficientnet import efficientnet_params
from monai.networks.nets.swin_unetr import SwinTransformer
from monai.utils import ensure_tuple_rep

__all__ = ["CLASSIFIER_NAMES", "SwinClassifier", "get_classifier"]


class SwinClassifier(nn.Module):
    """
    3D Swin Transformer classifier: MONAI's (SwinUNETR) :class:`SwinTransformer` backbone, layer norm and global
    average pooling of the last stage's tokens, and a linear head.

    The backbone has 4 stages after a patch embedding, so the last stage has ``feature_size * 16`` channels at
    1/``(patch_size * 16)`` resolution; spatial sizes divisible by ``patch_size * 16`` (32 by default) avoid
    padding.

    Args:
        in_channels: number of input channels.
        out_channels: number of logits.
        spatial_dims: number of spatial dimensions (2 or 3).
        feature_size: embedding dimension of the patch embedding.
        depths: number of Swin blocks in each of the 4 stages.
        num_heads: number of attention heads in each of the 4 stages.
        window_size: local window size.
        patch_size: patch embedding size.
        mlp_ratio: ratio of the MLP hidden size to the embedding size.
        drop_rate: dropout rate inside the backbone.
        attn_drop_rate: attention dropout rate.
        dropout_path_rate: stochastic depth rate.
        dropout: dropout probability before the linear head.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_dims: int = 3,
        feature_size: int = 48,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: Sequence[int] | int = 7,
        patch_size: int = 2,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        dropout_path_rate: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        # SwinTransformer.forward hard-codes its four stages.
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"depths and num_heads must have 4 entries, got {depths=}, {num_heads=}.")
        self.backbone = SwinTransformer(
            in_chans=in_channels,
            embed_dim=feature_size,
            window_size=ensure_tuple_rep(window_size, spatial_dims),
            patch_size=ensure_tuple_rep(patch_size, spatial_dims),
            depths=depths,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=dropout_path_rate,
            spatial_dims=spatial_dims,
        )
        num_features = feature_size * 2 ** len(depths)
        self.norm = nn.LayerNorm(num_features)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: images of shape (B, in_channels, *spatial).

        Returns:
            logits of shape (B, out_channels).
        """
        last = self.backbone(x, normalize=False)[-1]
        tokens = self.norm(last.flatten(2).transpose(1, 2))
        return self.head(tokens.mean(dim=1))


def _resnet(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    def build(in_channels: int, out_channels: int, spatial_dims: int, width: float, **kwargs: Any) -> nn.Module:
        return factory(
            pretrained=False,
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            num_classes=out_channels,
            widen_factor=width,
            **kwargs,
        )

    return build


def _densenet(cls: type[nn.Module]) -> Callable[..., nn.Module]:
    def build(in_channels: int, out_channels: int, spatial_dims: int, width: float, **kwargs: Any) -> nn.Module:
        if width != 1.0:  # MONAI's defaults: 64 initial features, growth rate 32
            kwargs = {"init_features": max(4, round(64 * width)), "growth_rate": max(4, round(32 * width)), **kwargs}
        return cls(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)

    return build


# EfficientNet-B0's stages (MONAI's EfficientNetBN); B1-B3 scale them by width and depth coefficients.
_EFFICIENTNET_BLOCKS = [
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
]


def _efficientnet(model_name: str) -> Callable[..., nn.Module]:
    def build(in_channels: int, out_channels: int, spatial_dims: int, width: float, **kwargs: Any) -> nn.Module:
        if width == 1.0:
            return EfficientNetBN(
                model_name,
                pretrained=False,
                spatial_dims=spatial_dims,
                in_channels=in_channels,
                num_classes=out_channels,
                **kwargs,
            )
        width_coefficient, depth_coefficient, image_size, dropout_rate, drop_connect_rate = efficientnet_params[model_name]
        options = {"dropout_rate": dropout_rate, "drop_connect_rate": drop_connect_rate, "image_size": image_size, **kwargs}
        return EfficientNet(
            _EFFICIENTNET_BLOCKS,
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            num_classes=out_channels,
            width_coefficient=width_coefficient * width,
            depth_coefficient=depth_coefficient,
            **options,
        )

    return build


def _swin(in_channels: int, out_channels: int, spatial_dims: int, width: float, **kwargs: Any) -> nn.Module:
    if width != 1.0:  # a multiple of 12 keeps every stage divisible by its (3, 6, 12, 24) heads
        kwargs = {"feature_size": max(12, 12 * round(48 * width / 12)), **kwargs}
    return SwinClassifier(in_channels=in_channels, out_channels=out_channels, spatial_dims=spatial_dims, **kwargs)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet50": _resnet(resnet50),
    "resnet101": _resnet(resnet101),
    "resnet152": _resnet(resnet152),
    "resnet200": _resnet(resnet200),
    "densenet121": _densenet(DenseNet121),
    "densenet169": _densenet(DenseNet169),
    "densenet201": _densenet(DenseNet201),
    "densenet264": _densenet(DenseNet264),
    **{f"efficientnet-b{i}": _efficientnet(f"efficientnet-b{i}") for i in range(4)},
    "swin-transformer": _swin,
}

CLASSIFIER_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def get_classifier(
    name: str, in_channels: int = 2, out_channels: int = 2, spatial_dims: int = 3, width: float = 1.0, **kwargs: Any
) -> nn.Module:
    """
    Build a randomly initialised baseline classifier by name.

    Args:
        name: one of :data:`CLASSIFIER_NAMES` (case-insensitive).
        in_channels: number of input channels (2 for TLCR patches).
        out_channels: number of logits.
        spatial_dims: number of spatial dimensions.
        width: channel-width multiplier that keeps each network's depth (its family member): 1 is the
            published network; e.g. 0.25 gives a quarter of the channels of every stage, for small
            budgets such as the study's quick profile. ResNets scale ``widen_factor``, DenseNets their
            initial features and growth rate, EfficientNets their width coefficient, the Swin
            Transformer its embedding size.
        kwargs: extra arguments of the underlying MONAI constructor (or :class:`SwinClassifier`).

    Returns:
        a module mapping (B, in_channels, *spatial) to logits (B, out_channels).

    Raises:
        ValueError: for an unknown name, or when ``pretrained`` is requested (weights are never downloaded).
    """
    key = name.lower()
    if key not in _BUILDERS:
        raise ValueError(f"unknown classifier '{name}', valid names: {', '.join(CLASSIFIER_NAMES)}.")
    if kwargs.pop("pretrained", False):
        raise ValueError("pretrained weights are not supported: the baselines are trained from scratch.")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}.")
    return _BUILDERS[key](in_channels, out_channels, spatial_dims, width, **kwargs)
