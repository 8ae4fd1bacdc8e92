"""TLCR patches on other grids than NeoSeg's, and interpretable features of the PNI signs they hold.

Issue 20, item 3: does a finer grid than NeoSeg's 2 x 2 x 3 mm let a reader see the margin and the
thin perineural tracks that the coarse grid loses? :func:`grid_roi` gives the TLCR crop that keeps
today's field of view on another grid, :class:`GridPatchCutter` cuts ground-truth TLCR patches
with NeoSeg's own loading at any spacing, and :func:`patch_features` measures on a patch the signs
the synthetic generator paints (``neonet_ext/data/synthetic/anatomy.py``):

* ``tumour_volume_ml``: the tumour mask's volume.
* ``halo_contrast``: the halo multiplies the liver by ``1 - strength * exp(-d / width)`` (d: mm
  outside the tumour, width 2.5-7 mm), so ``1 - median(shell) / median(far liver)`` with the shell
  0-4 mm outside the tumour and the far liver 15-25 mm out (medians: vessels and tracks are dark).
* ``radial_cv``: spicules are narrow cones (``cos**60..200``) reaching up to ~0.37 radius beyond
  the margin: the spread (SD / mean) of the primary (largest) lesion's surface voxels' distance
  from its centroid.
* ``surface_ratio``: the irregular margin is 5 mm noise of up to 2.5 mm amplitude: the primary
  lesion's marching-cubes surface over that of a sphere of its volume (1 for a sphere).
* ``line_<scale>`` and ``tracks_<scale>`` (scales 1 and 1.5 mm): the tracks are tubes of signal 0.42 (liver 1) and radius
  0.8-1.6 mm tapering to half, running 3-28 mm from the tumour; liver-labelled, so in channel 0. A
  dark-line Hessian filter (scale ~1 mm) is averaged over the liver 2-15 mm outside the tumour
  (``line_*``; vessels and ducts answer too), and its thresholded voxels are counted as
  connected structures that touch the tumour (within 3 mm) and reach at least 8 mm from it
  (``tracks_*``).

All features are in physical units (mm, ml) so they compare across grids. Where the tracks are
known, :func:`painted_tracks` regenerates a case with its tracks' partial-volume fraction and
:func:`track_contrast` measures how dark they are on a grid. The study that uses all this is
``bundles/neocls/scripts/patch_grid_study.py`` (its results: ``bundles/neocls/docs/README.md``,
"Patch grid").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from neonet_ext.transforms import TLCR, TLCR_ROI_SIZE

__all__ = [
    "FEATURE_SIGNS",
    "painted_tracks",
    "track_contrast",
    "NEOSEG_SPACING",
    "GridPatchCutter",
    "dark_line_response",
    "grid_roi",
    "patch_features",
]

#: NeoSeg's network grid (``bundles/neoseg/configs/train.json`` ``spacing``), that TLCR_ROI_SIZE is counted on.
NEOSEG_SPACING = (2.0, 2.0, 3.0)
#: Each feature of :func:`patch_features` and the true sign of ``cohort.csv`` it is meant to read.
FEATURE_SIGNS = {
    "tumour_volume_ml": "tumour_volume_ml",
    "halo_contrast": "halo_strength",
    "radial_cv": "spiculation_amplitude",
    "surface_ratio": "margin_irregularity_mm",
    "line_1mm": "n_extensions",
    "tracks_1mm": "n_extensions",
    "line_1p5mm": "n_extensions",
    "tracks_1p5mm": "n_extensions",
}
#: Shells (mm outside the tumour) of the halo feature: the halo shell and the far-liver reference.
HALO_SHELL_MM = (0.0, 4.0)
FAR_LIVER_MM = (15.0, 25.0)
#: The rim searched for tracks (mm outside the tumour), the depth a rim voxel keeps inside the
#: liver (the masked patch drops to 0 outside it: a false edge) and the reach a track must show.
TRACK_RIM_MM = (2.0, 15.0)
LIVER_EDGE_MM = 3.0
TRACK_TOUCH_MM = 3.0
TRACK_REACH_MM = 8.0
#: Scales (mm) of the line filter (feature suffix -> scale), each at least half a voxel per axis:
#: 1 mm matches the tracks' radius, 1.5 mm is the finest a 2 x 2 x 3 mm grid resolves at all.
LINE_SCALES_MM = {"1mm": 1.0, "1p5mm": 1.5}
LINE_SCALE_MM = 1.0
#: Threshold of the dark-line response (scale-normalised, liver = 1) that marks a track voxel:
#: about the 99th percentile of the liver rim's response (0.01-0.06 at 1.5 mm in a probe of 5 training cases).
LINE_THRESHOLD = 0.03


def grid_roi(spacing: Sequence[float], base_roi: Sequence[int] = TLCR_ROI_SIZE,
             base_spacing: Sequence[float] = NEOSEG_SPACING) -> tuple[int, int, int]:
    """TLCR crop (voxels) on a grid of ``spacing`` mm that keeps the field of view of ``base_roi`` on ``base_spacing``.

    E.g. ``grid_roi((1, 1, 2)) == (128, 128, 48)``: 128 x 128 x 96 mm, as 64 x 64 x 32 at 2 x 2 x 3 mm.
    Sizes are rounded to the nearest voxel.
    """
    return tuple(int(round(n * b / s)) for n, b, s in zip(base_roi, base_spacing, spacing))


def dark_line_response(image: np.ndarray, spacing: Sequence[float], scale_mm: float = LINE_SCALE_MM) -> np.ndarray:
    """Dark-line (tube darker than its surround) response of a 3D ``image`` (X, Y, Z) at ``scale_mm``.

    Hessian of the Gaussian-smoothed image in mm units, scale-normalised by ``scale_mm**2``; with
    its eigenvalues ``e1 <= e2 <= e3`` a dark tube has ``e2, e3 > 0`` across it and ``e1 ~ 0``
    along it, a dark blob all three positive, an edge one. Returns ``max(e2 - |e1|, 0)`` (X, Y, Z),
    float32: about ``contrast / 4`` on the axis of a tube whose radius matches the scale.
    """
    spacing = np.asarray(spacing, float)
    sigma_mm = np.maximum(scale_mm, 0.5 * spacing)
    sigma = sigma_mm / spacing
    image = np.asarray(image, np.float32)
    hessian = np.empty((*image.shape, 3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            order = [0, 0, 0]
            order[i] += 1
            order[j] += 1
            d = ndimage.gaussian_filter(image, sigma, order=order, mode="nearest", truncate=3.0)
            d *= scale_mm**2 / (spacing[i] * spacing[j])
            hessian[..., i, j] = d
            hessian[..., j, i] = d
    e = np.linalg.eigvalsh(hessian)  # ascending
    return np.maximum(e[..., 1] - np.abs(e[..., 0]), 0).astype(np.float32)


def _surface_area_mm2(mask: np.ndarray, spacing: Sequence[float]) -> float:
    from skimage.measure import marching_cubes, mesh_surface_area

    padded = np.pad(mask.astype(np.float32), 1)
    verts, faces, _, _ = marching_cubes(padded, level=0.5, spacing=tuple(float(s) for s in spacing))
    return float(mesh_surface_area(verts, faces))


def patch_features(patch: np.ndarray, masks: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Interpretable PNI-sign features of one TLCR patch (see the module's docstring).

    Args:
        patch: (2, X, Y, Z) TLCR patch; channel 0 the image inside liver and tumour.
        masks: (2, X, Y, Z) liver-or-tumour and tumour masks of the patch (TLCR's ``masks``).
        spacing: the patch's voxel size (mm, X Y Z).

    Returns:
        the features of :data:`FEATURE_SIGNS`, NaN where the patch holds no tumour (or no liver
        far enough from it for the halo's reference).
    """
    spacing = np.asarray(spacing, float)
    tumour_full = masks[1] > 0
    out = {name: float("nan") for name in FEATURE_SIGNS}
    if not tumour_full.any():
        return out
    # work on the tumour's box plus the farthest shell (the patch may be 4x NeoSeg's in voxels)
    pad = np.ceil(FAR_LIVER_MM[1] / spacing).astype(int) + 1
    idx = np.argwhere(tumour_full)
    lo = np.maximum(idx.min(0) - pad, 0)
    hi = np.minimum(idx.max(0) + 1 + pad, tumour_full.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    tumour = tumour_full[box]
    tissue = masks[0][box] > 0
    liver = tissue & ~tumour
    image = patch[0][box].astype(np.float32)

    voxel_ml = float(np.prod(spacing)) / 1000.0
    volume_ml = float(tumour.sum()) * voxel_ml
    out["tumour_volume_ml"] = volume_ml

    outside = ndimage.distance_transform_edt(~tumour, sampling=spacing)
    shell = liver & (outside > HALO_SHELL_MM[0]) & (outside <= HALO_SHELL_MM[1])
    far = liver & (outside > FAR_LIVER_MM[0]) & (outside <= FAR_LIVER_MM[1])
    reference = float(np.median(image[far])) if far.sum() >= 20 else float("nan")
    if shell.any() and reference > 0:
        out["halo_contrast"] = 1.0 - float(np.median(image[shell])) / reference

    # the margin of the primary (largest) lesion: a satellite nodule is no spicule
    lesions, n_lesions = ndimage.label(tumour)
    sizes = ndimage.sum(tumour, lesions, np.arange(1, n_lesions + 1))
    primary = lesions == 1 + int(np.argmax(sizes))
    surface = primary & ~ndimage.binary_erosion(primary)
    centre = np.argwhere(primary).mean(0)
    radial = np.linalg.norm((np.argwhere(surface) - centre) * spacing, axis=1)
    out["radial_cv"] = float(radial.std() / radial.mean()) if radial.size > 3 else float("nan")
    sphere_area = np.pi ** (1 / 3) * (6 * float(primary.sum()) * float(np.prod(spacing))) ** (2 / 3)
    out["surface_ratio"] = _surface_area_mm2(primary, spacing) / sphere_area

    if reference > 0:
        inside = ndimage.distance_transform_edt(tissue, sampling=spacing)
        deep = liver & (inside > LIVER_EDGE_MM)
        rim = deep & (outside > TRACK_RIM_MM[0]) & (outside <= TRACK_RIM_MM[1])
        for suffix, scale in LINE_SCALES_MM.items():
            response = dark_line_response(image / reference, spacing, scale)
            out[f"line_{suffix}"] = float(response[rim].mean()) if rim.any() else float("nan")
            candidates = (response > LINE_THRESHOLD) & deep & (outside <= TRACK_RIM_MM[1])
            labels, n = ndimage.label(candidates, structure=np.ones((3, 3, 3), bool))
            count = 0
            if n:
                index = np.arange(1, n + 1)
                nearest = np.asarray(ndimage.minimum(outside, labels, index))
                farthest = np.asarray(ndimage.maximum(outside, labels, index))
                count = int(np.sum((nearest <= TRACK_TOUCH_MM) & (farthest >= TRACK_REACH_MM)))
            out[f"tracks_{suffix}"] = float(count)
    return out


class GridPatchCutter:
    """Ground-truth TLCR patches with NeoSeg's loading (``load_image`` of its ``train.json``) on chosen grids.

    The image and label are read and reoriented once; for each grid NeoSeg's own steps follow
    with its ``spacing`` replaced (bilinear image, nearest label), then intensity scaling, body
    crop and TLCR with the crop of :func:`grid_roi` (the field of view kept). The grid ``None`` is
    the input's own: Spacingd is skipped and the crop is sized per case.

    Args:
        neoseg_bundle_root: the NeoSeg bundle (its ``configs/train.json``).
        grids: name -> spacing (mm, X Y Z) or None for the input's own grid.
    """

    def __init__(self, neoseg_bundle_root: str | Path, grids: dict[str, Sequence[float] | None]) -> None:
        from monai.bundle import ConfigParser
        from monai.transforms import Compose, Spacingd

        self.grids = dict(grids)
        self.read = None
        self.rest: dict[str, Compose] = {}
        for name, spacing in self.grids.items():
            parser = ConfigParser()
            parser.read_config(str(Path(neoseg_bundle_root) / "configs" / "train.json"))
            parser["bundle_root"] = str(Path(neoseg_bundle_root).resolve())
            if spacing is not None:
                parser["spacing"] = [float(s) for s in spacing]
            steps = parser.get_parsed_content("load_image")
            # what comes before the resampling is the same for every grid, so a case is read once
            resample = next((i for i, t in enumerate(steps) if isinstance(t, Spacingd)), None)
            if resample is None:
                raise RuntimeError(f"NeoSeg's load_image has no Spacingd ({[type(t).__name__ for t in steps]}); "
                                   "GridPatchCutter cannot choose its grid.")
            if self.read is None:
                self.read = Compose(steps[:resample])
            self.rest[name] = Compose(steps[resample:] if spacing is not None else steps[resample + 1:])

    def __call__(self, case: dict) -> dict[str, dict]:
        """Patches of one case (``image``, ``label`` paths) on every grid.

        Returns:
            grid name -> ``{"patch": (2, *roi) float32, "masks": (2, *roi) uint8, "spacing": (3,),
            "roi": (3,), "seconds": time to read (shared, counted to every grid) and cut}``.
        """
        out = {}
        for name, (data, spacing, roi, seconds) in self.volumes(case).items():
            t1 = time.perf_counter()
            patch, masks, _ = TLCR(roi_size=roi).crop(data["image"], data["label"])
            out[name] = {"patch": patch, "masks": masks, "spacing": spacing, "roi": roi,
                         "seconds": seconds + time.perf_counter() - t1}
        return out

    def volumes(self, case: dict) -> dict[str, tuple]:
        """The case read once and brought to every grid by NeoSeg's steps, before TLCR.

        Returns:
            grid name -> ``(data, spacing, roi, seconds)``: ``data`` with ``image`` (1, X, Y, Z) float32
            and ``label`` (1, X, Y, Z) uint8 MetaTensors, the grid's spacing (3,), its TLCR crop (3,)
            and the seconds to read (shared, counted to every grid) and resample.
        """
        t0 = time.perf_counter()
        base = self.read({"image": case["image"], "label": case["label"]})
        read_s = time.perf_counter() - t0
        out = {}
        for name, spacing in self.grids.items():
            t0 = time.perf_counter()
            data = self.rest[name](dict(base))
            grid_spacing = tuple(float(s) for s in data["image"].pixdim[:3])
            roi = grid_roi(grid_spacing if spacing is None else spacing)
            out[name] = (data, grid_spacing, roi, read_s + time.perf_counter() - t0)
        return out


#: Track fraction (generator's partial volume at the input grid) that marks a voxel as track.
TRACK_FRACTION = 0.3
#: Label value given to track voxels in :func:`track_contrast`'s label map (liver otherwise).
TRACK_LABEL = 3
#: Scale (mm) of the local liver background that the track contrast is measured against.
BACKGROUND_SCALE_MM = 4.0
#: Track voxels are measured this far (mm) outside the tumour and inside the liver.
TRACK_OUTSIDE_MM = 3.0


def painted_tracks(index: int, seed: int, config) -> tuple:
    """Regenerate case ``index`` of a synthetic cohort with the partial-volume fraction of its perineural tracks.

    The generator labels its tracks liver; here :meth:`CaseBuilder.paint_tubes` is wrapped for the
    duration of :func:`~neonet_ext.data.synthetic.generate_case` to keep the ``extension`` tubes'
    fraction (X, Y, Z) before the tumour covers their roots.

    Returns:
        ``(case, fraction)``: the :class:`~neonet_ext.data.synthetic.SyntheticCase` (the same image
        and label as the written cohort) and the track fraction, float32 (X, Y, Z), zeros without tracks.
    """
    from neonet_ext.data.synthetic import anatomy, generate_case

    captured: dict[str, np.ndarray] = {}
    original = anatomy.CaseBuilder.paint_tubes

    def paint_tubes(builder, tissue, tubes, value=None, mask=None):
        if tissue == "extension":
            box = tubes.region()
            fraction = np.zeros(builder.grid.shape, np.float32)
            if box is not None:
                fraction[box] = tubes.frac[box] * (mask(box) if mask is not None else 1.0)
            captured["fraction"] = fraction
        return original(builder, tissue, tubes, value=value, mask=mask)

    anatomy.CaseBuilder.paint_tubes = paint_tubes
    try:
        case = generate_case(index, seed, config)
    finally:
        anatomy.CaseBuilder.paint_tubes = original
    return case, captured.get("fraction", np.zeros(case.label.shape, np.float32))


def track_contrast(patch: np.ndarray, masks: np.ndarray, track: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """How dark the known perineural tracks are in a TLCR patch, against the liver around them.

    Args:
        patch: (2, X, Y, Z) TLCR patch (channel 0: image inside liver and tumour, tracks included).
        masks: (2, X, Y, Z) liver-or-tumour and tumour masks.
        track: (X, Y, Z) bool, the track voxels on the patch's grid.
        spacing: voxel size (mm).

    Returns:
        ``track_mm3`` (volume of the track voxels measured: >= 3 mm outside the tumour, >= 2 mm
        inside the liver), ``contrast`` (``1 - median(track / background)``, background the liver
        without tracks smoothed at 4 mm; 0.58 for a track that fills its voxels, 0 for an invisible
        one), ``noise`` (robust SD of the liver's relative signal) and ``visible`` (share of
        track voxels darker than the background by more than twice the noise); NaN without track voxels.
    """
    spacing = np.asarray(spacing, float)
    image = patch[0].astype(np.float32)
    tumour, tissue = masks[1] > 0, masks[0] > 0
    liver = tissue & ~tumour
    out = {"track_mm3": 0.0, "contrast": float("nan"), "noise": float("nan"), "visible": float("nan")}
    if not tumour.any():
        return out
    outside = ndimage.distance_transform_edt(~tumour, sampling=spacing)
    inside = ndimage.distance_transform_edt(tissue, sampling=spacing)
    measured = track & liver & (outside >= TRACK_OUTSIDE_MM) & (inside >= 2.0)
    out["track_mm3"] = float(measured.sum() * np.prod(spacing))
    if not measured.any():
        return out
    plain = (liver & ~ndimage.binary_dilation(track)).astype(np.float32)
    sigma = BACKGROUND_SCALE_MM / spacing
    background = ndimage.gaussian_filter(image * plain, sigma) / np.maximum(ndimage.gaussian_filter(plain, sigma), 1e-3)
    relative = image / np.maximum(background, 1e-6)
    reference = relative[(plain > 0) & (inside >= 2.0)]
    noise = 1.4826 * float(np.median(np.abs(reference - np.median(reference))))
    values = relative[measured]
    out.update(contrast=1.0 - float(np.median(values)), noise=noise,
               visible=float(np.mean(values < 1.0 - 2.0 * noise)))
    return out
