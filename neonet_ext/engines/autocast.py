"""Mixed precision on the CPU for training: MONAI's engines autocast on CUDA only."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["AutocastInferer", "cpu_has_fast_bfloat16"]


def cpu_has_fast_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX); elsewhere it is emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class AutocastInferer(Inferer):
    """Run another inferer under ``torch.autocast`` and hand back float32 outputs.

    MONAI's ``SupervisedTrainer(amp=True)`` autocasts on CUDA only. On a CPU with bfloat16
    support (AVX512-BF16, AMX), running the forward pass in bfloat16 makes a 3D network's
    update about 1.5x faster (``benchmarks/bench_neoseg_training.py``); the weights, the loss
    and the optimiser stay in float32, as with CUDA AMP.

    Args:
        inferer: the inferer to run (e.g. ``SimpleInferer``).
        enabled: False runs ``inferer`` as it is (e.g. on a GPU, where the engine's own ``amp`` applies).
        device_type: ``torch.autocast``'s device type.
        dtype: the lower precision.
    """

    def __init__(self, inferer: Inferer, enabled: bool = True, device_type: str = "cpu",
                 dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.inferer = inferer
        self.enabled = enabled
        self.device_type = device_type
        self.dtype = dtype

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return self.inferer(inputs, network, *args, **kwargs)
        with torch.autocast(self.device_type, dtype=self.dtype):
            outputs = self.inferer(inputs, network, *args, **kwargs)
        return outputs.float() if isinstance(outputs, torch.Tensor) else outputs
