"""Dual (channel + spatial) attention, after CBAM.

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018, https://arxiv.org/abs/1807.06521.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from monai.networks.layers.factories import Conv

__all__ = ["ChannelAttention", "SpatialAttention", "DualAttentionBlock"]


class ChannelAttention(nn.Module):
    """
    CBAM channel attention gate ``M_c(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F)))``.

    One MLP (``channels -> max(1, channels // reduction) -> channels`` with a ReLU in between) is shared by the
    average- and the max-pooled descriptors.

    Args:
        channels: number of input channels C.
        reduction: reduction ratio r of the MLP hidden layer.
        spatial_dims: number of spatial dimensions of the input.
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_dims: int = 3) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"channels and reduction must be positive, got {channels=}, {reduction=}.")
        self.spatial_dims = spatial_dims
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: features of shape (B, C, *spatial).

        Returns:
            the gate in [0, 1], shape (B, C, 1, ..., 1) with ``spatial_dims`` singleton axes.
        """
        flat = x.flatten(2)
        gate = torch.sigmoid(self.mlp(flat.mean(dim=-1)) + self.mlp(flat.amax(dim=-1)))
        for _ in range(self.spatial_dims):  # a loop, not view(*shape): TorchScript cannot unpack lists
            gate = gate.unsqueeze(-1)
        return gate


class SpatialAttention(nn.Module):
    """
    CBAM spatial attention gate ``M_s(F) = sigmoid(conv([mean_c(F); max_c(F)]))``.

    Args:
        kernel_size: odd size of the single 2-in, 1-out convolution; padding ``kernel_size // 2`` keeps the
            spatial size.
        spatial_dims: number of spatial dimensions of the input.
    """

    def __init__(self, kernel_size: int = 7, spatial_dims: int = 3) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number to preserve the size, got {kernel_size}.")
        self.conv = Conv[Conv.CONV, spatial_dims](2, 1, kernel_size=kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: features of shape (B, C, *spatial).

        Returns:
            the gate in [0, 1], shape (B, 1, *spatial).
        """
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class DualAttentionBlock(nn.Module):
    """
    Dual Attention Block: CBAM channel attention followed by spatial attention,
    ``F' = M_c(F) * F``, ``F'' = M_s(F') * F'``.

    Switching both attentions off gives the identity (the ablation baselines).

    Args:
        channels: number of input (and output) channels C.
        reduction: reduction ratio of the channel-attention MLP.
        kernel_size: kernel size of the spatial-attention convolution.
        use_channel_attention: apply the channel gate.
        use_spatial_attention: apply the spatial gate.
        spatial_dims: number of spatial dimensions of the input.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        kernel_size: int = 7,
        use_channel_attention: bool = True,
        use_spatial_attention: bool = True,
        spatial_dims: int = 3,
    ) -> None:
        super().__init__()
        self.channel_attention = (
            ChannelAttention(channels, reduction=reduction, spatial_dims=spatial_dims)
            if use_channel_attention
            else None
        )
        self.spatial_attention = (
            SpatialAttention(kernel_size=kernel_size, spatial_dims=spatial_dims) if use_spatial_attention else None
        )

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            x: features of shape (B, C, *spatial).

        Returns:
            the attended features (B, C, *spatial) and the spatial gate (B, 1, *spatial),
            or ``None`` for the gate when spatial attention is off.
        """
        if self.channel_attention is not None:
            x = x * self.channel_attention(x)
        if self.spatial_attention is None:
            return x, None
        gate = self.spatial_attention(x)
        return x * gate, gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: features of shape (B, C, *spatial).

        Returns:
            the attended features, same shape as ``x``.
        """
        return self.forward_with_attention(x)[0]
