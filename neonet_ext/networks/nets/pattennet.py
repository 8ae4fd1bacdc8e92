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
    "REGION_CHANNELS",
    "PattenNet",
    "PattenNetFromLatents",
    "FrozenLatentEncoder",
    "region_fractions",
    "region_means",
    "attention_means",
    "upsample_attention_map",
]

_INTERPOLATION_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
#: pooling of PattenNet's last stage -> (vectors of its width, extra scalars) the head reads
_POOLINGS = {"avg": (1, 0), "avgmax": (2, 0), "regions": (5, 1), "attention": (3, 1)}
#: poolings that read the tumour and tissue masks (carried on the latent as REGION_CHANNELS)
_MASKED_POOLINGS = ("regions", "attention")
#: region pooling's masks ride on the latent as these many trailing channels (tissue and tumour fractions)
REGION_CHANNELS = 2


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


def region_fractions(patch: torch.Tensor, grid: list[int]) -> torch.Tensor:
    """
    Share of each cell of a coarser grid that lies in the tissue and in the tumour of TLCR patches.

    TLCR zeroes the image outside its masks: channel 0 (image inside liver + tumour) is non-zero in the
    tissue, the last channel (image inside the tumour) in the tumour.

    Args:
        patch: TLCR patches of shape (B, C, *spatial).
        grid: the coarser grid, e.g. the latent's (x, y, z).

    Returns:
        fractions of shape (B, 2, *grid) in [0, 1]: channel 0 tissue, channel 1 tumour.
    """
    inside = torch.stack([patch[:, 0] != 0, patch[:, -1] != 0], dim=1).float()
    return F.interpolate(inside, size=list(grid), mode="area")


def _dilate(mask: torch.Tensor, voxels: int) -> torch.Tensor:
    """Boolean masks (B, *spatial) grown by ``voxels`` cells (a cube)."""
    grown = mask.unsqueeze(1).float()
    if mask.dim() == 4:
        grown = F.max_pool3d(grown, 2 * voxels + 1, stride=1, padding=voxels)
    elif mask.dim() == 3:
        grown = F.max_pool2d(grown, 2 * voxels + 1, stride=1, padding=voxels)
    else:
        grown = F.max_pool1d(grown, 2 * voxels + 1, stride=1, padding=voxels)
    return grown[:, 0] > 0


