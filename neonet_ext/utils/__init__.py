"""Small utilities shared by the NeoNet bundles.

``neonet_ext.utils.io`` (atomic writing) needs only the standard library;
``neonet_ext.utils.writers`` holds the MONAI writers, e.g. ``AtomicNibabelWriter``
for ``SaveImage(writer=...)``.
"""
