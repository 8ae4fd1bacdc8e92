"""The study's units of work, and running one in the current process (a Ray worker's, in the study).

Every task is a bundle config run in-process with ``monai.bundle.run`` (as
``python -m monai.bundle run`` would, without paying the interpreter and import start-up
each time), or one of the study's own patch jobs. A task writes its log to its own file and
a ``.done`` marker when it succeeds, so a killed study skips what was finished.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from neonet_ext.utils.io import atomic_write

__all__ = ["Task", "execute", "mlflow_settings"]


@dataclasses.dataclass
class Task:
    """One unit of the study.

    Attributes:
        name: unique name, also the MLflow run name (e.g. ``fold1-neogen-diffusion``).
        workdir: the task's folder: ``log.txt``, ``.done`` and whatever it writes.
        config_files: bundle configs layered in order (empty for a function task).
        overrides: config ids and values for the run.
        function: instead of a bundle run, ``"module:function"`` called with ``kwargs``.
        kwargs: arguments of ``function``.
        needs: names of the tasks that must have succeeded first.
        tracked: log the run to the study's MLflow store.
        params: what the run is (model, ratio, fold...), logged as the MLflow run's parameters.
        fresh: delete ``workdir`` before running (a cell restarts from scratch).
        kind: ``patches``, ``neogen`` or ``cell``, for progress and time estimates.
    """

    name: str
    workdir: str
    config_files: Sequence[str] = ()
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    function: str | None = None
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    needs: Sequence[str] = ()
    tracked: bool = False
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    fresh: bool = False
    kind: str = "cell"

    @property
    def done_file(self) -> Path:
        return Path(self.workdir) / ".done"

    @property
    def log_file(self) -> Path:
        return Path(self.workdir) / "log.txt"

    @property
    def is_done(self) -> bool:
        return self.done_file.is_file()

    @property
    def command_file(self) -> Path:
        return Path(self.workdir) / "command.sh"

    def command_line(self) -> str:
        """The shell command that re-runs this bundle task by hand (without MLflow tracking: add
        ``--tracking mlflow`` for that): ``python -m monai.bundle run`` on its config files and overrides."""
        from neonet_ext.utils.bundle import bundle_run_command

        if self.function:
            raise ValueError(f"task {self.name} calls {self.function}, it is not a bundle run")
        options = [part for key, value in self.overrides.items() for part in (f"--{key}", _command_value(value))]
        return shlex.join(bundle_run_command(self.config_files, *options))


def _command_value(value: Any) -> str:
    """An override as ``monai.bundle run`` reads it from the command line (python-fire: Python literals)."""
    if isinstance(value, str):
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        return repr(value)  # quoted, or python-fire would read "1.0" as a number
    if isinstance(value, (Mapping, Sequence)) or value is None or isinstance(value, (bool, int, float)):
        text = repr(value if not isinstance(value, Mapping) else dict(value))
        if ast.literal_eval(text) != value:
            raise ValueError(f"override value {value!r} does not survive the command line")
        return text
    raise TypeError(f"override value {value!r} ({type(value).__name__}) has no command-line form")


def _last_iteration_of_epoch(engine, iteration: int) -> bool:
    return iteration % engine.state.epoch_length == 0


def mlflow_settings(tracking_uri: str, experiment_name: str, run_name: str, params: Mapping[str, Any] | None = None) -> dict:
    """MONAI's MLflow tracking settings for one run: ``params`` as run parameters, the training loss
    once an epoch (every iteration would cost more than a small cell's training), no config artifacts."""
    from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

    settings = copy.deepcopy(DEFAULT_MLFLOW_SETTINGS)
    settings["configs"].update(
        {"tracking_uri": tracking_uri, "experiment_name": experiment_name, "run_name": run_name, "save_execute_config": False}
    )
    settings["configs"]["trainer"].update(iteration_log=_last_iteration_of_epoch, experiment_param=dict(params or {}))
    return settings


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (Python's and the C level's) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _call(function: str) -> Callable[..., Any]:
    import importlib

    module, name = function.split(":")
    return getattr(importlib.import_module(module), name)


def execute(task: Task, tracking_uri: str | None, experiment_name: str) -> dict[str, Any]:
    """Run ``task`` in this process; return ``{"name", "seconds", "error"}`` (error empty on success).

    Failures are caught and returned (the traceback goes to the task's log), so one bad
    task never stops the others.
    """
    import shutil
    import warnings

    if task.fresh and Path(task.workdir).exists():
        shutil.rmtree(task.workdir)
    Path(task.workdir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = ""
    with _output_to(task.log_file):
        print(f"== {task.name} ({time.strftime('%Y-%m-%d %H:%M:%S')})", flush=True)
        try:
            if not task.function:
                command = task.command_line()
                print(f"== the same run by hand: {command}", flush=True)
                atomic_write(task.command_file, lambda tmp: tmp.write_text(f"#!/usr/bin/env bash\n{command}\n"))
            if task.function:
                _call(task.function)(**task.kwargs)
            else:
                from monai.bundle import run

                tracked = task.tracked and tracking_uri
                tracking = mlflow_settings(tracking_uri, experiment_name, task.name, task.params) if tracked else None
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*arbitrary code.*")  # the study's own configs
                    run(config_file=list(task.config_files), tracking=tracking, **dict(task.overrides))
            task.done_file.write_text(f"{time.perf_counter() - start:.1f}\n")
        except BaseException as e:  # noqa: BLE001 -- reported to the caller, never raised
            if isinstance(e, KeyboardInterrupt):
                raise
            traceback.print_exc()
            error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
    return {"name": task.name, "seconds": time.perf_counter() - start, "error": error}
