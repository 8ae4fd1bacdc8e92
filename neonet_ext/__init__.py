"""NeoNet extensions shared by the NeoSeg, NeoGen and NeoCls MONAI bundles."""

__version__ = "0.1.0"
