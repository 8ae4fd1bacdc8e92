"""Running a bundle's configs for real with `python -m monai.bundle run`, as a user would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_bundle(
    configs_dir: Path,
    configs: Sequence[str | Path],
    *overrides: str,
    launcher: Sequence[str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run the layered ``configs`` (names under ``configs_dir``, or paths) from the repository root.

    ``launcher`` replaces the interpreter (e.g. ``torch.distributed.run``); with ``check`` a
    non-zero exit raises with the end of the output.
    """
    files = "[" + ",".join(f"'{configs_dir / c if isinstance(c, str) else c}'" for c in configs) + "]"
    cmd = [*(launcher or [sys.executable]), "-m", "monai.bundle", "run", "--config_file", files, *overrides]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"bundle run failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result
