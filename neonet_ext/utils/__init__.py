"""Small utilities shared by the NeoNet bundles."""

from neonet_ext.utils.io import AtomicNibabelWriter, atomic_path, atomic_write

__all__ = ["AtomicNibabelWriter", "atomic_path", "atomic_write"]
