"""The anatomy painter of the synthetic cohort: :class:`CaseBuilder` and the numbers it paints with.

A case is painted tissue by tissue from implicit surfaces (:mod:`.geometry`), later tissues
covering earlier ones, then blurred, biased and made noisy by :meth:`CaseBuilder.acquire`.

Conventions of the constants below: sizes are millimetres of a full-size adult and are
multiplied by the case's ``anatomy_scale`` (``CaseBuilder.scale``) when painted; ``(lo, hi)``
pairs are ranges drawn uniformly per case; signals are relative to liver parenchyma (1).
Positions inside the methods are fractions of the body's half-width (x), half-depth (y)
and of the liver's height below the diaphragm's dome (z).

Every draw comes from the case's one anatomy stream, in the order the steps run: reordering
steps or draws, or changing any number here, changes the cohort's bytes (and so needs a new
:data:`~neonet_ext.data.synthetic.config.GENERATOR_VERSION`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from neonet_ext.data.synthetic.config import SyntheticCohortConfig
from neonet_ext.data.synthetic.geometry import (
    FULL_VOLUME,
    Grid,
    Tubes,
    ancestors,
    ellipsoid_distance,
    elliptic_cylinder_distance,
    grow_tree,
    partial_volume,
    random_perpendicular,
    rotate,
    rotation_matrix,
    smooth_intersection,
    smooth_noise,
    smooth_union,
    unit,
)
from neonet_ext.data.synthetic.latents import CaseLatents

__all__ = ["LIVER_TISSUES", "TISSUE_ID", "TISSUE_INTENSITY", "CaseBuilder", "TumourSite"]

# --------------------------------------------------------------------------- tissues

#: Nominal HBP signal of each tissue relative to liver parenchyma (per case jittered
#: by up to +-8 %). Fat is suppressed, fluid and blood are dark on T1, and only
#: hepatocytes take up gadoxetic acid.
TISSUE_INTENSITY: dict[str, float] = {
    "air": 0.0,
    "subcutaneous_fat": 0.26,
    "visceral_fat": 0.22,
    "muscle": 0.42,
    "lung": 0.04,
    "heart": 0.36,
    "rib": 0.28,
    "bone": 0.46,
    "csf": 0.12,
    "spinal_cord": 0.34,
    "aorta": 0.3,
    "ivc": 0.34,
    "portal_trunk": 0.37,
    "bowel_wall": 0.5,
    "bowel_content": 0.12,
    "stomach_wall": 0.52,
    "stomach_content": 0.14,
    "gas": 0.02,
    "kidney_cortex": 0.74,
    "kidney_medulla": 0.6,
    "spleen": 0.58,
    "pancreas": 0.64,
    "liver": 1.0,
    "gallbladder": 0.13,
    "hepatic_vein": 0.36,
    "portal_vein": 0.38,
    "bile_duct": 0.24,
    "extension": 0.42,
    "tumour": 0.4,
}
#: Tissue id of each tissue in ``CaseBuilder.owner`` (its place in :data:`TISSUE_INTENSITY`).
TISSUE_ID = {name: i for i, name in enumerate(TISSUE_INTENSITY)}
#: Tissues that the label map calls liver: parenchyma with its intrahepatic vessels,
#: ducts and the perineural tracks.
LIVER_TISSUES = ("liver", "hepatic_vein", "portal_vein", "bile_duct", "extension")
#: Per-case factor on every tissue's signal but the liver's (the reference).
TISSUE_SIGNAL_JITTER = (0.92, 1.08)

# --------------------------------------------------------------------------- frame of the case

#: Top of the liver's (right) dome below the top slice: the field starts in the lung bases.
DOME_BELOW_TOP_MM = (25.0, 45.0)
#: Cranio-caudal height of the liver; most organs are placed by fractions of it.
LIVER_HEIGHT_MM = (150.0, 185.0)
#: What :meth:`CaseBuilder.depth` answers for a point outside the liver or the grid.
OUTSIDE_LIVER_DEPTH_MM = -1e3

# --------------------------------------------------------------------------- body wall

#: Standard deviation of the relative amplitude of outline harmonics 2-5 (a not quite elliptic body).
BODY_HARMONIC_SD = 0.015
#: Supine patients lie on a flattened back: the outline is this much shorter straight down.
BACK_FLATTENING = 0.08
#: Mean subcutaneous fat thickness (thicker anteriorly, see :meth:`CaseBuilder.fat_thickness`).
SUBCUTANEOUS_FAT_MM = (10.0, 28.0)
#: Thickness of the muscular wall inside the fat.
BODY_WALL_MM = (9.0, 13.0)
#: The lower chest narrows by this fraction, starting ``CHEST_NARROWING_START_MM`` below the
#: dome and complete ``CHEST_NARROWING_SPAN_MM`` above that, curving the wall over the liver.
CHEST_NARROWING = 0.12
CHEST_NARROWING_START_MM = 30
CHEST_NARROWING_SPAN_MM = 80
#: Standard deviation of the body's relative widening from the bottom to the top of the field.
BODY_TAPER_SD = 0.04
#: Imperfect fat suppression: relative standard deviation of the fat signal's smooth drift.
FAT_SUPPRESSION_DRIFT = 0.18
#: Control points (X, Y, Z) of the fields that drift across the whole volume (fat signal, coil bias).
SLOW_FIELD_CONTROL_POINTS = (3, 3, 2)

# --------------------------------------------------------------------------- spine and great vessels

#: Vertebral body centre in front of the back, beyond 65 % of the subcutaneous fat.
SPINE_DEPTH_MM = (55, 65)
VERTEBRAL_BODY_RADII_MM = (22, 18)
#: Spinous process and the paraspinal muscles beside it lie this far behind the vertebral body centre.
POSTERIOR_ELEMENTS_MM = 38
SPINOUS_PROCESS_RADII_MM = (6, 14)
PARASPINAL_X_MM = 34
PARASPINAL_RADII_MM = (27, 17)
#: Spinal canal (CSF around the cord) behind the vertebral body centre.
SPINAL_CANAL_MM = 25
SPINAL_CANAL_RADII_MM = (9, 8)
SPINAL_CORD_RADII_MM = (4.5, 4)
#: Intervertebral discs: one per vertebra, a Gaussian band of this width darkening bone by DISC_DARKENING.
DISC_PERIOD_MM = 32
DISC_WIDTH_MM = 3.5
DISC_DARKENING = 0.4
#: Psoas muscles: beside and slightly in front of the spine, growing caudally from a thin start.
PSOAS_X_MM = 32
PSOAS_ANTERIOR_MM = 4
PSOAS_START_RADIUS_MM = 4
PSOAS_GROWTH_MM = (14, 12)
#: Aorta (left of the midline) and IVC (right): centres in front of the vertebral body centre.
GREAT_VESSELS_ANTERIOR_MM = 32
AORTA_X_MM = -17
AORTA_RADIUS_MM = 11
IVC_X_MM = 22
IVC_RADII_MM = (12, 9)

# --------------------------------------------------------------------------- diaphragm and thorax

#: How far a diaphragmatic dome falls from its peak: at the body's side (per half-width
#: squared), front and back (per half-depth squared), and more in the posterior recesses.
DOME_LATERAL_FALL_MM = 110
DOME_AP_FALL_MM = 25
DOME_POSTERIOR_RECESS_MM = 45
#: The left dome lies lower than the right.
LEFT_DOME_LOWER_MM = (8, 20)
#: Muscle between the lung and the cavity or the dome (diaphragm, intercostal wall).
DIAPHRAGM_MM = 5
HEART_ABOVE_DOME_MM = 42
HEART_RADII_MM = (52, 40, 50)
#: The heart rests on the diaphragm this far above the dome surface.
HEART_ON_DIAPHRAGM_MM = 2
#: Ribs: pairs from the spine, the first above the dome, each next one lower and shorter.
RIB_COUNT = 11
FIRST_RIB_ABOVE_DOME_MM = 55
RIB_SPACING_MM = 26
RIB_JITTER_MM = 3
#: A rib falls this much from the spine to the front.
RIB_DESCENT_MM = 70
RIB_RADIUS_MM = 3.6

# --------------------------------------------------------------------------- abdominal organs

STOMACH_RADII_MM = (42, 36, 55)
STOMACH_WALL_MM = 5
KIDNEY_RADII_MM = (26, 30, 54)
KIDNEY_CORTEX_MM = 6
#: Kidney centres in front of the vertebral body centre.
KIDNEY_ANTERIOR_MM = 6
SPLEEN_RADII_MM = (22, 55, 50)
#: Blend of the spleen's hollow at its hilum (the crescent's concave side).
SPLEEN_HILUM_BLEND_MM = 4
#: Pancreas radius from head to tail.
PANCREAS_RADIUS_MM = (13, 8)
#: Pancreatic body in front of the aorta's centre.
PANCREAS_ANTERIOR_TO_AORTA_MM = 22
#: Lobulation of the pancreas signal: relative amplitude and feature size.
PANCREAS_LOBULATION = 0.12
PANCREAS_LOBULE_MM = 12
#: Splenic vein: behind the pancreatic tail, joining the portal trunk at the confluence in front of the aorta.
SPLENIC_VEIN_BEHIND_TAIL_MM = 6
PORTAL_CONFLUENCE_ANTERIOR_TO_AORTA_MM = 18
SPLENIC_VEIN_RADIUS_MM = 4.5
PORTAL_TRUNK_RADIUS_MM = 6.5
#: Standard deviation of the liver hilum's position (per axis).
HILUM_JITTER_MM = 4
#: Bowel loops: control-point spacing of the two random fields whose joint zero set they are.
BOWEL_LOOP_SPACING_MM = 25
BOWEL_WALL_MM = 6
#: Relative spread of the lumen's signal (fluid, chyme, faeces).
BOWEL_CONTENT_VARIATION = 0.6
GALLBLADDER_RADII_MM = (16, 14, 38)
CHOLECYSTECTOMY_PROBABILITY = 0.15

# --------------------------------------------------------------------------- liver and its trees

#: Probability of a Riedel lobe (a tongue of right lobe reaching caudally).
RIEDEL_LOBE_PROBABILITY = 0.3
#: Margin of the liver's box beyond its lobes' bounding spheres.
LIVER_BOX_PAD_MM = 10
#: Smooth-union width of the lobes.
LOBE_BLEND_MM = 25
#: (amplitude, feature size) of the smooth random deformations of the liver surface, coarse then fine.
LIVER_DEFORMATIONS_MM = ((9, 50), (4, 25))
#: Parenchymal texture: relative amplitude and feature size.
LIVER_TEXTURE = 0.035
LIVER_TEXTURE_SCALE_MM = 12
#: Thinnest vessel or duct drawn (thinner would vanish in partial volume).
MIN_TUBE_RADIUS_MM = 0.45
#: Centreline step of the vessel trees; each step turns a little.
TREE_STEP_MM = 5.0
#: Last generation of the vessel trees that is drawn.
TREE_GENERATIONS = 6
#: Trunks of the portal tree from the hilum: (direction, length mm, radius mm).
PORTAL_TRUNKS = (((1.0, -0.1, 0.3), 30, 7.0), ((-0.8, 0.6, 0.2), 32, 6.0))
#: Trunks of the hepatic vein tree from the IVC (right, middle, left): (direction, length mm, radius mm).
HEPATIC_TRUNKS = (((1.0, 0.2, -0.35), 38, 6.0), ((0.2, 1.0, -0.35), 36, 5.5), ((-0.7, 0.8, -0.15), 30, 5.0))
#: The hepatic veins join the IVC in front of its centre.
HEPATIC_ROOT_ANTERIOR_MM = 4
#: Bile duct radius relative to its portal branch, and the gap between their walls (mm, unscaled).
DUCT_TO_VEIN_RADIUS = 0.3
DUCT_VEIN_GAP_MM = 0.5
#: Ducts upstream of the tumour are this much wider, up to DILATED_DUCT_MAX_MM (scaled) + 1 mm.
DUCT_DILATATION = 2.5
DILATED_DUCT_MAX_MM = 4.0

# --------------------------------------------------------------------------- tumour and PNI signs

#: Smallest lesion radius in voxels (of the coarsest axis): smaller would vanish in partial volume.
MIN_LESION_RADIUS_VOXELS = 1.5
#: The tumour centre lies at least this fraction of its radius deep in the liver.
TUMOUR_MIN_DEPTH = 0.85
#: Share of the half TLCR crop that the tumour's signs may reach from its centre.
CROP_MARGIN = 0.9
#: Satellite nodule: radius relative to the primary's, gap between their surfaces, placement tries.
SATELLITE_RADIUS_FRACTION = (0.2, 0.4)
SATELLITE_GAP_MM = (3, 15)
SATELLITE_TRIES = 24
#: The tumour's box reaches this many halo widths beyond it (the halo decays as exp(-d / width)).
HALO_PAD_WIDTHS = 3
#: Lobulation of the tumour margin: number of waves and the standard deviation of their amplitude.
N_LOBULATIONS = 4
LOBULATION_SD = 0.08
#: Exponent range of a spicule's cos**p cone (higher is narrower).
SPICULE_SHARPNESS = (60, 200)
#: Feature size of the margin irregularity noise.
MARGIN_NOISE_SCALE_MM = 5.0
#: Tumour signal texture: relative amplitude and feature size.
TUMOUR_TEXTURE = 0.15
TUMOUR_TEXTURE_SCALE_MM = 6.0
#: Necrotic core signal relative to bile (fluid).
NECROSIS_SIGNAL = 0.6
#: Perineural tracks: the shortest reach beyond the tumour radius, the step of a wandering
#: track, where tracks start (fraction of the radius from the centre, inside the margin so they
#: attach), the most points of a wandering track and the wiggle of a periductal one (mm, unscaled).
MIN_TRACK_LENGTH_MM = 3.0
TRACK_STEP_MM = 1.5
TRACK_START = 0.7
MAX_TRACK_POINTS = 80
TRACK_WIGGLE_MM = 0.4

# --------------------------------------------------------------------------- acquisition

#: Gaussian blur of the finite resolution, in voxels (X, Y, Z).
BLUR_SIGMA_VOXELS = (0.45, 0.45, 0.3)


def _scaled(sizes: Sequence[float], scale: float) -> tuple[float, ...]:
    """``sizes`` (mm at anatomy scale 1) at the case's anatomy ``scale``."""
    return tuple(size * scale for size in sizes)


