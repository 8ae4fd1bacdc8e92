"""A study task for the Ray tests: which node ran it (imported by the Ray workers, from this folder)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def record_node(path: str, seconds: float = 1.0, fail: bool = False) -> None:
    """Wait ``seconds`` (so that tasks overlap), then write the id of the Ray node this runs on to ``path``."""
    import ray

    time.sleep(seconds)
    if fail:
        raise RuntimeError("this task was asked to fail")
    Path(path).write_text(ray.get_runtime_context().get_node_id())


def record_niceness(path: str) -> None:
    """Write the niceness of the process this runs in to ``path``."""
    Path(path).write_text(str(os.nice(0)))
