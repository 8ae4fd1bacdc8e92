"""Run the study's tasks on Ray: each task a Ray task with its resources, started once the tasks it needs
have finished; one progress line per finished task, with an estimate of what is left.

By default a local Ray instance starts inside the calling process, on 127.0.0.1 only, sized to the
study's workers, and stops with it. With ``address`` the same tasks go to an existing Ray cluster,
whose nodes must see the study's folder and the bundles at the same paths (a shared file system).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from neonet_ext.study.tasks import Task, execute

__all__ = ["check_ray_address", "ray_session", "run_tasks", "task_threads"]

#: Ray's switch for multi-node clusters: off, a Ray instance binds every server to 127.0.0.1 instead of
#: this machine's network address. Read when ``ray`` is imported, and inherited by its processes.
_LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
#: Tasks exchange a few small dictionaries: the object store needs little of the machine's shared memory.
_OBJECT_STORE_BYTES = 256 * 1024**2


def _estimate_key(task: Task) -> tuple[str, str]:
    # cells of one model take about as long as each other, whatever the ratio or fold
    what = task.name.split("-", 1)[-1]  # without the fold
    return (task.kind, what.rsplit("-r", 1)[0] if task.kind == "cell" else what)


class _Clock:
    """Mean durations per kind of task, for the estimate of what is left."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], list[float]] = {}

    def add(self, task: Task, seconds: float) -> None:
        self.seconds.setdefault(_estimate_key(task), []).append(seconds)

    def guess(self, task: Task) -> float | None:
        key = _estimate_key(task)
        for values in (self.seconds.get(key), [s for k, v in self.seconds.items() if k[0] == task.kind for s in v]):
            if values:
                return sum(values) / len(values)
        return None


