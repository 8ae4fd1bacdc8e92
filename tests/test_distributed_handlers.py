"""Which handlers a rank of a ``torchrun`` job attaches, and what the others leave on disk."""

from __future__ import annotations

import os

from monai.handlers import TensorBoardStatsHandler, ValidationHandler

import neonet_ext.engines.distributed as distributed


def _as_rank(monkeypatch, rank: int) -> None:
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: rank)


def test_other_ranks_drop_writers_and_their_event_files_but_keep_the_shared_folder(monkeypatch, tmp_path):
    log_dir = tmp_path / "tensorboard"
    handlers = [TensorBoardStatsHandler(log_dir=str(log_dir)), ValidationHandler(interval=1, validator=None)]
    _as_rank(monkeypatch, 1)
    kept = distributed.handlers_for_this_rank(handlers)
    assert kept == handlers[1:]
    assert not list(log_dir.glob(f"*.{os.getpid()}.*"))
    # rank 0 may have made the folder and not yet opened its own file in it (a race seen in CI)
    assert log_dir.is_dir()


def test_rank_zero_keeps_every_handler(monkeypatch, tmp_path):
    handlers = [TensorBoardStatsHandler(log_dir=str(tmp_path)), ValidationHandler(interval=1, validator=None)]
    _as_rank(monkeypatch, 0)
    assert distributed.handlers_for_this_rank(handlers) == handlers
    assert list(tmp_path.glob(f"*.{os.getpid()}.*"))
