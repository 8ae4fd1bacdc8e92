"""keep_freed_memory: the memory a step frees is kept for the next step instead of being mapped anew."""

from __future__ import annotations

import subprocess
import sys

import pytest

REPEATED_ALLOCATIONS = """
import ctypes, resource, sys
from neonet_ext.utils.memory import keep_freed_memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
if sys.argv[1] == "keep":
    assert keep_freed_memory()

def step():  # what a training step does with its activations: allocate 64 MiB, write it, free it
    block = libc.malloc(2**26)
    ctypes.memset(block, 1, 2**26)
    libc.free(block)

step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_memory_is_reused_instead_of_mapped_again():
    def page_faults(setting: str) -> int:
        out = subprocess.run([sys.executable, "-c", REPEATED_ALLOCATIONS, setting], capture_output=True, text=True,
                             check=True, env={"PATH": "/usr/bin:/bin"})
        return int(out.stdout.strip())

    default, kept = page_faults("default"), page_faults("keep")
    # by default each step maps 64 MiB afresh (16384 page faults); kept heap pages fault no more
    assert default > 20 * 10_000
    assert kept < default / 20
