"""NeoNet extensions shared by the NeoSeg, NeoGen and NeoCls MONAI bundles.

Subpackages load on first use, so a bundle config needs only ``$import neonet_ext``
to write ``neonet_ext.utils.bundle.bundle_root(...)`` or ``neonet_ext.data...``.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("data", "engines", "generative", "labels", "metrics", "networks", "roc", "transforms", "utils", "visualize")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
