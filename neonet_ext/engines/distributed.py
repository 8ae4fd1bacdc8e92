"""Multi-GPU (``torchrun``) training: which handlers each rank attaches."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.distributed as dist
from monai.handlers import CheckpointSaver, MLFlowHandler, StatsHandler, TensorBoardHandler

__all__ = ["handlers_for_this_rank"]

#: Handlers that write (logs, runs, checkpoints): rank 0 alone attaches them.
_WRITERS = (CheckpointSaver, MLFlowHandler, StatsHandler, TensorBoardHandler)


def handlers_for_this_rank(handlers: Sequence[Any] | None) -> list[Any] | None:
    """The handlers this process of a ``torchrun`` job attaches: all of them on rank 0 (or
    outside ``torch.distributed``); on other ranks, only those that write nothing.

    Logging, TensorBoard, MLflow and checkpoint-saving handlers run on rank 0 alone, so
    that each log, run and checkpoint is written once. The rest (validation, learning-rate
    schedules, time limits, checkpoint loading) must run on every rank to keep the ranks in step.
    """
    if handlers is None or not dist.is_initialized() or dist.get_rank() == 0:
        return None if handlers is None else list(handlers)
    for handler in handlers:
        if isinstance(handler, TensorBoardHandler) and handler.internal_writer:
            _discard_event_file(handler)
    return [h for h in handlers if not isinstance(h, _WRITERS)]


def _discard_event_file(handler: TensorBoardHandler) -> None:
    """Close the handler's own TensorBoard writer and delete the empty event file it made when built.

    The writer opens its file in the handler's constructor, before this rank knows it will not
    log; the file's name ends with the process id (TensorBoard's naming), which tells this
    process's file from rank 0's in the same folder.
    """
    handler.close()
    # MONAI exposes neither the handler's writer nor its folder (``log_dir`` goes straight into the
    # private ``_writer``), so the folder can only be read from the writer itself.
    log_dir = Path(handler._writer.get_logdir())
    for event_file in log_dir.glob(f"events.out.tfevents.*.{os.getpid()}.*"):
        event_file.unlink(missing_ok=True)
    # The folder stays: rank 0 may have made it and not yet opened its own file in it.
