"""Stop training gracefully after a wall-clock budget."""

from __future__ import annotations

import logging
import time

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events


class TimeLimitHandler:
    """Terminate an ignite engine at the end of the first epoch that ends past ``limit_seconds``.

    The clock starts when the engine starts (not when the handler is built, so dataset
    caching does not count). Stopping at an epoch boundary keeps the epoch's handlers
    (validation, checkpoint saving) consistent, so a run cut by the budget resumes like
    any other. Under ``torch.distributed`` rank 0's clock decides for every rank, so
    the ranks stop at the same epoch. Unlike ``ignite.handlers.TimeLimit`` it has ``attach`` and so can sit in a
    bundle's ``train#handlers`` list.

    Args:
        limit_seconds: the budget in seconds; ``None`` disables the handler.
    """

    def __init__(self, limit_seconds: float | None) -> None:
        if limit_seconds is not None and limit_seconds <= 0:
            raise ValueError(f"time limit must be a positive number of seconds, got {limit_seconds}")
        self.limit_seconds = limit_seconds
        self.start: float | None = None
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        if self.limit_seconds is None:
            return
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def started(self, engine: Engine) -> None:
        self.start = time.perf_counter()

    def __call__(self, engine: Engine) -> None:
        elapsed = time.perf_counter() - (self.start or time.perf_counter())
        if dist.is_available() and dist.is_initialized():
            device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
            shared = torch.tensor([elapsed], dtype=torch.float64, device=device)
            dist.broadcast(shared, src=0)
            elapsed = float(shared.item())
        if elapsed > self.limit_seconds:
            self.logger.info(
                f"time limit of {self.limit_seconds:.0f} s reached after epoch {engine.state.epoch} "
                f"({elapsed:.0f} s): stopping"
            )
            engine.terminate()
