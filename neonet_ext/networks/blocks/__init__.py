"""Building blocks of the NeoNet networks."""

from .dual_attention import ChannelAttention, DualAttentionBlock, SpatialAttention

__all__ = ["ChannelAttention", "DualAttentionBlock", "SpatialAttention"]