def _box_shape(box: tuple[slice, slice, slice]) -> list[int]:
    """Size in voxels of a box of :meth:`Grid.box`."""
    return [axis.stop - axis.start for axis in box]


@dataclass
class TumourSite:
    """Where the primary tumour goes (see :meth:`CaseBuilder.place_tumour`)."""

    centre: np.ndarray  # (3,) mm
    radius: float  # mm
    branch: int  # index of the portal branch it sits on, -1 for none


class CaseBuilder:
    """Paints one case tissue by tissue (later tissues cover earlier ones).

    ``image`` holds relative HBP signal (liver = 1) and ``owner`` the tissue id that
    fills most of each voxel; the label map and tissue masks are read off ``owner``.
    Run the steps in the order of :func:`~neonet_ext.data.synthetic.generate_case`: each
    reads what earlier ones left (below, with the step that sets it), and all draw from
    the one anatomy ``rng``. Coordinates are world millimetres, RAS+.

    Args:
        latents: the case's latents (:func:`~neonet_ext.data.synthetic.latents.draw_latents`).
        config: the cohort's arguments (TLCR crop size, bias strength).
        rng: the case's anatomy stream.

    Attributes:
        image: relative HBP signal (X, Y, Z), float32.
        owner: tissue id (:data:`TISSUE_ID`) filling most of each voxel (X, Y, Z), uint8.
        scale: the case's ``anatomy_scale``; the sizes of the constants are multiplied by it.
        half_width, half_depth: the body's half-axes along x and y.
        z_dome, liver_height: top of the right diaphragmatic dome, and the liver's height.
        edge_width: width of the partial-volume ramp of every edge: the mean voxel spacing.
        cavity_distance: (``build_body``) signed distance to the abdominal cavity inside the
            muscular wall (X, Y, Z).
        y_spine, aorta, ivc: (``build_body``) y of the vertebral body centre; ``(x, y, radius)``
            of the aorta and ``(x, y, radius_x, radius_y)`` of the IVC.
        z_diaphragm: (``build_diaphragm_and_thorax``) height of the diaphragm (X, Y).
        kidneys, hilum: (``build_viscera``) ``(centre, radii, rotation)`` of the right and left
            kidney; the liver hilum, where the portal trunk enters.
        liver_box, liver_distance: (``build_liver``) the liver's box and its signed distance on it.
        portal_tree: (``build_vessel_trees``) the portal branches
            (:class:`~neonet_ext.data.synthetic.geometry.Branch`).
        duct_paths: (``build_ducts``) the centreline of the bile duct beside each portal branch.
        measures: (``build_tumour``) measurements of the placed tumour for ``cohort.csv``.
    """

    def __init__(self, latents: CaseLatents, config: SyntheticCohortConfig, rng: np.random.Generator) -> None:
        self.latents, self.config, self.rng = latents, config, rng
        self.grid = Grid(latents.shape, latents.spacing)
        self.scale = latents.anatomy_scale
        self.half_width, self.half_depth = latents.body_half_width_mm, latents.body_half_depth_mm
        # partial-volume edges: a linear ramp one mean voxel spacing wide
        self.edge_width = float(np.mean(latents.spacing))
        self.image = np.zeros(self.grid.shape, np.float32)
        self.owner = np.zeros(self.grid.shape, np.uint8)
        self.tissue_signal = {
            k: v * (1.0 if k == "liver" else rng.uniform(*TISSUE_SIGNAL_JITTER)) for k, v in TISSUE_INTENSITY.items()
        }
        self.z_top = float(self.grid.axes[2][-1])
        self.z_dome = self.z_top - self.scale * rng.uniform(*DOME_BELOW_TOP_MM)
        self.liver_height = self.scale * rng.uniform(*LIVER_HEIGHT_MM)
        self.measures: dict[str, float] = {}

    # ---- painting helpers

    def paint(self, box, fraction: np.ndarray, tissue: str, value: float | np.ndarray | None = None) -> None:
        """Mix ``value`` (default: the tissue's signal) into ``image[box]`` by ``fraction``."""
        value = self.tissue_signal[tissue] if value is None else value
        image = self.image[box]
        image += fraction * (value - image)
        self.owner[box][np.broadcast_to(fraction > 0.5, image.shape)] = TISSUE_ID[tissue]

    def paint_ellipsoid(self, tissue, centre, radii, rotation=None, value=None) -> None:
        """Paint an ellipsoidal organ, kept inside the abdominal cavity."""
        radii = np.asarray(radii, float)
        extent = np.full(3, radii.max()) if rotation is not None else radii
        box = self.grid.box(
            np.asarray(centre) - extent - 2 * self.edge_width, np.asarray(centre) + extent + 2 * self.edge_width
        )
        if box is None:
            return
        fraction = partial_volume(ellipsoid_distance(self.grid.coords(box), centre, radii, rotation), self.edge_width)
        fraction *= partial_volume(self.cavity_distance[box], self.edge_width)
        self.paint(box, fraction, tissue, value)

    def paint_tubes(self, tissue: str, tubes: Tubes, value=None, mask: Callable | None = None) -> None:
        """Paint a set of tubes; ``mask(box)`` (e.g. the liver fraction) confines them."""
        box = tubes.region()
        if box is None:
            return
        fraction = tubes.frac[box]
        if mask is not None:
            fraction = fraction * mask(box)
        self.paint(box, fraction, tissue, value)

    def liver_fraction(self, box) -> np.ndarray:
        """Liver partial-volume fraction on ``box`` (0 outside the liver's box)."""
        out = np.zeros(_box_shape(box), np.float32)
        overlap = [slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box, self.liver_box)]
        if all(axis.stop > axis.start for axis in overlap):
            src = tuple(slice(o.start - b.start, o.stop - b.start) for o, b in zip(overlap, self.liver_box))
            dst = tuple(slice(o.start - a.start, o.stop - a.start) for o, a in zip(overlap, box))
            out[dst] = partial_volume(self.liver_distance[src], self.edge_width)
        return out

    def depth(self, point: np.ndarray) -> float:
        """Depth (mm) of a point inside the liver; negative outside."""
        ijk = self.grid.index(point)
        if ijk is None or not all(axis.start <= i < axis.stop for i, axis in zip(ijk, self.liver_box)):
            return OUTSIDE_LIVER_DEPTH_MM
        return -float(self.liver_distance[tuple(i - axis.start for i, axis in zip(ijk, self.liver_box))])

    # ---- body wall, thorax, skeleton

    def body_radius(self, theta: np.ndarray) -> np.ndarray:
        """Outer body radius (mm) at polar angle ``theta`` (0 = patient's right, pi/2 = anterior)."""
        ellipse = 1.0 / np.sqrt((np.cos(theta) / self.half_width) ** 2 + (np.sin(theta) / self.half_depth) ** 2)
        wobble = 1.0 + sum(
            amplitude * np.cos(k * theta + phase) for k, amplitude, phase in self.body_harmonics
        )
        # supine patients lie on a flattened back
        return ellipse * wobble * (1.0 - BACK_FLATTENING * np.clip(-np.sin(theta), 0, 1) ** 4)

    def fat_thickness(self, theta: np.ndarray) -> np.ndarray:
        """Subcutaneous fat thickness (mm): thickest anteriorly, thinnest over the back."""
        return self.mean_fat_mm * (1.0 + 0.35 * np.sin(theta) + 0.15 * np.cos(2 * theta))

    def build_body(self) -> None:
        """Body outline, subcutaneous fat, muscular wall and the cavity inside it."""
        rng, scale = self.rng, self.scale
        self.body_harmonics = [
            (k, rng.normal(0, BODY_HARMONIC_SD), rng.uniform(0, 2 * np.pi)) for k in range(2, 6)
        ]
        self.mean_fat_mm = scale * rng.uniform(*SUBCUTANEOUS_FAT_MM)
        self.wall_mm = scale * rng.uniform(*BODY_WALL_MM)
        z = self.grid.axes[2]
        # the lower chest narrows toward the top of the field, curving the wall over the liver dome
        narrowing = 1.0 - CHEST_NARROWING * np.clip(
            (z - self.z_dome + CHEST_NARROWING_START_MM * scale) / (CHEST_NARROWING_SPAN_MM * scale), 0, 1
        ) ** 2
        taper = 1.0 + rng.normal(0, BODY_TAPER_SD) * (z - z.mean()) / (np.ptp(z) + 1e-6)
        self.z_taper = (taper * narrowing)[None, None, :]
        x, y = self.grid.axes[0][:, None], self.grid.axes[1][None, :]
        theta = np.arctan2(y, x)
        radius = np.hypot(x, y)
        body_distance = radius[:, :, None] - (self.body_radius(theta)[:, :, None] * self.z_taper)
        fat = self.fat_thickness(theta)[:, :, None]
        self.cavity_distance = (body_distance + fat + self.wall_mm).astype(np.float32)
        # imperfect fat suppression: the fat signal drifts smoothly across the field
        drift = smooth_noise(rng, self.grid.shape, SLOW_FIELD_CONTROL_POINTS)
        fat_value = self.tissue_signal["subcutaneous_fat"] * (1 + FAT_SUPPRESSION_DRIFT * drift)
        self.paint(FULL_VOLUME, partial_volume(body_distance, self.edge_width), "subcutaneous_fat", fat_value)
        self.paint(FULL_VOLUME, partial_volume(body_distance + fat, self.edge_width), "muscle")
        self.paint(FULL_VOLUME, partial_volume(self.cavity_distance, self.edge_width), "visceral_fat")
        self.y_spine = -self.half_depth + self.mean_fat_mm * 0.65 + scale * rng.uniform(*SPINE_DEPTH_MM)
        y_vessels = self.y_spine + GREAT_VESSELS_ANTERIOR_MM * scale
        self.aorta = (AORTA_X_MM * scale, y_vessels, AORTA_RADIUS_MM * scale * rng.uniform(0.9, 1.1))
        self.ivc = (IVC_X_MM * scale, y_vessels, *_scaled(IVC_RADII_MM, scale))

    def build_diaphragm_and_thorax(self) -> None:
        """Two diaphragmatic domes (right higher); lung bases and heart above them."""
        scale, half_width, half_depth, rng = self.scale, self.half_width, self.half_depth, self.rng
        x, y = self.grid.axes[0][:, None], self.grid.axes[1][None, :]

        def dome(x_peak: float, top: float) -> np.ndarray:
            # posterior costophrenic recesses reach lower than the anterior dome
            posterior = np.clip(-y / half_depth - 0.1, 0, None)
            return top - scale * (
                DOME_LATERAL_FALL_MM * ((x - x_peak) / half_width) ** 2
                + DOME_AP_FALL_MM * (y / half_depth) ** 2
                + DOME_POSTERIOR_RECESS_MM * posterior**2
            )

        right = dome(0.42 * half_width, self.z_dome)
        left = dome(-0.42 * half_width, self.z_dome - scale * rng.uniform(*LEFT_DOME_LOWER_MM))
        self.z_diaphragm = np.maximum(right, left).astype(np.float32)  # (X, Y)
        box = self.grid.box((-1e4, -1e4, float(self.z_diaphragm.min()) - 2), (1e4, 1e4, 1e4))
        if box is None:
            return
        _, _, z = self.grid.coords(box)
        z_diaphragm = self.z_diaphragm[:, :, None]
        cavity = self.cavity_distance[box]
        self.paint(box, partial_volume(np.maximum(cavity, z_diaphragm - z), self.edge_width), "muscle")
        lung = np.maximum(cavity + DIAPHRAGM_MM * scale, z_diaphragm + DIAPHRAGM_MM * scale - z)
        self.paint(box, partial_volume(lung, self.edge_width), "lung")
        heart_centre = (-0.15 * half_width, 0.3 * half_depth, self.z_dome + HEART_ABOVE_DOME_MM * scale)
        heart = ellipsoid_distance(
            self.grid.coords(box), heart_centre, _scaled(HEART_RADII_MM, scale), rotation_matrix(0.5)
        )
        heart = np.maximum(heart, z_diaphragm - HEART_ON_DIAPHRAGM_MM * scale - z)
        self.paint(box, partial_volume(heart, self.edge_width), "heart")

    def build_ribs(self) -> None:
        """Ribs in the chest wall, descending from the spine toward the anterior costal margin."""
        scale, rng = self.scale, self.rng
        tubes = Tubes(self.grid, self.edge_width)
        # angle around the body from straight back (0) toward the sternum (pi)
        arc = np.linspace(0.2 * np.pi, 0.95 * np.pi, 18)
        for k in range(RIB_COUNT):
            z_spine = self.z_dome + scale * (FIRST_RIB_ABOVE_DOME_MM - RIB_SPACING_MM * k)
            z_spine = z_spine + rng.normal(0, RIB_JITTER_MM * scale)
            reach = max(0.35, 0.95 - 0.055 * k)  # lower ribs stop further from the sternum
            rib_arc = arc[arc <= reach * np.pi]
            for side in (1.0, -1.0):
                theta = -np.pi / 2 + side * rib_arc
                z = z_spine - scale * RIB_DESCENT_MM * rib_arc / np.pi
                z_scale = np.interp(z, self.grid.axes[2], self.z_taper[0, 0])
                radius = self.body_radius(theta) * z_scale - self.fat_thickness(theta) - 0.5 * self.wall_mm
                points = np.stack([radius * np.cos(theta), radius * np.sin(theta), z], axis=1)
                tubes.polyline(points, np.full(len(points), RIB_RADIUS_MM * scale))
        self.paint_tubes("rib", tubes)

    def build_spine_and_vessels(self) -> None:
        """Vertebral column with discs, paraspinal and psoas muscles, aorta and IVC."""
        scale, rng, edge = self.scale, self.rng, self.edge_width
        x, y = self.grid.coords(FULL_VOLUME)[:2]
        z = self.grid.axes[2]
        y_spine = self.y_spine
        y_posterior = y_spine - POSTERIOR_ELEMENTS_MM * scale
        for side in (1.0, -1.0):
            paraspinal = elliptic_cylinder_distance(
                x, y, (side * PARASPINAL_X_MM * scale, y_posterior), _scaled(PARASPINAL_RADII_MM, scale)
            )
            self.paint(FULL_VOLUME, partial_volume(paraspinal, edge), "muscle")
        # discs every ~3 cm: darker bands through the vertebral bodies on coronal views
        period = DISC_PERIOD_MM * scale
        phase = rng.uniform(0, period)
        disc = np.exp(-0.5 * ((np.abs((z - phase) % period - period / 2) - period / 2) / (DISC_WIDTH_MM * scale)) ** 2)
        bone_value = (self.tissue_signal["bone"] * (1 - DISC_DARKENING * disc))[None, None, :].astype(np.float32)
        body = elliptic_cylinder_distance(x, y, (0.0, y_spine), _scaled(VERTEBRAL_BODY_RADII_MM, scale))
        self.paint(FULL_VOLUME, partial_volume(body, edge), "bone", bone_value)
        spinous = elliptic_cylinder_distance(x, y, (0.0, y_posterior), _scaled(SPINOUS_PROCESS_RADII_MM, scale))
        self.paint(FULL_VOLUME, partial_volume(spinous, edge), "bone")
        canal_centre = (0.0, y_spine - SPINAL_CANAL_MM * scale)
        canal = elliptic_cylinder_distance(x, y, canal_centre, _scaled(SPINAL_CANAL_RADII_MM, scale))
        self.paint(FULL_VOLUME, partial_volume(canal, edge), "csf")
        cord = elliptic_cylinder_distance(x, y, canal_centre, _scaled(SPINAL_CORD_RADII_MM, scale))
        self.paint(FULL_VOLUME, partial_volume(cord, edge), "spinal_cord")
        # psoas muscles appear below the kidneys' upper poles and thicken caudally
        grow = np.clip((self.z_dome - 0.55 * self.liver_height - z) / (0.4 * self.liver_height), 0, 1)[None, None, :]
        for side in (1.0, -1.0):
            radius_x = (PSOAS_START_RADIUS_MM + PSOAS_GROWTH_MM[0] * grow) * scale
            radius_y = (PSOAS_START_RADIUS_MM + PSOAS_GROWTH_MM[1] * grow) * scale
            normalised = np.sqrt(
                ((x - side * PSOAS_X_MM * scale) / radius_x) ** 2
                + ((y - y_spine - PSOAS_ANTERIOR_MM * scale) / radius_y) ** 2
            )
            psoas = (normalised - 1) * np.minimum(radius_x, radius_y)
            self.paint(FULL_VOLUME, partial_volume(psoas, edge) * (grow > 0), "muscle")
        aorta = elliptic_cylinder_distance(x, y, self.aorta[:2], (self.aorta[2],) * 2)
        self.paint(FULL_VOLUME, partial_volume(aorta, edge), "aorta")
        ivc = elliptic_cylinder_distance(x, y, self.ivc[:2], self.ivc[2:])
        self.paint(FULL_VOLUME, partial_volume(ivc, edge), "ivc")

    # ---- abdominal organs

    def build_viscera(self) -> None:
        """Bowel, stomach, kidneys, spleen, pancreas and the extrahepatic portal venous system."""
        scale, half_width, half_depth, rng = self.scale, self.half_width, self.half_depth, self.rng
        z_dome, height, edge = self.z_dome, self.liver_height, self.edge_width
        self.build_bowel()
        # stomach under the left dome: wall, then fluid, then gas rising anteriorly (supine)
        centre = (-0.38 * half_width, 0.12 * half_depth, z_dome - 0.3 * height)
        radii = scale * np.array(STOMACH_RADII_MM) * rng.uniform(0.8, 1.15, 3)
        rotation = rotation_matrix(rng.uniform(-0.8, -0.3), 0.3)
        self.paint_ellipsoid("stomach_wall", centre, radii, rotation)
        self.paint_ellipsoid("stomach_content", centre, radii - STOMACH_WALL_MM * scale, rotation)
        level = centre[1] + radii[1] * rng.uniform(0.0, 0.6)
        box = self.grid.box(np.array(centre) - radii.max(), np.array(centre) + radii.max())
        if box is not None:
            coords = self.grid.coords(box)
            lumen = ellipsoid_distance(coords, centre, radii - STOMACH_WALL_MM * scale, rotation)
            gas = np.maximum(lumen, level - coords[1])
            self.paint(box, partial_volume(gas, edge) * partial_volume(self.cavity_distance[box], edge), "gas")
        # kidneys: cortex shell around medulla, sinus fat at the anteromedial hilum
        self.kidneys = []
        for side, higher in ((1.0, 0.0), (-1.0, 0.1)):  # the left kidney sits a little higher
            centre = np.array(
                [side * 0.36 * half_width, self.y_spine + KIDNEY_ANTERIOR_MM * scale, z_dome - height * (0.92 - higher)]
            )
            radii = scale * np.array(KIDNEY_RADII_MM) * rng.uniform(0.9, 1.1, 3)
            rotation = rotation_matrix(side * 0.6, 0.0, side * 0.15)
            self.kidneys.append((centre, radii, rotation))
            self.paint_ellipsoid("kidney_cortex", centre, radii, rotation)
            self.paint_ellipsoid("kidney_medulla", centre, radii - KIDNEY_CORTEX_MM * scale, rotation)
            hilum = centre + rotation @ np.array([-side * radii[0] * 0.6, 0.0, 0.0])
            self.paint_ellipsoid("visceral_fat", hilum, radii * [0.45, 0.4, 0.45], rotation)
        # spleen: crescent along the left posterolateral wall
        centre = np.array([-0.6 * half_width, -0.35 * half_depth, z_dome - height * rng.uniform(0.3, 0.45)])
        radii = scale * np.array(SPLEEN_RADII_MM) * rng.uniform(0.8, 1.2, 3)
        rotation = rotation_matrix(0.35 + rng.normal(0, 0.1))
        box = self.grid.box(centre - radii.max(), centre + radii.max())
        coords = self.grid.coords(box)
        spleen = ellipsoid_distance(coords, centre, radii, rotation)
        hilum = centre + rotation @ np.array([radii[0] * 1.2, 0, 0])
        hollow = ellipsoid_distance(coords, hilum, radii * [0.9, 0.8, 0.8], rotation)
        spleen = smooth_intersection(spleen, -hollow, SPLEEN_HILUM_BLEND_MM * scale)
        self.paint(box, partial_volume(spleen, edge) * partial_volume(self.cavity_distance[box], edge), "spleen")
        # pancreas from the head near the duodenum to the tail at the splenic hilum
        head = np.array([0.1 * half_width, 0.05 * half_depth, z_dome - 0.85 * height])
        body = np.array(
            [-0.12 * half_width, self.aorta[1] + PANCREAS_ANTERIOR_TO_AORTA_MM * scale, z_dome - 0.72 * height]
        )
        tail = np.array([-0.48 * half_width, -0.12 * half_depth, z_dome - 0.6 * height])
        tubes = Tubes(self.grid, edge)
        path = np.concatenate([np.linspace(head, body, 5), np.linspace(body, tail, 6)[1:]])
        tubes.polyline(path, np.linspace(*PANCREAS_RADIUS_MM, len(path)) * scale)
        region = tubes.region()
        if region is not None:
            shape = _box_shape(region)
            lobules = smooth_noise(rng, shape, np.array(shape) * self.grid.spacing / (PANCREAS_LOBULE_MM * scale))
            lobulated = 1 + PANCREAS_LOBULATION * lobules
            self.paint_tubes("pancreas", tubes, value=self.tissue_signal["pancreas"] * lobulated)
        # splenic vein behind the pancreas joining the portal trunk toward the hilum
        self.hilum = np.array([0.15 * half_width, 0.04 * half_depth, z_dome - 0.55 * height]) + rng.normal(
            0, HILUM_JITTER_MM * scale, 3
        )
        confluence = np.array(
            [0.03 * half_width, self.aorta[1] + PORTAL_CONFLUENCE_ANTERIOR_TO_AORTA_MM * scale, z_dome - 0.78 * height]
        )
        veins = Tubes(self.grid, edge)
        splenic_start = tail + [0, -SPLENIC_VEIN_BEHIND_TAIL_MM * scale, 0]
        veins.polyline(np.linspace(splenic_start, confluence, 6), np.full(6, SPLENIC_VEIN_RADIUS_MM * scale))
        veins.polyline(np.linspace(confluence, self.hilum, 6), np.full(6, PORTAL_TRUNK_RADIUS_MM * scale))
        self.paint_tubes("portal_trunk", veins)

    def build_bowel(self) -> None:
        """Winding bowel loops in the lower abdomen: tubes where two smooth random fields are both near zero."""
        scale, half_width, half_depth, rng = self.scale, self.half_width, self.half_depth, self.rng
        box = self.grid.box(
            (-half_width, -0.35 * half_depth, -1e4), (half_width, half_depth, self.z_dome - 0.4 * self.liver_height)
        )
        if box is None:
            return
        shape = _box_shape(box)
        step = BOWEL_LOOP_SPACING_MM * scale
        n_ctrl = np.maximum(np.array(shape) * self.grid.spacing / step, 1)
        loop_a, loop_b, content_field = (smooth_noise(rng, shape, n_ctrl) for _ in range(3))
        # unit-variance fields whose correlation length is ~0.7 control steps: |n| * 0.7 step ~ mm
        field_mm = 0.7 * step
        tube = (np.sqrt(loop_a * loop_a + loop_b * loop_b) - 0.85) * field_mm
        cavity = partial_volume(self.cavity_distance[box], self.edge_width)
        self.paint(box, partial_volume(tube, self.edge_width) * cavity, "bowel_wall")
        # lumen: dark fluid, greyer where it holds chyme or faeces, gas in places
        content = self.tissue_signal["bowel_content"] * (1 + BOWEL_CONTENT_VARIATION * np.tanh(content_field))
        lumen = tube + BOWEL_WALL_MM * scale
        self.paint(box, partial_volume(lumen, self.edge_width) * cavity, "bowel_content", content)
        gas = partial_volume(np.maximum(lumen, (1.0 - content_field) * field_mm), self.edge_width) * cavity
        self.paint(box, gas, "gas")

    # ---- liver and its trees

    def build_liver(self) -> None:
        """Liver as a smooth union of lobes, deformed, under the diaphragm and inside the cavity.

        Keeps its signed distance ``liver_distance`` on the box ``liver_box`` for depth queries.
        """
        scale, half_width, half_depth, rng = self.scale, self.half_width, self.half_depth, self.rng
        height, z_dome = self.liver_height, self.z_dome
        # (centre, radii, pitch): the right lobe leans so its tip is infero-lateral and the
        # inferior border slopes up toward the left, the wedge seen on coronal views
        lobes = [
            (  # right lobe
                (0.42 * half_width, 0.0, z_dome - 0.5 * height),
                (0.38 * half_width, 0.6 * half_depth, 0.6 * height) * rng.uniform(0.88, 1.1, 3),
                -0.4,
            ),
            (  # medial, anterior part next to it
                (0.14 * half_width, 0.28 * half_depth, z_dome - 0.33 * height),
                (0.24 * half_width, 0.36 * half_depth, 0.3 * height),
                0.1,
            ),
            (  # left lobe, of varying reach
                (-0.14 * half_width, 0.38 * half_depth, z_dome - 0.28 * height),
                (0.34 * half_width * rng.uniform(0.6, 1.25), 0.24 * half_depth, 0.22 * height),
                0.25,
            ),
            (  # posterior part by the IVC
                (0.1 * half_width, -0.15 * half_depth, z_dome - 0.35 * height),
                (0.13 * half_width, 0.16 * half_depth, 0.22 * height),
                0.0,
            ),
        ]
        if rng.random() < RIEDEL_LOBE_PROBABILITY:  # a tongue of right lobe reaching caudally
            lobes.append((
                (0.55 * half_width, 0.1 * half_depth, z_dome - 0.85 * height),
                (0.14 * half_width, 0.3 * half_depth, 0.3 * height),
                -0.2,
            ))
        extent = [np.full(3, max(radii)) for _, radii, _ in lobes]
        lo = np.min([np.subtract(c, e) for (c, _, _), e in zip(lobes, extent)], axis=0) - LIVER_BOX_PAD_MM * scale
        hi = np.max([np.add(c, e) for (c, _, _), e in zip(lobes, extent)], axis=0) + LIVER_BOX_PAD_MM * scale
        self.liver_box = box = self.grid.box(lo, hi)
        coords = self.grid.coords(box)
        x, y, z = coords
        tilts = [rotation_matrix(rng.normal(0, 0.12), pitch + rng.normal(0, 0.08)) for _, _, pitch in lobes]
        liver = ellipsoid_distance(coords, *lobes[0][:2], tilts[0])
        for (centre, radii, _), tilt in zip(lobes[1:], tilts[1:]):
            liver = smooth_union(liver, ellipsoid_distance(coords, centre, radii, tilt), LOBE_BLEND_MM * scale)
        shape = _box_shape(box)
        size = np.array(shape) * self.grid.spacing
        for amplitude_mm, feature_mm in LIVER_DEFORMATIONS_MM:
            liver += amplitude_mm * scale * smooth_noise(rng, shape, np.maximum(size / (feature_mm * scale), 2))
        # under the diaphragm, and 1.5 mm inside the cavity
        liver = smooth_intersection(liver, z - self.z_diaphragm[box[:2]][:, :, None], 4 * scale)
        liver = smooth_intersection(liver, self.cavity_distance[box] + 1.5 * scale, 8 * scale)
        # organs the liver moulds around: right kidney (3 mm apart), spine, IVC, aorta
        centre, radii, rotation = self.kidneys[0]
        liver = smooth_intersection(liver, 3 * scale - ellipsoid_distance(coords, centre, radii, rotation), 6 * scale)
        spine = elliptic_cylinder_distance(x, y, (0.0, self.y_spine), (26 * scale, 22 * scale))
        liver = smooth_intersection(liver, -spine, 6 * scale)
        ivc = elliptic_cylinder_distance(x, y, self.ivc[:2], np.array(self.ivc[2:]) + 2 * scale)
        liver = smooth_intersection(liver, -ivc, 4 * scale)
        aorta = elliptic_cylinder_distance(x, y, self.aorta[:2], (self.aorta[2] + 4 * scale,) * 2)
        liver = smooth_intersection(liver, -aorta, 4 * scale)
        self.liver_distance = liver.astype(np.float32)
        texture = 1.0 + LIVER_TEXTURE * smooth_noise(
            rng, shape, np.maximum(size / (LIVER_TEXTURE_SCALE_MM * scale), 2)
        )
        self.paint(box, partial_volume(self.liver_distance, self.edge_width), "liver", texture)

    def build_vessel_trees(self) -> None:
        """Portal tree from the hilum and hepatic vein tree from the IVC (hypointense in the HBP)."""
        scale, rng = self.scale, self.rng
        min_radius = max(MIN_TUBE_RADIUS_MM, 0.3 * float(self.grid.spacing[:2].min()))
        step = TREE_STEP_MM * scale
        self.portal_tree = grow_tree(
            rng,
            self.depth,
            [(self.hilum, direction, length * scale, radius * scale) for direction, length, radius in PORTAL_TRUNKS],
            max_generation=TREE_GENERATIONS,
            min_radius=min_radius,
            step=step,
        )
        root = np.array(
            [self.ivc[0], self.ivc[1] + HEPATIC_ROOT_ANTERIOR_MM * scale, self.z_dome - 0.12 * self.liver_height]
        )
        hepatic = grow_tree(
            rng,
            self.depth,
            [(root, direction, length * scale, radius * scale) for direction, length, radius in HEPATIC_TRUNKS],
            max_generation=TREE_GENERATIONS,
            min_radius=min_radius,
            step=step,
        )
        tubes = Tubes(self.grid, self.edge_width)
        for branch in hepatic:
            tubes.polyline(branch.points, branch.radii)
        self.paint_tubes("hepatic_vein", tubes, mask=self.liver_fraction)
        tubes = Tubes(self.grid, self.edge_width)
        for branch in self.portal_tree:
            tubes.polyline(branch.points, branch.radii)
        self.paint_tubes("portal_vein", tubes, mask=self.liver_fraction)

    def build_ducts(self, dilated: set[int]) -> None:
        """Bile ducts beside the portal branches; those upstream of the tumour dilated."""
        offset_direction = unit(self.rng.standard_normal(3))
        tubes = Tubes(self.grid, self.edge_width)
        self.duct_paths = []
        for i, branch in enumerate(self.portal_tree):
            tangent = unit(branch.points[-1] - branch.points[0])
            normal = unit(offset_direction - np.dot(offset_direction, tangent) * tangent)
            radii = np.maximum(DUCT_TO_VEIN_RADIUS * branch.radii, MIN_TUBE_RADIUS_MM)
            if i in dilated:
                radii = np.minimum(radii * DUCT_DILATATION, DILATED_DUCT_MAX_MM * self.scale + 1.0)
            points = branch.points + normal * (branch.radii + radii + DUCT_VEIN_GAP_MM)[:, None]
            self.duct_paths.append(points)
            tubes.polyline(points, radii)
        self.paint_tubes("bile_duct", tubes, mask=self.liver_fraction)

    def build_gallbladder(self) -> None:
        """Gallbladder in its fossa under the liver (absent after cholecystectomy)."""
        if self.rng.random() < CHOLECYSTECTOMY_PROBABILITY:
            return
        centre = (0.1 * self.half_width, 0.3 * self.half_depth, self.z_dome - 0.78 * self.liver_height)
        radii = self.scale * np.array(GALLBLADDER_RADII_MM) * self.rng.uniform(0.8, 1.2, 3)
        self.paint_ellipsoid("gallbladder", centre, radii, rotation_matrix(0.3, 0.5))

    # ---- tumour and PNI signs

    def min_lesion_radius(self) -> float:
        """Smallest lesion radius (mm) that survives partial volume."""
        return MIN_LESION_RADIUS_VOXELS * float(self.grid.spacing.max())

    def place_tumour(self) -> TumourSite:
        """Site of the primary tumour.

        The tumour sits on a portal/duct branch of the drawn order (1 = right/left
        main branch near the hilum) deep enough in the liver to hold it; failing
        that, at the deepest point of the liver with the radius shrunk to fit.
        """
        latents, rng = self.latents, self.rng
        radius = max(0.5 * latents.tumour_diameter_nominal_mm, self.min_lesion_radius())
        orders = sorted(range(1, 5), key=lambda order: (abs(order - latents.branch_order), order))
        for order in orders:
            candidates = [i for i, branch in enumerate(self.portal_tree) if branch.generation == order - 1]
            for i in rng.permutation(candidates) if candidates else []:
                branch = self.portal_tree[i]
                point = branch.points[int(rng.integers(len(branch.points) // 2, len(branch.points)))]
                if self.depth(point) >= TUMOUR_MIN_DEPTH * radius:
                    shifted = point + unit(rng.standard_normal(3)) * 0.25 * radius
                    centre = shifted if self.depth(shifted) >= TUMOUR_MIN_DEPTH * radius else point
                    return TumourSite(centre, radius, int(i))
        ijk = np.unravel_index(int(np.argmin(self.liver_distance)), self.liver_distance.shape)
        centre = np.array(
            [self.grid.axes[k][axis.start + i] for k, (axis, i) in enumerate(zip(self.liver_box, ijk))], float
        )
        return TumourSite(centre, min(radius, TUMOUR_MIN_DEPTH * self.depth(centre)), -1)

    def upstream_branches(self, site: TumourSite) -> set[int]:
        """Portal branches peripheral to the tumour: their ducts drain through it."""
        if site.branch < 0:
            return set()
        return {i for i in range(len(self.portal_tree)) if site.branch in ancestors(self.portal_tree, i)}

    def tumour_field(self, centre, radius, spicules, irregularity, pad) -> tuple[tuple, np.ndarray, np.ndarray]:
        """Signed distance (mm) to a lobulated, spiculated tumour on a box ``pad`` mm beyond it.

        Returns:
            ``(box, distance, rho)``: the box, the distance and the normalised radius |p - c| / radius.
        """
        rng, latents = self.rng, self.latents
        reach = radius * (1.2 + (latents.spiculation_amplitude if spicules else 0)) + 2 * irregularity + pad
        box = self.grid.box(centre - reach, centre + reach)
        coords = self.grid.coords(box)
        radii = radius * rng.uniform(0.85, 1.15, 3)
        distance = ellipsoid_distance(coords, centre, radii, rotation_matrix(*rng.uniform(0, np.pi, 3)))
        offset = [c - float(v) for c, v in zip(coords, centre)]
        from_centre = np.sqrt(offset[0] ** 2 + offset[1] ** 2 + offset[2] ** 2) + 1e-6
        bumps = np.zeros_like(distance)
        for _ in range(N_LOBULATIONS):
            axis = unit(rng.standard_normal(3))
            cos = (offset[0] * axis[0] + offset[1] * axis[1] + offset[2] * axis[2]) / from_centre
            amplitude = np.clip(rng.normal(0, LOBULATION_SD), -0.15, 0.15)
            bumps += amplitude * np.cos(np.pi * rng.integers(1, 3) * cos + rng.uniform(0, 2 * np.pi))
        if spicules:
            for _ in range(latents.n_spicules):
                axis = unit(rng.standard_normal(3))
                cos = np.clip((offset[0] * axis[0] + offset[1] * axis[1] + offset[2] * axis[2]) / from_centre, 0, 1)
                # cos**p is a narrow cone: a spike that tapers to its tip
                bumps += latents.spiculation_amplitude * rng.uniform(0.5, 1.0) * cos ** rng.uniform(*SPICULE_SHARPNESS)
        distance -= radius * bumps
        shape = _box_shape(box)
        # an irregular margin, not a hole in the middle: the noise fades toward the centre
        rho = from_centre / radius
        noise = smooth_noise(rng, shape, np.array(shape) * self.grid.spacing / MARGIN_NOISE_SCALE_MM)
        distance += min(irregularity, 0.3 * radius) * np.clip(rho, 0, 1) * noise
        return box, distance, rho

    def build_tumour(self, site: TumourSite) -> None:
        """Primary tumour (and satellite), peritumoral halo and perineural tracks."""
        latents, rng, scale = self.latents, self.rng, self.scale
        centre, radius, branch = site.centre, site.radius, site.branch
        # peritumoral and TLCR limits: everything must stay within half the crop of the centre
        reach = CROP_MARGIN * 0.5 * float(np.min(np.asarray(self.config.crop_size) * self.grid.spacing))

        lesions = [(centre, radius, True)]
        if latents.n_lesions > 1:  # a satellite nodule, as deep in the liver as a few tries find
            satellite_radius = max(radius * rng.uniform(*SATELLITE_RADIUS_FRACTION), self.min_lesion_radius())
            best, best_depth = centre, -1e9
            for _ in range(SATELLITE_TRIES):
                gap = min(
                    radius + satellite_radius + rng.uniform(*SATELLITE_GAP_MM) * scale,
                    max(reach - satellite_radius, radius + satellite_radius),
                )
                candidate = centre + unit(rng.standard_normal(3)) * gap
                depth = self.depth(candidate)
                if depth > best_depth:
                    best, best_depth = candidate, depth
            lesions.append((best, min(satellite_radius, max(best_depth, self.min_lesion_radius())), False))

        fields = [
            self.tumour_field(c, r, spiculated, latents.margin_irregularity_mm, HALO_PAD_WIDTHS * latents.halo_width_mm)
            for c, r, spiculated in lesions
        ]
        for box, distance, _ in fields:  # halo: hypointense rim of peritumoral parenchyma
            outside = np.clip(distance, 0, None)
            halo = 1.0 - latents.halo_strength * np.exp(-outside / latents.halo_width_mm) * self.liver_fraction(box)
            self.image[box] *= halo

        length = self.build_extensions(centre, radius, branch, reach)
        tumour_value = self.tissue_signal["tumour"] * rng.uniform(0.85, 1.15)
        for (box, distance, rho), (_, lesion_radius, primary) in zip(fields, lesions):
            shape = _box_shape(box)
            texture = smooth_noise(rng, shape, np.array(shape) * self.grid.spacing / TUMOUR_TEXTURE_SCALE_MM)
            value = tumour_value * (1 + TUMOUR_TEXTURE * texture)
            if primary and latents.rim:  # targetoid: central cloud of retained contrast, dark periphery
                cloud = np.exp(-((rho / 0.55) ** 2)) * (1 + 0.5 * texture)
                value *= 1 + rng.uniform(0.25, 0.5) * cloud - 0.2 * np.exp(-(((rho - 0.9) / 0.15) ** 2))
            if primary and latents.necrosis:
                core = partial_volume((rho - rng.uniform(0.3, 0.5) + 0.08 * texture) * lesion_radius, self.edge_width)
                value = value + core * (self.tissue_signal["bile_duct"] * NECROSIS_SIGNAL - value)
            self.paint(box, partial_volume(distance, self.edge_width) * self.liver_fraction(box), "tumour", value)

        self.measures.update(
            tumour_diameter_mm=round(2 * float(radius), 3),
            extension_length_mm=round(length, 3),
            hilar_distance_mm=round(float(np.linalg.norm(centre - self.hilum)), 3),
        )

    def build_extensions(self, centre: np.ndarray, radius: float, branch: int, reach: float) -> float:
        """Thin hypointense tracks from the tumour toward the hilum (perineural / periductal spread).

        The first follows the bile duct of the tumour's branch back toward the hilum,
        the others wander off at an angle from that direction; all stay inside the
        liver, where the TLCR patch can see them. Returns their length beyond the
        tumour radius (mm), bounded so the tracks stay in the TLCR crop.
        """
        latents = self.latents
        if latents.n_extensions == 0:
            return 0.0
        length = float(
            np.clip(latents.extension_length_nominal_mm, MIN_TRACK_LENGTH_MM, max(reach - radius, MIN_TRACK_LENGTH_MM))
        )
        margin = latents.extension_radius_mm + 0.5  # depth a track keeps inside the liver
        tubes = Tubes(self.grid, self.edge_width)
        for k in range(latents.n_extensions):
            points = None
            if k == 0 and branch >= 0:
                points = self._duct_track(centre, radius, branch, radius + length, margin)
            if points is None:
                points = self._wandering_track(centre, radius, radius + length, margin)
            if len(points) >= 2:
                radii = np.linspace(latents.extension_radius_mm, 0.5 * latents.extension_radius_mm, len(points))
                tubes.polyline(points, radii)
        self.paint_tubes("extension", tubes, value=self.tissue_signal["extension"], mask=self.liver_fraction)
        return length

    def _duct_track(self, centre, radius, branch, stop, margin) -> np.ndarray | None:
        """Periductal track along the tumour's duct toward the hilum; None if it leaves the liver at once."""
        path = self._densify(np.concatenate([self.duct_paths[i][::-1] for i in ancestors(self.portal_tree, branch)]))
        distance = np.linalg.norm(path - centre, axis=1)
        path, distance = path[int(np.argmin(distance)) :], distance[int(np.argmin(distance)) :]
        keep = [point for point, d in zip(path, distance) if TRACK_START * radius <= d < stop]
        track = []
        for point in keep:
            if self.depth(point) < margin:
                break
            track.append(point)
        if len(track) < 3:
            return None
        return np.array(track) + self.rng.normal(0, TRACK_WIGGLE_MM, (len(track), 3))

    def _wandering_track(self, centre, radius, stop, margin) -> np.ndarray:
        """Track leaving the tumour at an angle to the hilum direction, curving toward the hilum."""
        rng = self.rng
        toward = unit(self.hilum - centre)
        direction = rotate(toward, random_perpendicular(rng, toward), rng.uniform(0.3, 1.2) * rng.choice([-1, 1]))
        point = centre + direction * TRACK_START * radius
        points = [point]
        while np.linalg.norm(point - centre) < stop and len(points) < MAX_TRACK_POINTS:
            direction = unit(direction + rng.normal(0, 0.15, 3) + 0.08 * unit(self.hilum - point))
            if self.depth(point + TRACK_STEP_MM * direction) < margin:
                break
            point = point + TRACK_STEP_MM * direction
            points.append(point)
        return np.array(points)

    @staticmethod
    def _densify(points, step: float = TRACK_STEP_MM) -> np.ndarray:
        """Resample a polyline at ``step`` mm so it can carry small wiggles."""
        points = np.asarray(points, float)
        if len(points) < 2:
            return points
        segments = np.linalg.norm(np.diff(points, axis=0), axis=1)
        t = np.concatenate([[0], np.cumsum(segments)])
        samples = np.arange(0, t[-1] + 1e-9, step)
        return np.stack([np.interp(samples, t, points[:, k]) for k in range(3)], axis=1)

    # ---- acquisition

    def acquire(self, noise_rng: np.random.Generator) -> np.ndarray:
        """Blur (finite resolution), coil bias, intensity scale and Rician noise; float32 (X, Y, Z)."""
        latents, rng = self.latents, self.rng
        image = ndimage.gaussian_filter(self.image, sigma=BLUR_SIGMA_VOXELS, mode="nearest", truncate=3.0)
        x, y = self.grid.axes[0][:, None], self.grid.axes[1][None, :]
        # phased-array coils: brighter near the anterior and posterior surface
        coil = (0.35 * (y / self.half_depth) ** 2 + 0.1 * (x / self.half_width) ** 2)[:, :, None]
        field = smooth_noise(rng, self.grid.shape, SLOW_FIELD_CONTROL_POINTS)
        log_bias = self.config.bias_strength * (field + 2.5 * coil)
        signal = image * np.exp(log_bias - float(np.median(log_bias))) * latents.intensity_scale
        sigma = latents.intensity_scale / latents.snr
        real = signal + sigma * noise_rng.standard_normal(signal.shape, dtype=np.float32)
        imag = sigma * noise_rng.standard_normal(signal.shape, dtype=np.float32)
        return np.sqrt(real * real + imag * imag).astype(np.float32)
