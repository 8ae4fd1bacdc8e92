"""Helpers shared by the benchmark scripts (imported as ``_common``: the scripts' folder is on sys.path)."""

from __future__ import annotations

import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# Forks (a real fork, from this small process) and execs the command, then writes "wall maxrss_kib status".
# A child spawned straight from the benchmark would inherit its peak RSS: Linux carries the RSS high-water
# mark of the pre-exec memory (the parent's own, with vfork/posix_spawn) into the child's ru_maxrss.
_RUSAGE_WRAPPER = """
import os, sys, time
result, command = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(command[0], command)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(result, "w") as f:
    f.write(f"{time.perf_counter() - start} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


@dataclass
class ChildRun:
    """One child process: wall time (s), peak RSS (MiB) and its stdout + stderr."""

    wall: float
    max_rss_mib: float
    output: str


def run_child(command: list[str], log: Path) -> ChildRun:
    """Run ``command`` from the repository root, through a small forking wrapper for its own peak RSS."""
    result = log.with_suffix(".rusage")
    with open(log, "w+") as f:
        subprocess.run([sys.executable, "-c", _RUSAGE_WRAPPER, str(result), *command], cwd=REPO, stdout=f,
                       stderr=subprocess.STDOUT, check=True)
        f.seek(0)
        output = f.read()
    wall, max_rss_kib, status = result.read_text().split()
    if int(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({status}):\n{output[-3000:]}")
    return ChildRun(float(wall), int(max_rss_kib) / 1024, output)  # ru_maxrss is in KiB on Linux


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