def _format(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Refuse, at once, an address where no Ray cluster answers (``ray.init`` would retry for minutes)."""
    if address == "auto":
        return  # Ray looks for a cluster started on this machine and says so at once when there is none
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return
    except ValueError:
        raise ValueError(f"Ray address '{address}' is not host:port (e.g. 10.0.0.5:6379), ray://host:port or auto") from None
    except OSError as e:
        raise ConnectionError(f"no Ray cluster at {address}: {e.strerror or e}") from None


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int) -> Iterator[Any]:
    """Ray, connected for the length of the block: the cluster at ``address``, or a local instance of
    ``num_cpus`` CPUs on 127.0.0.1 that stops at the end. Yields the ``ray`` module.

    Raises:
        ImportError: Ray is not installed (the ``study`` extra).
        ConnectionError: no cluster answers at ``address``; nothing is started.
    """
    if address:
        check_ray_address(address)
    else:
        for key, value in _LOOPBACK_ONLY.items():
            os.environ.setdefault(key, value)
    try:
        import ray
    except ImportError as e:
        raise ImportError("the study runs on Ray: install the study extra "
                          "(pip install -c constraints.txt -e '.[study]')") from e
    if ray.is_initialized():
        yield ray  # the caller's own Ray connection
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **options)
    else:
        # Ray starts its workers at niceness 15, below any other job on the machine: beside one, the study's
        # workers got 8 % of a core (a NeoSeg patch took 88 s instead of 9.7). They run at the study's own
        # priority instead; `nice python -m neonet_ext.study ...` still lowers both.
        ray.init(num_cpus=num_cpus, object_store_memory=_OBJECT_STORE_BYTES,
                 _system_config={"worker_niceness": os.nice(0)}, **options)
    try:
        yield ray
    finally:
        ray.shutdown()


def task_threads(workers: int, threads: int) -> int:
    """Torch threads (and Ray CPUs) of each task: ``threads``, or 0 to share this machine's cores among ``workers``."""
    return threads or max(1, (os.cpu_count() or 1) // workers)


def _run_after(task: Task, tracking_uri: str | None, experiment_name: str, threads: int,
               *prerequisites: dict[str, Any]) -> dict[str, Any]:
    """The body of every Ray task: runs once Ray has the results of ``prerequisites`` (the tasks ``task``
    needs), unless one of them failed."""
    failed = [p["name"] for p in prerequisites if p["error"]]
    if failed:
        return {"name": task.name, "seconds": 0.0, "error": f"not run: {failed[0]} failed", "ran": False}
    import torch

    torch.set_num_threads(threads)
    return {**execute(task, tracking_uri, experiment_name), "ran": True}


def _submission_order(tasks: Sequence[Task], done: set[str]) -> list[Task]:
    """Every task after those it needs; NeoGen stages as early as that allows (they unlock the most cells)."""
    order, placed = [], set(done)
    pending = sorted(tasks, key=lambda t: t.kind != "neogen")
    while pending:
        ready = [t for t in pending if all(n in placed for n in t.needs)]
        if not ready:
            raise ValueError(f"tasks wait on each other: {[t.name for t in pending][:5]}")
        task = ready[0]
        order.append(task)
        placed.add(task.name)
        pending.remove(task)
    return order


def run_tasks(
    tasks: Sequence[Task],
    workers: int,
    threads: int,
    tracking_uri: str | None,
    experiment_name: str,
    describe: Callable[[Task, dict[str, Any]], str] | None = None,
    log: Callable[[str], None] = print,
    address: str | None = None,
    gpus_per_task: float = 0,
) -> dict[str, dict[str, Any]]:
    """Run every task not done yet on Ray; return ``{name: {"seconds", "error", "skipped"}}`` for all of them.

    Each task is a Ray task asking for ``threads`` CPUs (and ``gpus_per_task`` GPUs) that Ray starts once
    the tasks it ``needs`` have finished; one whose prerequisite failed is not run and gets that as its
    error. Locally, Ray gets ``workers x threads`` CPUs, so ``workers`` tasks run at a time; on the cluster
    at ``address``, as many as its CPUs hold. One progress line per finished task says how many are left
    and about how long they will take, from the mean times of finished tasks of the same kind.

    Raises:
        ValueError: a task needs an unknown task, or tasks need each other.
        ConnectionError: no Ray cluster at ``address``.
    """
    by_name = {t.name: t for t in tasks}
    unknown = {n for t in tasks for n in t.needs} - set(by_name)
    if unknown:
        raise ValueError(f"tasks need unknown tasks: {sorted(unknown)}")
    results: dict[str, dict[str, Any]] = {}
    clock = _Clock()
    for task in tasks:
        if task.is_done:
            seconds = float(task.done_file.read_text().strip() or 0)
            results[task.name] = {"name": task.name, "seconds": seconds, "error": "", "skipped": True}
            clock.add(task, seconds)
    order = _submission_order([t for t in tasks if t.name not in results], set(results))
    if results:
        log(f"resuming: {len(results)} of {len(tasks)} tasks were done before, {len(order)} to run")
    if not order:
        return results

    threads = task_threads(workers, threads)
    total, finished = len(tasks), len(results)
    start = time.perf_counter()
    with ray_session(address, num_cpus=workers * threads) as ray:
        parallel = max(1, int(ray.cluster_resources().get("CPU", workers * threads)) // threads)
        run_remote = ray.remote(num_cpus=threads, num_gpus=gpus_per_task, max_retries=0)(_run_after)
        refs: dict[Any, Task] = {}
        ref_of: dict[str, Any] = {}
        for task in order:
            prerequisites = [ref_of[n] for n in task.needs if n in ref_of]
            ref = run_remote.options(name=task.name).remote(task, tracking_uri, experiment_name, threads, *prerequisites)
            refs[ref], ref_of[task.name] = task, ref
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            task = refs.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 -- a lost worker or node: reported, the rest go on
                failed = [n for n in task.needs if results.get(n, {}).get("error")]
                message = f"not run: {failed[0]} failed" if failed else f"{type(e).__name__}: {str(e).splitlines()[0]}"[:300]
                result = {"name": task.name, "seconds": 0.0, "error": message, "ran": not failed}
            ran = result.pop("ran")
            result["skipped"] = False
            results[task.name] = result
            finished += 1
            if not result["error"]:
                clock.add(task, result["seconds"])
            left = list(refs.values())
            known = [g for g in (clock.guess(t) for t in left) if g is not None]
            estimate = ""
            if left and known:
                remaining = sum(known) / len(known) * len(left) if len(known) < len(left) else sum(known)
                estimate = f"; {len(left)} left, about {_format(remaining / min(parallel, len(left)))}"
            elif left:
                estimate = f"; {len(left)} left"
            if not ran:
                log(f"[{finished}/{total}] {task.name}: {result['error']}{estimate}")
                continue
            what = describe(task, result) if describe else "done"
            status = f"FAILED ({result['error']}); log: {task.log_file}" if result["error"] else what
            log(f"[{finished}/{total}] {task.name}: {status} in {_format(result['seconds'])}{estimate} "
                f"({_format(time.perf_counter() - start)} so far)")
    return results
