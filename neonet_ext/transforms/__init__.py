"""MONAI-style transforms shared by the NeoNet bundles (array and dictionary pairs)."""

from neonet_ext.transforms.checks import CheckImage, CheckImaged, CheckPatch, CheckPatchd, image_problem, patch_problem
from neonet_ext.transforms.conditioning import UNCONDITIONAL, ClassContext, ClassContextd
from neonet_ext.transforms.inversion import InputGridArgmax, InputGridArgmaxd
from neonet_ext.transforms.latents import LoadLatentd, SelectLatentViewd
from neonet_ext.transforms.loading import INPUT_WARNINGS, LoadScan, LoadScand, scan_meta
from neonet_ext.transforms.masking import UNMASKED, MaskImaged
from neonet_ext.transforms.refinement import REFINER_FLIPS, REFINER_INTENSITY_PERCENTILES, RefinerInputsd, TumourRefine, TumourRefined, refiner_inputs
from neonet_ext.transforms.tumour_mask import MIN_TUMOUR_VOLUME_ML, CleanTumourLabel, CleanTumourLabeld
from neonet_ext.transforms.tlcr import TLCR, TLCR_ROI_SIZE, TLCRd, tlcr_window, tumour_bounding_box
from neonet_ext.transforms.views import PatchView, PatchViewd, patch_views

__all__ = [
    "ClassContext",
    "ClassContextd",
    "UNCONDITIONAL",
    "CheckImage",
    "CheckImaged",
    "CheckPatch",
    "CheckPatchd",
    "image_problem",
    "INPUT_WARNINGS",
    "InputGridArgmax",
    "InputGridArgmaxd",
    "LoadLatentd",
    "LoadScan",
    "LoadScand",
    "scan_meta",
    "MaskImaged",
    "UNMASKED",
    "SelectLatentViewd",
    "PatchView",
    "PatchViewd",
    "patch_views",
    "patch_problem",
    "MIN_TUMOUR_VOLUME_ML",
    "REFINER_FLIPS",
    "REFINER_INTENSITY_PERCENTILES",
    "RefinerInputsd",
    "TumourRefine",
    "TumourRefined",
    "refiner_inputs",
    "CleanTumourLabel",
    "CleanTumourLabeld",
    "TLCR",
    "TLCR_ROI_SIZE",
    "TLCRd",
    "tlcr_window",
    "tumour_bounding_box",
]
