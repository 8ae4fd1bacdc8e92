"""The C allocator's settings for training on a CPU: keep freed memory for the next step."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

# mallopt parameters of glibc's malloc.h
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4


def keep_freed_memory(top_pad_bytes: int = 512 * 2**20, trim_threshold_bytes: int = 2**31 - 1) -> bool:
    """Make glibc keep the memory a training step frees for the next step, instead of returning it.

    glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
    unmaps it on free, so the activations of each step are mapped, page-faulted in and unmapped again.
    This turns ``mmap`` off for ``malloc`` (``M_MMAP_MAX`` 0), grows the heap in steps of
    ``top_pad_bytes`` and gives it back only above ``trim_threshold_bytes`` (at most 2 GiB) free at its top: the
    process then holds its peak footprint between steps. It is what the environment variables
    ``MALLOC_MMAP_MAX_=0 MALLOC_TOP_PAD_=... MALLOC_TRIM_THRESHOLD_=...`` do, for this process only
    and from this call on. ``benchmarks/bench_malloc.py`` measures the effect.

    Returns:
        True when the settings were applied; False off glibc (nothing is changed).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((_M_MMAP_MAX, 0), (_M_TOP_PAD, top_pad_bytes), (_M_TRIM_THRESHOLD, trim_threshold_bytes))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
