"""NeoNet's MONAI Label tasks (MONAI Label imports the lib package from the app's folder)."""
