"""Running a bundle's configs for real with `python -m monai.bundle run`, as a user would."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from monai.bundle import ConfigParser

from neonet_ext.utils.bundle import bundle_run_command

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
    files = [configs_dir / c if isinstance(c, str) else c for c in configs]
    result = subprocess.run(bundle_run_command(files, *overrides, launcher=launcher), cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    if check and result.returncode != 0:
        # the root cause sits early in a long traceback (and once per rank): name every distinct error line
        lines = (result.stdout + result.stderr).splitlines()
        errors = list(dict.fromkeys(line for line in lines if re.search(r"\w(Error|Exception)\b", line)))[:20]
        raise AssertionError(f"bundle run failed ({result.returncode}); its error lines:\n" + "\n".join(errors)
                             + f"\n--- the end of its output:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def parse_configs(configs_dir: Path, configs: Sequence[str | Path], *overrides: str) -> ConfigParser:
    """The config that ``run_bundle(configs_dir, configs, *overrides)`` runs, read here: the same
    layered files, then the ``--id value`` pairs as ``monai.bundle run`` applies them (values read
    as Python literals where they are ones, as its command line reads them). Build any object
    of the run with ``get_parsed_content`` to check what an override made of it."""
    parser = ConfigParser()
    parser.read_config([str(configs_dir / c if isinstance(c, str) else c) for c in configs])
    assert len(overrides) % 2 == 0 and all(k.startswith("--") for k in overrides[::2]), overrides
    for key, value in zip(overrides[::2], overrides[1::2]):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
        parser[key[2:]] = value
    return parser


# torchrun with every line of rank r's output prefixed "[default<r>]:" (--tee 3), so a test can
# tell which ranks trained
TWO_CPU_PROCESSES = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--tee", "3"]


def check_two_rank_run(result: subprocess.CompletedProcess, run_dir: Path, epoch: int = 1,
                       engine: str = "Trainer") -> None:
    """Assert that both ranks of a ``TWO_CPU_PROCESSES`` training run finished ``epoch`` (as the
    log of ``engine`` says) and that one process alone wrote the TensorBoard logs and the
    checkpoint in ``run_dir``."""
    log = result.stdout + result.stderr
    for rank in (0, 1):
        finished = rf"^\[default{rank}\]:.*{engine} - INFO - Epoch\[{epoch}\] Complete"
        assert re.search(finished, log, re.M), f"rank {rank}:\n" + "\n".join(re.findall(r"^.*Epoch.*$", log, re.M))
    # TensorBoard names each event file after the process that wrote it
    writers = {p.name.split(".")[-2] for p in (run_dir / "tensorboard").iterdir()}
    assert len(writers) == 1, sorted((run_dir / "tensorboard").iterdir())
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [f"checkpoint_epoch={epoch}.pt"]