def _region_mean(features: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean of ``features`` (B, C, *spatial) over the boolean ``region`` (B, *spatial); 0 where it is empty."""
    weights = region.unsqueeze(1).to(features.dtype)
    return (features * weights).flatten(2).sum(-1) / weights.flatten(2).sum(-1).clamp(min=1.0)


def _tumour_regions(
    fractions: torch.Tensor, grid: list[int], rim: int, far: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boolean (B, *grid) tumour, rim and far-liver cells, and the log tumour size (B, 1); see :func:`region_means`."""
    size = torch.log1p(fractions[:, 1].flatten(1).sum(dim=1, keepdim=True))
    cells = F.interpolate(fractions, size=grid, mode="area")
    tissue, tumour_share = cells[:, 0] > 0.5, cells[:, 1]
    tumour = tumour_share > 0.5
    per_case: list[int] = [-1]
    for _ in range(tumour.dim() - 1):
        per_case.append(1)
    peak = tumour_share.flatten(1).amax(dim=1).view(per_case)
    found = tumour.flatten(1).any(dim=1).view(per_case)
    tumour = torch.where(found, tumour, (tumour_share >= peak) & (peak > 0))
    rim_region = _dilate(tumour, rim) & tissue & ~tumour
    far_region = tissue & ~_dilate(tumour, far)
    return tumour, rim_region, far_region, size


def region_means(features: torch.Tensor, fractions: torch.Tensor, rim: int = 1, far: int = 3) -> torch.Tensor:
    """
    Feature means over the tumour, the liver rim around it and the far liver, their contrasts, and the tumour size.

    Cells more than half inside count as inside. A tumour smaller than half a cell keeps its fullest cell(s).
    The rim is the tissue within ``rim`` cells of the tumour; the far liver the tissue beyond ``far`` cells.
    An empty region averages to 0.

    Args:
        features: maps of shape (B, C, *spatial).
        fractions: tissue and tumour fractions (B, 2, *grid) as :func:`region_fractions` gives them, on any grid
            (resampled by area to the features' grid; the size is summed on the given one).
        rim: cells of the rim.
        far: cells from the tumour where the far liver begins.

    Returns:
        (B, 5 * C + 1): [tumour, rim, far, rim - far, tumour - far] means, then log(1 + tumour cells of ``fractions``).
    """
    tumour, rim_region, far_region, size = _tumour_regions(fractions, list(features.shape[2:]), rim, far)
    inside, near, away = _region_mean(features, tumour), _region_mean(features, rim_region), _region_mean(features, far_region)
    return torch.cat([inside, near, away, near - away, inside - away, size], dim=1)


def attention_means(
    attended: torch.Tensor, gate: torch.Tensor | None, fractions: torch.Tensor, rim: int = 1, far: int = 3
) -> torch.Tensor:
    """
    The attention-weighted feature mean over the whole grid, the far liver's mean, their contrast, and the tumour size.

    Only the gate decides which cells the first vector reads: for the head to see the tumour or its rim apart from
    the rest, the spatial attention has to put its mass there.

    Args:
        attended: gated features ``x * gate`` of shape (B, C, *spatial), as a Dual Attention Block returns them.
        gate: that block's spatial gate (B, 1, *spatial) in [0, 1]; None (spatial attention off) weighs every cell
            alike.
        fractions: tissue and tumour fractions, as for :func:`region_means`.
        rim: cells of the rim (only to match :func:`region_means`' regions; the rim is not read here).
        far: cells from the tumour where the far liver begins.

    Returns:
        (B, 3 * C + 1): [sum(gate * x) / sum(gate), far mean of ``attended``, their difference], then log(1 +
        tumour cells of ``fractions``).
    """
    _, _, far_region, size = _tumour_regions(fractions, list(attended.shape[2:]), rim, far)
    if gate is None:
        weighted = attended.flatten(2).mean(dim=-1)
    else:
        weighted = attended.flatten(2).sum(dim=-1) / gate.flatten(2).sum(dim=-1).clamp(min=1e-6)
    away = _region_mean(attended, far_region)
    return torch.cat([weighted, away, weighted - away, size], dim=1)


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
    channel axis, refined by ``num_blocks`` stages of (3x3x3 conv + norm + act, Dual Attention Block), pooled
    (by default over the tumour, its rim and the liver beyond, ``pooling="regions"``) and classified by a
    dropout + linear head.

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
        pooling: how the last stage's map becomes one vector: ``"avg"`` (global mean), ``"avgmax"``
            (global mean and maximum concatenated, so that a small, strong response is not averaged away),
            ``"regions"``: means over the tumour, the liver rim around it and the liver beyond it, the
            rim-minus-far and tumour-minus-far contrasts, and the log tumour size (see
            :func:`region_fractions`), so that the halo's contrast is not averaged into the rest (the default;
            the NeoCls docs compare it with ``"avg"`` on held-out patients), or ``"attention"``: the mean
            weighted by the last block's spatial gate, the far liver's mean, their contrast and the log tumour
            size (:func:`attention_means`), so that what the head reads of the tumour passes through the gate.
        region_rim: with ``"regions"``, voxels of the last stage's grid around the tumour read as its rim.
        region_far: with ``"regions"`` or ``"attention"``, voxels of the last stage's grid from the tumour where
            the far liver begins.
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
        pooling: str = "regions",
        region_rim: int = 1,
        region_far: int = 3,
        reduction: int = 16,
        kernel_size: int = 7,
        use_channel_attention: bool = True,
        use_spatial_attention: bool = True,
        act: str | tuple = "relu",
        norm: str | tuple = "batch",
        dropout: float = 0.5,
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
        if not 0 < region_rim < region_far:
            raise ValueError(f"need 0 < region_rim < region_far, got {region_rim} and {region_far}.")
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
        self.region_rim, self.region_far = region_rim, region_far
        self.region_channels = REGION_CHANNELS  # attributes: TorchScript reads no module globals
        self.masked_pooling = pooling in _MASKED_POOLINGS
        vectors, scalars = _POOLINGS[pooling]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels * vectors + scalars, out_channels))

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
            ``[c * L, (c + 1) * L)``; with ``pooling="regions"``, followed by the patch's
            :data:`REGION_CHANNELS` tissue and tumour fractions on the latent grid (:func:`region_fractions`).
        """
        # Folding channels into the batch shares the encoder weights across channels in a single pass.
        z = self.latent_encoder(x.flatten(0, 1).unsqueeze(1))
        z = z.unflatten(0, [x.shape[0], -1]).flatten(1, 2)
        if self.masked_pooling:
            z = torch.cat([z, region_fractions(x, list(z.shape[2:])).to(z.dtype)], dim=1)
        return z

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
            z: stacked latent means of shape (B, in_channels * L, x, y, z), as :meth:`encode` gives them
                (with the region fractions after them for ``pooling="regions"``).

        Returns:
            logits and attention maps, as :meth:`forward_with_attention`.
        """
        fractions: torch.Tensor | None = None
        if self.masked_pooling:
            z, fractions = z[:, : -self.region_channels], z[:, -self.region_channels :]
        h = z
        maps: list[torch.Tensor] = []
        gate: torch.Tensor | None = None
        for stage in self.stages:
            h, gate = stage.attention.forward_with_attention(stage.conv(h))
            if gate is not None:
                maps.append(gate)
        if fractions is not None and self.pooling == "attention":
            pooled = attention_means(h, gate, fractions, self.region_rim, self.region_far)
        elif fractions is not None:
            pooled = region_means(h, fractions, self.region_rim, self.region_far)
        elif self.pooling == "avgmax":
            pooled = torch.cat([h.flatten(2).mean(dim=-1), h.flatten(2).amax(dim=-1)], dim=1)
        else:
            pooled = h.flatten(2).mean(dim=-1)
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
