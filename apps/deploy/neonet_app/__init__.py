"""NeoNet PNI application for the MONAI Deploy App SDK; run it with ``python apps/deploy/neonet_app``."""
