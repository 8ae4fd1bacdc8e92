"""PattenNet: PNI classifier on the frozen latent space of a NeoGen AutoencoderKL, with Dual Attention Blocks."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai.networks.blocks import Convolution
from monai.networks.nets import AutoencoderKL
from monai.utils import ensure_tuple_rep

from neonet_ext.networks.blocks.dual_attention import DualAttentionBlock

__all__ = [
    "PattenNet",
    "PattenNetFromLatents",
    "FrozenLatentEncoder",
    "upsample_attention_map",
]

_INTERPOLATION_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
#: global pooling of PattenNet's last stage -> how many vectors of its width it concatenates
_POOLINGS = {"avg": 1, "avgmax": 2}


def upsample_attention_map(attention: torch.Tensor, spatial_size: Sequence[int]) -> torch.Tensor:
    """
    Resize an attention map from the latent grid to the patch grid, e.g. for overlays.

    Args:
        attention: map of shape (B, 1, x, y, z) (any number of spatial dims up to 3).
        spatial_size: target spatial size, e.g. ``(X, Y, Z)`` of the input patch.

    Returns:
        the linearly interpolated map (trilinear in 3D) of shape (B, 1, *spatial_size).
    """
    mode = _INTERPOLATION_MODES[attention.ndim - 2]
    return F.interpolate(attention, size=tuple(spatial_size), mode=mode, align_corners=False)


class FrozenLatentEncoder(nn.Module):
    """
    Deterministic encoding path of an :class:`AutoencoderKL`, frozen: ``z_mu = quant_conv_mu(encoder(x))``.

    Only the ``encoder`` and ``quant_conv_mu`` submodules are kept (no sampling, no decoder). Parameters never
    require grad, the module stays in eval mode whatever ``train()`` is asked, and it runs under ``no_grad``.

    Args:
        autoencoder: the (trained) autoencoder whose encoding path is taken.
    """

    def __init__(self, autoencoder: AutoencoderKL) -> None:
        super().__init__()
        self.encoder = autoencoder.encoder
        self.quant_conv_mu = autoencoder.quant_conv_mu
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenLatentEncoder:
        # The parent's train() recurses into children: swallow the mode so dropout/normalisation stay in inference.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: images of shape (N, 1, X, Y, Z).

        Returns:
            latent means of shape (N, L, x, y, z).
        """
        with torch.no_grad():
            return self.quant_conv_mu(self.encoder(x))


