"""Run the study's tasks in worker processes, in dependency order, with progress and a time estimate."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from neonet_ext.study.tasks import Task, execute, init_worker

__all__ = ["run_tasks"]


def _estimate_key(task: Task) -> tuple[str, str]:
    # cells of one model take about as long as each other, whatever the ratio or fold
    return (task.kind, task.name.split("-", 1)[1].rsplit("-r", 1)[0] if task.kind == "cell" else task.name.split("-", 1)[-1])


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


def run_tasks(
    tasks: Sequence[Task],
    workers: int,
    threads: int,
    tracking_uri: str | None,
    experiment_name: str,
    describe: Callable[[Task, dict[str, Any]], str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Run every task not done yet; return ``{name: {"seconds", "error", "skipped"}}`` for all of them.

    A task starts once the tasks it ``needs`` have succeeded (NeoGen stages before cells, as
    they unlock the most). A task whose prerequisite failed is not run and gets that as its
    error. One progress line per finished task says how many are left and about how long
    they will take, from the mean times of finished tasks of the same kind.
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
    pending = [t for t in tasks if t.name not in results]
    if results:
        log(f"resuming: {len(results)} of {len(tasks)} tasks were done before, {len(pending)} to run")
    if not pending:
        return results

    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    total, finished = len(tasks), len(results)
    start = time.perf_counter()
    running: dict[Future, Task] = {}
    context = multiprocessing.get_context("spawn")  # torch and OpenMP do not survive fork well
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker, initargs=(threads,)) as pool:
        while pending or running:
            progressed = True
            while progressed:
                progressed = False
                for task in list(pending):
                    failed = [n for n in task.needs if n in results and results[n]["error"]]
                    if failed:
                        pending.remove(task)
                        results[task.name] = {"name": task.name, "seconds": 0.0, "skipped": False,
                                              "error": f"not run: {failed[0]} failed"}
                        finished += 1
                        log(f"[{finished}/{total}] {task.name}: not run, {failed[0]} failed")
                        progressed = True
            ready = [t for t in pending if all(n in results for n in t.needs)]
            ready.sort(key=lambda t: t.kind != "neogen")
            for task in ready[: max(0, workers - len(running))]:
                pending.remove(task)
                running[pool.submit(execute, task, tracking_uri, experiment_name)] = task
            if not running:
                if pending:
                    raise ValueError(f"tasks wait on each other: {[t.name for t in pending][:5]}")
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                task = running.pop(future)
                result = future.result()
                result["skipped"] = False
                results[task.name] = result
                finished += 1
                if not result["error"]:
                    clock.add(task, result["seconds"])
                left = [t for t in (*pending, *running.values())]
                guesses = [clock.guess(t) for t in left]
                known = [g for g in guesses if g is not None]
                estimate = ""
                if left and known:
                    remaining = sum(known) / len(known) * len(left) if len(known) < len(left) else sum(known)
                    estimate = f"; {len(left)} left, about {_format(remaining / workers)}"
                elif left:
                    estimate = f"; {len(left)} left"
                what = describe(task, result) if describe else "done"
                status = f"FAILED ({result['error']}); log: {task.log_file}" if result["error"] else what
                log(f"[{finished}/{total}] {task.name}: {status} in {_format(result['seconds'])}{estimate} "
                    f"({_format(time.perf_counter() - start)} so far)")
    return results
