"""Small utilities shared by the NeoNet bundles.

``io`` (atomic writing) and ``timing`` (medians of steps timed in turn) need only the standard
library; ``writers`` holds the MONAI writers, e.g. ``AtomicNibabelWriter`` for
``SaveImage(writer=...)``; ``bundle`` the helpers that bundle configs call; ``tables`` the CSV
writer; ``memory`` the allocator settings of the CPU trainings. Each loads on first use.
"""

import importlib

_SUBMODULES = ("bundle", "io", "memory", "tables", "timing", "writers")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