class PattenNet(nn.Module):
    """
    PNI classifier on the frozen NeoGen latent space, with Dual Attention Blocks.

    Each channel of a TLCR patch (channel 0: image inside liver + tumour, channel 1: image inside tumour) is
    encoded by the same frozen AutoencoderKL encoder into its mean latent; the latents are stacked on the
    channel axis, refined by ``num_blocks`` stages of (3x3x3 conv + norm + act, Dual Attention Block), globally
    average-pooled and classified by a dropout + linear head.

    Args:
        autoencoder: the NeoGen autoencoder (``in_channels=1``); only its encoding path is kept, frozen.
        autoencoder_checkpoint: optional NeoGen checkpoint loaded into ``autoencoder`` first
            (see :func:`neonet_ext.engines.load_weights`).
        in_channels: number of image channels of the patch, each encoded separately (2 for TLCR).
        out_channels: number of logits (2: class 1 = PNI).
        num_blocks: number of conv + Dual Attention stages N (0: pooling + head directly on the latents).
        features: output channels of each stage's convolution (int or one per stage).
        strides: stride of each stage's convolution (int or one per stage); 2 halves the grid, so that
            later stages see more of the tumour and its rim.
        pooling: how the last stage's map becomes one vector: ``"avg"`` (global mean) or ``"avgmax"``
            (global mean and maximum concatenated, so that a small, strong response is not averaged away).
        reduction: reduction ratio of the channel-attention MLP.
        kernel_size: kernel size of the spatial-attention convolution.
        use_channel_attention: enable channel attention in every block (ablation switch).
        use_spatial_attention: enable spatial attention in every block (ablation switch).
        act: activation of the stage convolutions.
        norm: normalisation of the stage convolutions.
        dropout: dropout probability before the linear head.
        spatial_dims: number of spatial dimensions; must match the autoencoder.

    Example::

        ae = AutoencoderKL(spatial_dims=3, channels=(32, 64, 64), latent_channels=4, num_res_blocks=1,
                           attention_levels=(False, False, False))
        net = PattenNet(ae, autoencoder_checkpoint="neogen/models/model.pt")
        optimizer = torch.optim.Adam(net.trainable_parameters(), 1e-4)
        logits = net(patch)  # patch: (B, 2, X, Y, Z) -> logits (B, 2)
        logits, maps = net.forward_with_attention(patch)  # maps: N x (B, 1, x, y, z)
    """

    def __init__(
        self,
        autoencoder: AutoencoderKL,
        autoencoder_checkpoint: str | os.PathLike | None = None,
        in_channels: int = 2,
        out_channels: int = 2,
        num_blocks: int = 2,
        features: int | Sequence[int] = 32,
        strides: int | Sequence[int] = 1,
        pooling: str = "avg",
        reduction: int = 16,
        kernel_size: int = 7,
        use_channel_attention: bool = True,
        use_spatial_attention: bool = True,
        act: str | tuple = "relu",
        norm: str | tuple = "batch",
        dropout: float = 0.2,
        spatial_dims: int = 3,
    ) -> None:
        super().__init__()
        if not isinstance(autoencoder, AutoencoderKL):
            raise TypeError(f"autoencoder must be a monai AutoencoderKL instance, got {type(autoencoder).__name__}.")
        if autoencoder.encoder.in_channels != 1:
            raise ValueError(f"the autoencoder must encode 1-channel images, got {autoencoder.encoder.in_channels}.")
        if autoencoder.encoder.spatial_dims != spatial_dims:
            raise ValueError(f"{spatial_dims=} does not match the autoencoder's {autoencoder.encoder.spatial_dims}.")
        if num_blocks < 0:
            raise ValueError(f"num_blocks must be >= 0, got {num_blocks}.")
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {sorted(_POOLINGS)}, got {pooling!r}.")
        if autoencoder_checkpoint is not None:
            # imported here: neonet_ext.engines imports this module (PNIPredictor upsamples its attention)
            from neonet_ext.engines.checkpoints import load_weights

            load_weights(autoencoder, autoencoder_checkpoint, what="NeoGen autoencoder")

        self.in_channels = in_channels
        self.latent_encoder = FrozenLatentEncoder(autoencoder)

        stage_features = ensure_tuple_rep(features, num_blocks) if num_blocks else ()
        stage_strides = ensure_tuple_rep(strides, num_blocks) if num_blocks else ()
        channels = in_channels * autoencoder.latent_channels
        stages: list[nn.Module] = []
        for out_features, stride in zip(stage_features, stage_strides):
            conv = Convolution(
                spatial_dims=spatial_dims,
                in_channels=channels,
                out_channels=out_features,
                strides=stride,
                kernel_size=3,
                act=act,
                norm=norm,
            )
            attention = DualAttentionBlock(
                out_features,
                reduction=reduction,
                kernel_size=kernel_size,
                use_channel_attention=use_channel_attention,
                use_spatial_attention=use_spatial_attention,
                spatial_dims=spatial_dims,
            )
            stages.append(nn.Sequential(OrderedDict(conv=conv, attention=attention)))
            channels = out_features
        self.stages = nn.ModuleList(stages)
        self.pooling = pooling
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels * _POOLINGS[pooling], out_channels))

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters to optimise: everything but the frozen latent encoder."""
        frozen = {id(p) for p in self.latent_encoder.parameters()}
        return (p for p in self.parameters() if id(p) not in frozen)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """
        Encode every patch channel with the shared frozen encoder.

        Args:
            x: patches of shape (B, in_channels, X, Y, Z).

        Returns:
            stacked latent means of shape (B, in_channels * L, x, y, z), channel c's latent at
            ``[c * L, (c + 1) * L)``.
        """
        # Folding channels into the batch shares the encoder weights across channels in a single pass.
        z = self.latent_encoder(x.flatten(0, 1).unsqueeze(1))
        return z.unflatten(0, [x.shape[0], -1]).flatten(1, 2)

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """
        Args:
            x: patches of shape (B, in_channels, X, Y, Z).

        Returns:
            logits (B, out_channels) and the spatial attention maps of the blocks, each (B, 1, x, y, z) on the
            latent grid (empty when ``num_blocks == 0`` or spatial attention is off); see
            :func:`upsample_attention_map` to bring them to the patch grid.
        """
        return self.classify_latents_with_attention(self.encode(x))

    def classify_latents_with_attention(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """
        Everything after the frozen encoder: what training on cached latents runs.

        Args:
            z: stacked latent means of shape (B, in_channels * L, x, y, z), as :meth:`encode` gives them.

        Returns:
            logits and attention maps, as :meth:`forward_with_attention`.
        """
        h = z
        maps: list[torch.Tensor] = []
        for stage in self.stages:
            h, gate = stage.attention.forward_with_attention(stage.conv(h))
            if gate is not None:
                maps.append(gate)
        h = h.flatten(2)
        pooled = h.mean(dim=-1) if self.pooling == "avg" else torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)
        return self.head(pooled), maps

    def attention_maps(self, x: torch.Tensor, upsample: bool = True) -> list[torch.Tensor]:
        """
        Args:
            x: patches of shape (B, in_channels, X, Y, Z).
            upsample: resize the maps to the patch size (B, 1, X, Y, Z) instead of the latent grid.

        Returns:
            one spatial attention map per block (empty when there is none).
        """
        maps = self.forward_with_attention(x)[1]
        if upsample:
            maps = [upsample_attention_map(m, x.shape[2:]) for m in maps]
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: patches of shape (B, in_channels, X, Y, Z).

        Returns:
            logits of shape (B, out_channels).
        """
        return self.forward_with_attention(x)[0]


class PattenNetFromLatents(nn.Module):
    """
    A PattenNet's layers after its frozen encoder, as a module of their own: training on cached latents
    (:class:`neonet_ext.data.LatentCache`) runs this, and updates the very parameters of ``network``,
    which keeps the whole model (raw patch in) for checkpoints and inference.

    Being a module, it can be wrapped in ``DistributedDataParallel`` like any trained network.

    Args:
        network: the PattenNet whose stages and head are run (shared, not copied).
    """

    def __init__(self, network: PattenNet) -> None:
        super().__init__()
        if not isinstance(network, PattenNet):
            raise TypeError(f"training on cached latents needs a PattenNet, got {type(network).__name__}.")
        self.network = network

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """
        Args:
            z: cached latent means of shape (B, in_channels * L, x, y, z).

        Returns:
            logits of shape (B, out_channels), equal to ``network(patch)`` for the patch ``z`` was encoded from.
        """
        return self.network.classify_latents_with_attention(z)[0]
