"""Deterministic synthetic hepatobiliary-phase (HBP) MRI cohort with perineural invasion labels.

The cohort stands in for patient data: gadoxetic-acid HBP images (T1-weighted,
fat-suppressed 3D GRE, ~20 min after injection) of intrahepatic cholangiocarcinoma,
a label map (background, liver, tumour; values from :mod:`neonet_ext.labels`) and
a binary perineural-invasion (PNI) status per case.

    python -m neonet_ext.data.synthetic --out DIR --cases 128 --seed 0 [--effect 1.0]

writes ``DIR/imagesTr/case_000.nii.gz`` (float32), ``DIR/labelsTr/case_000.nii.gz``
(uint8), ``DIR/dataset.json`` (Medical Segmentation Decathlon form, with a ``pni``
per training item) and ``DIR/cohort.csv`` (one row of latents and measurements per
case).

Generative model
----------------
* **PNI status.** Cases are assigned in permuted blocks of ``block_size`` (default
  128): each block holds exactly ``round(prevalence * block_size)`` positives in a
  random order, so 128 cases at the default prevalence give exactly 44 PNI+ and a
  case's status depends only on (seed, index, config), never on the cohort size.
* **Latent risk.** ``pni_risk = effect * 1.6 * (pni - prevalence) + N(0, 1)``: the
  two classes are unit-variance Gaussians ``effect * 1.6`` apart, so the oracle AUC
  (ROC AUC of ``pni_risk`` for ``pni``) is ``Phi(effect * 1.6 / sqrt(2))``: 0.5 at
  effect 0, ~0.87 at effect 1, ~0.99 at effect 2.
* **Imaging signs.** Each sign (tumour size, margin spiculation, margin
  irregularity, number and length of thin hypointense perineural/periductal tracks
  running from the tumour toward the hilum, peritumoral hypointense halo, upstream
  duct dilatation, hilar location, satellite nodule) is driven by
  ``rho * risk_z + sqrt(1 - rho**2) * noise`` with its own independent noise, so
  signs overlap between classes and a perfect reader of the image stays below the
  oracle AUC. The tracks are labelled liver, not tumour: they are the subtle
  peritumoral finding a classifier should pick up inside the TLCR crop, and their
  reach from the tumour centre is bounded so that they fall inside it.
* **Image.** Anatomy (body wall and fat, liver with portal/hepatic vein and bile
  duct trees, spleen, kidneys, spine, aorta, IVC, stomach, bowel, pancreas, lungs,
  heart, ribs) is built from implicit surfaces in millimetres, mixed with linear
  partial-volume edges at the output resolution, then blurred slightly, multiplied
  by a smooth coil bias field and a per-case intensity scale, and corrupted with
  Rician noise. Relative intensities follow the HBP: liver brightest (hepatocyte
  uptake), spleen and vessels darker, tumour markedly hypointense, fat suppressed.

Geometry: arrays are (X, Y, Z) with Z the slice axis; the affine is RAS+ and
diagonal (``+X`` points to the patient's right, so the liver lies at high X; ``+Y``
anterior; ``+Z`` superior), with the volume centred on the world origin. The body is scaled to fit the field
of view (``anatomy_scale`` in the csv), so the small default matrix is a whole
abdomen at reduced size and ``--full-size`` a scanner-like one at ~1:1.

Determinism: case ``i`` is a function of (seed, i, config) only, drawn from
``numpy.random.default_rng([seed, i, stream])``; gzip headers carry no time or
name, so the same arguments give byte-identical files. Every file is written
through a temporary file and ``os.replace``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import io
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from neonet_ext.labels import BACKGROUND, LABEL_NAMES, LIVER, TUMOUR
from neonet_ext.utils.io import atomic_write

__all__ = [
    "GENERATOR_VERSION",
    "TISSUE_INTENSITY",
    "IMAGING_SIGNS",
    "CaseLatents",
    "SyntheticCase",
    "SyntheticCohortConfig",
    "generate_case",
    "main",
    "oracle_auc",
    "sample_cohort_latents",
    "sign_reader_auc",
    "write_cohort",
]

GENERATOR_VERSION = "1.0.0"

# Distinct third words of the rng seed sequence: the latents, the anatomy and the
# noise of a case are independent streams, so e.g. changing the effect size changes
# the tumour and its signs but not the organs drawn before it.
_STREAM_LATENTS, _STREAM_ANATOMY, _STREAM_NOISE, _STREAM_BLOCK = 0, 1, 2, 3

#: Class separation of ``pni_risk`` in within-class standard deviations at effect 1.
_RISK_SEPARATION = 1.6

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
_TISSUE_ID = {name: i for i, name in enumerate(TISSUE_INTENSITY)}
#: Tissues that the label map calls liver: parenchyma with its intrahepatic vessels,
#: ducts and the perineural tracks.
_LIVER_TISSUES = ("liver", "hepatic_vein", "portal_vein", "bile_duct", "extension")


@dataclass(frozen=True)
class SyntheticCohortConfig:
    """Arguments of the synthetic cohort; with a seed they fix every byte written.

    Attributes:
        shape: volume size in voxels (X, Y, Z), Z the slice axis.
        inplane_spacing_mm: range of the (square) in-plane pixel size, drawn per case.
        slice_spacing_mm: range of the slice spacing, drawn per case.
        effect: PNI signal strength; 0 makes ``pni_risk`` independent of ``pni``.
        prevalence: fraction of PNI+ cases, exact per block of ``block_size``.
        block_size: size of the permuted blocks the PNI status is assigned in.
        intensity_scale: range of the liver signal (arbitrary units), log-uniform.
        snr: range of the liver signal-to-noise ratio (liver signal / noise sigma).
        bias_strength: standard deviation of the log coil-bias field.
        crop_size: TLCR crop (voxels) that the peritumoral signs must fall inside.
        image_dtype: dtype of the written images, "float32" or "int16" (rounded, as
            many scanners store them).
    """

    shape: tuple[int, int, int] = (160, 128, 64)
    inplane_spacing_mm: tuple[float, float] = (1.5, 2.0)
    slice_spacing_mm: tuple[float, float] = (2.5, 3.5)
    effect: float = 1.0
    prevalence: float = 44 / 128
    block_size: int = 128
    intensity_scale: tuple[float, float] = (200.0, 1500.0)
    snr: tuple[float, float] = (18.0, 35.0)
    bias_strength: float = 0.12
    crop_size: tuple[int, int, int] = (64, 64, 32)
    image_dtype: str = "float32"

    def __post_init__(self) -> None:
        # JSON and argparse hand in lists; the frozen dataclass stores tuples.
        for name in ("shape", "inplane_spacing_mm", "slice_spacing_mm", "intensity_scale", "snr", "crop_size"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.shape) != 3 or min(self.shape) < 16:
            raise ValueError(f"shape must be three sizes >= 16, got {self.shape}.")
        for name in ("inplane_spacing_mm", "slice_spacing_mm", "intensity_scale", "snr"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be a range 0 < low <= high, got {(lo, hi)}.")
        if not 0.0 <= self.prevalence <= 1.0:
            raise ValueError(f"prevalence must lie in [0, 1], got {self.prevalence}.")
        if self.image_dtype not in ("float32", "int16"):
            raise ValueError(f"image_dtype must be 'float32' or 'int16', got {self.image_dtype!r}.")
        if self.effect < 0 or self.block_size < 1:
            raise ValueError("effect must be >= 0 and block_size >= 1.")

    @classmethod
    def full_size(cls, **overrides) -> SyntheticCohortConfig:
        """Scanner-like matrix: 320 x 260 x 80 at 1.15-1.35 mm in plane (~40 cm field of view)."""
        return cls(**{"shape": (320, 260, 80), "inplane_spacing_mm": (1.15, 1.35), **overrides})


@dataclass(frozen=True)
class CaseLatents:
    """Everything drawn for a case before any voxel is made (cheap to sample in bulk).

    Lengths are millimetres in image space, i.e. after ``anatomy_scale``; ``*_nominal_*``
    values are drawn before fitting to the liver and the TLCR crop.
    """

    case_id: str
    index: int
    pni: int
    pni_risk: float
    shape_x: int
    shape_y: int
    shape_z: int
    spacing_x_mm: float
    spacing_y_mm: float
    spacing_z_mm: float
    anatomy_scale: float
    body_half_width_mm: float
    body_half_depth_mm: float
    intensity_scale: float
    snr: float
    tumour_diameter_nominal_mm: float
    n_lesions: int
    branch_order: int
    spiculation_amplitude: float
    n_spicules: int
    margin_irregularity_mm: float
    n_extensions: int
    extension_length_nominal_mm: float
    extension_radius_mm: float
    halo_strength: float
    halo_width_mm: float
    duct_dilatation: int
    rim: int
    necrosis: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.shape_x, self.shape_y, self.shape_z)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.spacing_x_mm, self.spacing_y_mm, self.spacing_z_mm)


@dataclass
class SyntheticCase:
    """One generated case.

    Attributes:
        image: float32 (X, Y, Z) HBP image, arbitrary units (liver ~ ``intensity_scale``).
        label: uint8 (X, Y, Z) label map with values BACKGROUND, LIVER, TUMOUR.
        affine: float64 (4, 4) RAS+ voxel-to-world matrix, diagonal spacing.
        record: the case's row of ``cohort.csv`` (latents and measurements).
        tissues: with ``return_tissues=True``, a bool (X, Y, Z) mask per tissue
            name of :data:`TISSUE_INTENSITY` present in the case (the tissue that
            fills most of each voxel); otherwise None.

    ``record`` holds the :class:`CaseLatents` fields and the measurements
    ``tumour_diameter_mm`` (primary tumour as placed), ``extension_length_mm``
    (tracks beyond the tumour radius), ``hilar_distance_mm`` (tumour centre to
    hilum), ``tumour_volume_ml`` and ``liver_volume_ml`` (liver plus tumour labels).
    """

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    record: dict[str, int | float | str]
    tissues: dict[str, np.ndarray] | None = None


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@lru_cache(maxsize=32)
def _block_positives(seed: int, block: int, block_size: int, n_positive: int) -> np.ndarray:
    order = np.random.default_rng([seed, block, _STREAM_BLOCK]).permutation(block_size)
    positive = order < n_positive
    positive.flags.writeable = False  # shared by the cache
    return positive


def _pni_status(index: int, seed: int, config: SyntheticCohortConfig) -> int:
    block, position = divmod(index, config.block_size)
    n_positive = math.floor(config.prevalence * config.block_size + 0.5)
    return int(_block_positives(seed, block, config.block_size, n_positive)[position])


def _draw_latents(index: int, seed: int, config: SyntheticCohortConfig) -> CaseLatents:
    rng = np.random.default_rng([seed, index, _STREAM_LATENTS])
    p = config.prevalence
    pni = _pni_status(index, seed, config)
    delta = config.effect * _RISK_SEPARATION
    risk = delta * (pni - p) + rng.standard_normal()
    risk_z = risk / math.sqrt(1.0 + delta**2 * p * (1.0 - p))

    def sign(rho: float) -> float:
        return rho * risk_z + math.sqrt(1.0 - rho * rho) * rng.standard_normal()

    shape = tuple(int(n) for n in config.shape)
    inplane = round(float(rng.uniform(*config.inplane_spacing_mm)), 4)
    slice_mm = round(float(rng.uniform(*config.slice_spacing_mm)), 4)
    half_width, half_depth = float(rng.uniform(150, 180)), float(rng.uniform(105, 135))
    fov = np.array(shape) * np.array([inplane, inplane, slice_mm])
    # the body spans at most 92 % / 90 % of the field; 210 mm runs from lung bases to lower kidney poles
    scale = float(min(1.0, 0.46 * fov[0] / half_width, 0.45 * fov[1] / half_depth, fov[2] / 210.0))
    intensity = float(np.exp(rng.uniform(*np.log(config.intensity_scale))))
    snr = float(rng.uniform(*config.snr))

    diameter = float(np.clip(33.0 * math.exp(0.42 * sign(0.45)), 10.0, 70.0))
    g_order = sign(0.5)
    branch_order = 1 if g_order > 0.6 else 2 if g_order > -0.3 else 3
    spiculation = 0.03 + 0.34 * _sigmoid(1.8 * sign(0.6) - 0.6)
    n_spicules = int(rng.integers(5, 15))
    irregularity = 0.3 + 2.2 * _sigmoid(1.5 * sign(0.5) - 0.3)
    n_extensions = int(min(4, rng.poisson(math.exp(-0.4 + 0.9 * sign(0.65)))))
    extension_length = float(rng.uniform(8.0, 28.0))
    extension_radius = float(rng.uniform(0.8, 1.6))
    halo = 0.28 * _sigmoid(1.6 * sign(0.5) - 0.4)
    halo_width = float(rng.uniform(2.5, 7.0))
    dilatation = int(rng.random() < _sigmoid(-0.6 + 1.1 * sign(0.45)))
    rim = int(rng.random() < 0.45)
    necrosis = int(rng.random() < _sigmoid(-1.4 + 4.0 * math.log(diameter / 33.0)))
    n_lesions = 1 + int(rng.random() < _sigmoid(-2.0 + 0.8 * sign(0.4)))

    return CaseLatents(
        case_id=f"case_{index:03d}",
        index=index,
        pni=pni,
        pni_risk=round(float(risk), 6),
        shape_x=shape[0],
        shape_y=shape[1],
        shape_z=shape[2],
        spacing_x_mm=inplane,
        spacing_y_mm=inplane,
        spacing_z_mm=slice_mm,
        anatomy_scale=round(scale, 6),
        body_half_width_mm=round(half_width * scale, 3),
        body_half_depth_mm=round(half_depth * scale, 3),
        intensity_scale=round(intensity, 3),
        snr=round(snr, 3),
        tumour_diameter_nominal_mm=round(diameter * scale, 3),
        n_lesions=n_lesions,
        branch_order=branch_order,
        spiculation_amplitude=round(spiculation, 4),
        n_spicules=n_spicules,
        margin_irregularity_mm=round(irregularity, 4),
        n_extensions=n_extensions,
        extension_length_nominal_mm=round(extension_length, 3),
        extension_radius_mm=round(extension_radius, 4),
        halo_strength=round(halo, 4),
        halo_width_mm=round(halo_width, 3),
        duct_dilatation=dilatation,
        rim=rim,
        necrosis=necrosis,
    )


def sample_cohort_latents(
    n_cases: int, seed: int, config: SyntheticCohortConfig | None = None, start: int = 0
) -> pd.DataFrame:
    """Latents of cases ``start .. start + n_cases - 1`` without making images (~0.1 ms per case).

    Returns:
        one row per case with the fields of :class:`CaseLatents`, identical to the
        latents :func:`generate_case` uses for the same (index, seed, config).
    """
    config = config or SyntheticCohortConfig()
    rows = [dataclasses.asdict(_draw_latents(i, seed, config)) for i in range(start, start + n_cases)]
    return pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(CaseLatents)])


def oracle_auc(pni: Sequence[int], pni_risk: Sequence[float]) -> float:
    """ROC AUC of ``pni_risk`` for ``pni``; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    pni = np.asarray(pni)
    if len(np.unique(pni)) < 2:
        return float("nan")
    return float(roc_auc_score(pni, np.asarray(pni_risk)))


#: The latents that ``pni_risk`` drives, each through its own noise: what a reader of the image
#: could at best measure. Diameter enters as its logarithm, as the generator draws it.
IMAGING_SIGNS = (
    "tumour_diameter_nominal_mm",
    "n_lesions",
    "branch_order",
    "spiculation_amplitude",
    "margin_irregularity_mm",
    "n_extensions",
    "halo_strength",
    "duct_dilatation",
)


def _sign_matrix(latents: pd.DataFrame) -> np.ndarray:
    x = latents[list(IMAGING_SIGNS)].to_numpy(dtype=float)
    x[:, 0] = np.log(x[:, 0])
    return x


def sign_reader_auc(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """ROC AUC on ``test`` of a logistic regression fit on ``train``'s exact imaging signs.

    A reference between chance and :func:`oracle_auc`: a reader that measured every sign of
    :data:`IMAGING_SIGNS` without error, and learnt how to weigh them from the training
    cohort, ranks the test cases this well. Each sign carries only part of ``pni_risk``, so
    even with many training cases it stays below the oracle. Both frames hold the fields of
    :class:`CaseLatents` (``cohort.csv`` or :func:`sample_cohort_latents`); NaN when either
    has one class only.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y_train, y_test = train["pni"].astype(int), test["pni"].astype(int)  # cohort.csv read as text works too
    if y_train.nunique() < 2 or y_test.nunique() < 2:
        return float("nan")
    reader = make_pipeline(StandardScaler(), LogisticRegression()).fit(_sign_matrix(train), y_train)
    return oracle_auc(y_test, reader.predict_proba(_sign_matrix(test))[:, 1])


# --------------------------------------------------------------------------- geometry


class _Grid:
    """Voxel grid: world coordinates (mm, RAS+) of voxel centres, volume centred on 0."""

    def __init__(self, shape: Sequence[int], spacing: Sequence[float]) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.spacing = np.asarray(spacing, dtype=np.float64)
        self.origin = -(np.asarray(self.shape) - 1) / 2.0 * self.spacing
        self.axes = [
            (self.origin[k] + np.arange(n) * self.spacing[k]).astype(np.float32) for k, n in enumerate(self.shape)
        ]

    @property
    def affine(self) -> np.ndarray:
        affine = np.diag([*self.spacing, 1.0])
        affine[:3, 3] = self.origin
        return affine

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> tuple[slice, slice, slice] | None:
        """Voxel slices covering the world box [lo, hi] (mm), clipped; None if it misses the grid."""
        start = np.maximum(np.ceil((np.asarray(lo) - self.origin) / self.spacing), 0).astype(int)
        stop = np.minimum(np.floor((np.asarray(hi) - self.origin) / self.spacing) + 1, self.shape).astype(int)
        if np.any(stop <= start):
            return None
        return tuple(slice(a, b) for a, b in zip(start, stop))

    def coords(self, sl: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinates of the box ``sl`` as broadcastable (nx,1,1), (1,ny,1), (1,1,nz) arrays."""
        x, y, z = (a[s] for a, s in zip(self.axes, sl))
        return x[:, None, None], y[None, :, None], z[None, None, :]

    def index(self, point: np.ndarray) -> tuple[int, int, int] | None:
        ijk = np.rint((np.asarray(point) - self.origin) / self.spacing).astype(int)
        if np.any(ijk < 0) or np.any(ijk >= self.shape):
            return None
        return tuple(int(v) for v in ijk)


_FULL = (slice(None), slice(None), slice(None))


@lru_cache(maxsize=64)
def _noise_basis(n: int, n_ctrl: int) -> np.ndarray:
    # Gaussian bumps on a control lattice one step beyond each edge; rows have unit
    # L2 norm, so a field built from iid unit coefficients has unit variance everywhere.
    step = n / n_ctrl
    centres = (np.arange(-1, n_ctrl + 1) + 0.5) * step
    basis = np.exp(-0.5 * ((np.arange(n)[:, None] + 0.5 - centres[None]) / (0.7 * step)) ** 2)
    basis /= np.linalg.norm(basis, axis=1, keepdims=True)
    return basis.astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], n_ctrl: Sequence[int]) -> np.ndarray:
    """Smooth Gaussian random field of the given (X, Y, Z) shape with unit variance.

    Built as a separable tensor product of Gaussian bumps (three small matrix
    products), far cheaper than filtering or zooming a full-size volume.
    """
    n_ctrl = [max(1, int(round(c))) for c in n_ctrl]
    coeffs = rng.standard_normal([c + 2 for c in n_ctrl]).astype(np.float32)
    bx, by, bz = (_noise_basis(int(n), c) for n, c in zip(shape, n_ctrl))
    field = np.tensordot(bx, coeffs, axes=(1, 0))  # (X, cy, cz)
    field = np.tensordot(field, by, axes=(1, 1))  # (X, cz, Y)
    field = np.tensordot(field, bz, axes=(1, 1))  # (X, Y, Z)
    return np.ascontiguousarray(field, dtype=np.float32)


def _rotation(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """3x3 rotation Rz(yaw) @ Ry(pitch) @ Rx(roll); its columns are a shape's local axes."""
    cz, sz, cy, sy, cx, sx = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rz @ ry @ rx


def _ellipsoid(coords, centre, radii, rotation: np.ndarray | None = None) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to an ellipsoid.

    ``(q - 1) / |grad q|`` with ``q`` the normalised radius: exact on the axes and
    first-order accurate near the surface, which is all the partial-volume ramp needs.
    """
    d = [c - float(v) for c, v in zip(coords, centre)]
    if rotation is not None:
        d = [d[0] * rotation[0, k] + d[1] * rotation[1, k] + d[2] * rotation[2, k] for k in range(3)]
    a = [di / float(r) for di, r in zip(d, radii)]
    q = np.sqrt(a[0] ** 2 + a[1] ** 2 + a[2] ** 2)
    grad = np.sqrt((a[0] / radii[0]) ** 2 + (a[1] / radii[1]) ** 2 + (a[2] / radii[2]) ** 2)
    return ((q - 1.0) * q / np.maximum(grad, 1e-6)).astype(np.float32)


def _ellipse2d(x, y, centre, radii) -> np.ndarray:
    """Approximate signed distance (mm) to an infinite elliptic cylinder along Z; shape (nx, ny, 1)."""
    return _ellipsoid((x, y, np.zeros((1, 1, 1), np.float32)), (*centre, 0.0), (*radii, 1e6))


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth union of two implicit shapes (polynomial smooth minimum over ``k`` mm)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth intersection of two implicit shapes."""
    return -_smin(-a, -b, k)


def _frac(f: np.ndarray, width: float) -> np.ndarray:
    """Partial-volume fraction from a signed distance: a linear ramp ``width`` mm wide."""
    return np.clip(0.5 - f / width, 0.0, 1.0).astype(np.float32, copy=False)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about unit ``axis``."""
    return v * math.cos(angle) + np.cross(axis, v) * math.sin(angle) + axis * np.dot(axis, v) * (1 - math.cos(angle))


def _perpendicular(rng: np.random.Generator, v: np.ndarray) -> np.ndarray:
    w = rng.standard_normal(3)
    return _unit(w - np.dot(w, v) * v)


class _Tubes:
    """Partial-volume fraction (X, Y, Z) of a union of tapered capsules (vessels, ducts, tracks)."""

    def __init__(self, grid: _Grid, width: float) -> None:
        self.grid, self.width = grid, width
        self.frac = np.zeros(grid.shape, np.float32)
        self.lo, self.hi = np.array(grid.shape), np.zeros(3, int)

    def capsule(self, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float) -> None:
        pad = max(r0, r1) + self.width
        sl = self.grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
        if sl is None:
            return
        x, y, z = self.grid.coords(sl)
        d = p1 - p0
        length2 = max(float(d @ d), 1e-9)
        px, py, pz = x - p0[0], y - p0[1], z - p0[2]
        t = np.clip((px * d[0] + py * d[1] + pz * d[2]) / length2, 0.0, 1.0)
        dist = np.sqrt((px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (pz - t * d[2]) ** 2)
        frac = _frac(dist - (r0 + t * (r1 - r0)), self.width)
        np.maximum(self.frac[sl], frac, out=self.frac[sl])
        self.lo = np.minimum(self.lo, [s.start for s in sl])
        self.hi = np.maximum(self.hi, [s.stop for s in sl])

    def polyline(self, points: np.ndarray, radii: np.ndarray) -> None:
        for k in range(len(points) - 1):
            self.capsule(points[k], points[k + 1], float(radii[k]), float(radii[k + 1]))

    def region(self) -> tuple[slice, slice, slice] | None:
        if np.any(self.hi <= self.lo):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(self.lo, self.hi))


@dataclass
class _TumourSite:
    centre: np.ndarray  # (3,) mm
    radius: float  # mm
    branch: int  # index of the portal branch it sits on, -1 for none


@dataclass
class _Branch:
    points: np.ndarray  # (k, 3) centreline, mm
    radii: np.ndarray  # (k,) mm
    generation: int
    parent: int  # index of the parent branch, -1 for a trunk


def _grow_tree(
    rng: np.random.Generator,
    depth_at: Callable[[np.ndarray], float],
    trunks: Sequence[tuple[np.ndarray, np.ndarray, float, float]],
    max_generation: int,
    min_radius: float,
    step: float,
) -> list[_Branch]:
    """Bifurcating, tapering vessel tree that stays inside the liver.

    Args:
        depth_at: depth (mm) of a world point inside the liver, negative outside.
        trunks: (start, direction, length, radius) of each generation-0 branch.
        max_generation: last generation that is still drawn.
        min_radius: branches thinner than this are not drawn (sub-voxel).
        step: centreline step (mm); each step turns a little, so branches curve.
    """
    branches: list[_Branch] = []
    stack = [
        (np.asarray(p, float), _unit(np.asarray(d, float)), length, radius, 0, -1) for p, d, length, radius in trunks
    ]
    while stack:
        start, direction, length, radius, generation, parent = stack.pop()
        n_steps = max(2, int(math.ceil(length / step)))
        ds = length / n_steps
        points, p, d = [start], start, direction
        for _ in range(n_steps):
            new_d = _unit(d + rng.normal(0.0, 0.12, 3))
            # Trunks start at the hilum or the IVC, outside the parenchyma: only
            # branches are kept inside, by turning toward deeper liver or stopping.
            if generation > 0 and depth_at(p + ds * new_d) < radius + 1.0:
                options = [_unit(d + rng.normal(0.0, 0.6, 3)) for _ in range(4)]
                depths = [depth_at(p + ds * o) for o in options]
                best = int(np.argmax(depths))
                if depths[best] < 0.5 * radius + 0.5:
                    break
                new_d = options[best]
            p, d = p + ds * new_d, new_d
            points.append(p)
        if len(points) < 2:
            continue
        index = len(branches)
        radii = np.linspace(radius, 0.95 * radius, len(points))
        branches.append(_Branch(np.array(points), radii, generation, parent))
        if len(points) == n_steps + 1 and generation < max_generation:
            axis = _perpendicular(rng, d)
            # asymmetric bifurcation (Murray-like): a main continuation and a thinner side branch
            children = ((1.0, (0.8, 0.92), (0.15, 0.45)), (-1.0, (0.6, 0.8), (0.5, 1.0)))
            for side, (lo, hi), (turn_lo, turn_hi) in children:
                child_radius = 0.95 * radius * rng.uniform(lo, hi)
                if child_radius >= min_radius:
                    child_d = _rotate(d, axis, side * rng.uniform(turn_lo, turn_hi))
                    stack.append((p, child_d, length * rng.uniform(0.7, 0.9), child_radius, generation + 1, index))
    return branches


def _ancestors(branches: Sequence[_Branch], index: int) -> list[int]:
    chain = []
    while index >= 0:
        chain.append(index)
        index = branches[index].parent
    return chain


# --------------------------------------------------------------------------- anatomy


class _CaseBuilder:
    """Paints one case tissue by tissue (later tissues cover earlier ones).

    ``image`` holds relative HBP signal (liver = 1) and ``owner`` the tissue id that
    fills most of each voxel; the label map and tissue masks are read off ``owner``.
    """

    def __init__(self, latents: CaseLatents, config: SyntheticCohortConfig, rng: np.random.Generator) -> None:
        self.lat, self.config, self.rng = latents, config, rng
        self.grid = _Grid(latents.shape, latents.spacing)
        self.s = latents.anatomy_scale
        self.a, self.b = latents.body_half_width_mm, latents.body_half_depth_mm
        self.width = float(np.mean(latents.spacing))
        self.image = np.zeros(self.grid.shape, np.float32)
        self.owner = np.zeros(self.grid.shape, np.uint8)
        self.values = {k: v * (1.0 if k == "liver" else rng.uniform(0.92, 1.08)) for k, v in TISSUE_INTENSITY.items()}
        self.z_top = float(self.grid.axes[2][-1])
        self.z_dome = self.z_top - self.s * rng.uniform(25.0, 45.0)
        self.liver_cc = self.s * rng.uniform(150.0, 185.0)
        self.measures: dict[str, float] = {}

    # ---- painting helpers

    def paint(self, sl, frac: np.ndarray, tissue: str, value: float | np.ndarray | None = None) -> None:
        """Mix ``value`` (default: the tissue's signal) into ``image[sl]`` by ``frac``."""
        value = self.values[tissue] if value is None else value
        image = self.image[sl]
        image += frac * (value - image)
        self.owner[sl][np.broadcast_to(frac > 0.5, image.shape)] = _TISSUE_ID[tissue]

    def paint_ellipsoid(self, tissue, centre, radii, rotation=None, value=None) -> None:
        """Paint an ellipsoidal organ, kept inside the abdominal cavity."""
        radii = np.asarray(radii, float)
        extent = np.full(3, radii.max()) if rotation is not None else radii
        sl = self.grid.box(np.asarray(centre) - extent - 2 * self.width, np.asarray(centre) + extent + 2 * self.width)
        if sl is None:
            return
        frac = _frac(_ellipsoid(self.grid.coords(sl), centre, radii, rotation), self.width)
        frac *= _frac(self.f_cavity[sl], self.width)
        self.paint(sl, frac, tissue, value)

    def paint_tubes(self, tissue: str, tubes: _Tubes, value=None, mask: Callable | None = None) -> None:
        """Paint a set of tubes; ``mask(sl)`` (e.g. the liver fraction) confines them."""
        sl = tubes.region()
        if sl is None:
            return
        frac = tubes.frac[sl]
        if mask is not None:
            frac = frac * mask(sl)
        self.paint(sl, frac, tissue, value)

    def liver_fraction(self, sl) -> np.ndarray:
        """Liver partial-volume fraction on the box ``sl`` (0 outside the liver's box)."""
        out = np.zeros([s.stop - s.start for s in sl], np.float32)
        inter = [slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(sl, self.liver_sl)]
        if all(s.stop > s.start for s in inter):
            src = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, self.liver_sl))
            dst = tuple(slice(s.start - a.start, s.stop - a.start) for s, a in zip(inter, sl))
            out[dst] = _frac(self.f_liver[src], self.width)
        return out

    def depth(self, point: np.ndarray) -> float:
        """Depth (mm) of a point inside the liver; negative outside."""
        ijk = self.grid.index(point)
        if ijk is None or not all(s.start <= i < s.stop for i, s in zip(ijk, self.liver_sl)):
            return -1e3
        return -float(self.f_liver[tuple(i - s.start for i, s in zip(ijk, self.liver_sl))])

    # ---- body wall, thorax, skeleton

    def body_radius(self, theta: np.ndarray) -> np.ndarray:
        """Outer body radius (mm) at polar angle ``theta`` (0 = patient's right, pi/2 = anterior)."""
        r = 1.0 / np.sqrt((np.cos(theta) / self.a) ** 2 + (np.sin(theta) / self.b) ** 2)
        shape = 1.0 + sum(c * np.cos(k * theta + ph) for k, c, ph in self.body_harmonics)
        # supine patients lie on a flattened back
        return r * shape * (1.0 - 0.08 * np.clip(-np.sin(theta), 0, 1) ** 4)

    def fat_thickness(self, theta: np.ndarray) -> np.ndarray:
        """Subcutaneous fat thickness (mm): thickest anteriorly, thinnest over the back."""
        return self.fat_mm * (1.0 + 0.35 * np.sin(theta) + 0.15 * np.cos(2 * theta))

    def build_body(self) -> None:
        """Body outline, subcutaneous fat, muscular wall and the cavity inside it."""
        rng, s = self.rng, self.s
        self.body_harmonics = [(k, rng.normal(0, 0.015), rng.uniform(0, 2 * np.pi)) for k in range(2, 6)]
        self.fat_mm = s * rng.uniform(10.0, 28.0)
        self.wall_mm = s * rng.uniform(9.0, 13.0)
        z = self.grid.axes[2]
        # the lower chest narrows toward the top of the field, curving the wall over the liver dome
        narrowing = 1.0 - 0.12 * np.clip((z - self.z_dome + 30 * s) / (80 * s), 0, 1) ** 2
        self.z_taper = ((1.0 + rng.normal(0, 0.04) * (z - z.mean()) / (np.ptp(z) + 1e-6)) * narrowing)[None, None, :]
        x, y = self.grid.axes[0][:, None], self.grid.axes[1][None, :]
        theta = np.arctan2(y, x)
        r = np.hypot(x, y)
        f_body = r[:, :, None] - (self.body_radius(theta)[:, :, None] * self.z_taper)
        fat = self.fat_thickness(theta)[:, :, None]
        self.f_cavity = (f_body + fat + self.wall_mm).astype(np.float32)
        # imperfect fat suppression: the fat signal drifts smoothly across the field
        fat_value = self.values["subcutaneous_fat"] * (1 + 0.18 * _smooth_noise(rng, self.grid.shape, (3, 3, 2)))
        self.paint(_FULL, _frac(f_body, self.width), "subcutaneous_fat", fat_value)
        self.paint(_FULL, _frac(f_body + fat, self.width), "muscle")
        self.paint(_FULL, _frac(self.f_cavity, self.width), "visceral_fat")
        self.y_spine = -self.b + self.fat_mm * 0.65 + s * rng.uniform(55, 65)
        self.aorta = (-17 * s, self.y_spine + 32 * s, 11 * s * rng.uniform(0.9, 1.1))
        self.ivc = (22 * s, self.y_spine + 32 * s, 12 * s, 9 * s)

    def build_diaphragm_and_thorax(self) -> None:
        """Two diaphragmatic domes (right higher); lung bases and heart above them."""
        s, a, b, rng = self.s, self.a, self.b, self.rng
        x, y = self.grid.axes[0][:, None], self.grid.axes[1][None, :]

        def dome(x_peak: float, top: float) -> np.ndarray:
            # posterior costophrenic recesses reach lower than the anterior dome
            posterior = np.clip(-y / b - 0.1, 0, None)
            return top - s * (110 * ((x - x_peak) / a) ** 2 + 25 * (y / b) ** 2 + 45 * posterior**2)

        right = dome(0.42 * a, self.z_dome)
        left = dome(-0.42 * a, self.z_dome - s * rng.uniform(8, 20))
        self.z_diaphragm = np.maximum(right, left).astype(np.float32)  # (X, Y)
        sl = self.grid.box((-1e4, -1e4, float(self.z_diaphragm.min()) - 2), (1e4, 1e4, 1e4))
        if sl is None:
            return
        _, _, z = self.grid.coords(sl)
        zd = self.z_diaphragm[:, :, None]
        cavity = self.f_cavity[sl]
        self.paint(sl, _frac(np.maximum(cavity, zd - z), self.width), "muscle")
        self.paint(sl, _frac(np.maximum(cavity + 5 * s, zd + 5 * s - z), self.width), "lung")
        heart_centre = (-0.15 * a, 0.3 * b, self.z_dome + 42 * s)
        f_heart = _ellipsoid(self.grid.coords(sl), heart_centre, (52 * s, 40 * s, 50 * s), _rotation(0.5))
        self.paint(sl, _frac(np.maximum(f_heart, zd - 2 * s - z), self.width), "heart")

    def build_ribs(self) -> None:
        """Ribs in the chest wall, descending from the spine toward the anterior costal margin."""
        s, rng = self.s, self.rng
        tubes = _Tubes(self.grid, self.width)
        phi = np.linspace(0.2 * np.pi, 0.95 * np.pi, 18)
        for k in range(11):
            z_post = self.z_dome + s * (55 - 26 * k) + rng.normal(0, 3 * s)
            reach = max(0.35, 0.95 - 0.055 * k)
            ph = phi[phi <= reach * np.pi]
            for side in (1.0, -1.0):
                theta = -np.pi / 2 + side * ph
                z = z_post - s * 70 * ph / np.pi
                z_scale = np.interp(z, self.grid.axes[2], self.z_taper[0, 0])
                r = self.body_radius(theta) * z_scale - self.fat_thickness(theta) - 0.5 * self.wall_mm
                points = np.stack([r * np.cos(theta), r * np.sin(theta), z], axis=1)
                tubes.polyline(points, np.full(len(points), 3.6 * s))
        self.paint_tubes("rib", tubes)

    def build_spine_and_vessels(self) -> None:
        """Vertebral column with discs, paraspinal and psoas muscles, aorta and IVC."""
        s, rng = self.s, self.rng
        x, y = self.grid.coords(_FULL)[:2]
        z = self.grid.axes[2]
        ys = self.y_spine
        for side in (1.0, -1.0):
            f = _ellipse2d(x, y, (side * 34 * s, ys - 38 * s), (27 * s, 17 * s))
            self.paint(_FULL, _frac(f, self.width), "muscle")
        # discs every ~3 cm: darker bands through the vertebral bodies on coronal views
        period = 32 * s
        phase = rng.uniform(0, period)
        disc = np.exp(-0.5 * ((np.abs((z - phase) % period - period / 2) - period / 2) / (3.5 * s)) ** 2)
        bone_value = (self.values["bone"] * (1 - 0.4 * disc))[None, None, :].astype(np.float32)
        self.paint(_FULL, _frac(_ellipse2d(x, y, (0.0, ys), (22 * s, 18 * s)), self.width), "bone", bone_value)
        self.paint(_FULL, _frac(_ellipse2d(x, y, (0.0, ys - 38 * s), (6 * s, 14 * s)), self.width), "bone")
        self.paint(_FULL, _frac(_ellipse2d(x, y, (0.0, ys - 25 * s), (9 * s, 8 * s)), self.width), "csf")
        self.paint(_FULL, _frac(_ellipse2d(x, y, (0.0, ys - 25 * s), (4.5 * s, 4 * s)), self.width), "spinal_cord")
        # psoas muscles appear below the kidneys' upper poles and thicken caudally
        grow = np.clip((self.z_dome - 0.55 * self.liver_cc - z) / (0.4 * self.liver_cc), 0, 1)[None, None, :]
        for side in (1.0, -1.0):
            rx, ry = (4 + 14 * grow) * s, (4 + 12 * grow) * s
            q = np.sqrt(((x - side * 32 * s) / rx) ** 2 + ((y - ys - 4 * s) / ry) ** 2)
            f = (q - 1) * np.minimum(rx, ry)
            self.paint(_FULL, _frac(f, self.width) * (grow > 0), "muscle")
        self.paint(_FULL, _frac(_ellipse2d(x, y, self.aorta[:2], (self.aorta[2],) * 2), self.width), "aorta")
        self.paint(_FULL, _frac(_ellipse2d(x, y, self.ivc[:2], self.ivc[2:]), self.width), "ivc")

    # ---- abdominal organs

    def build_viscera(self) -> None:
        """Bowel, stomach, kidneys, spleen, pancreas and the extrahepatic portal venous system."""
        s, a, b, rng = self.s, self.a, self.b, self.rng
        zd, cc = self.z_dome, self.liver_cc
        self.build_bowel()
        # stomach under the left dome: wall, then fluid, then gas rising anteriorly (supine)
        centre = (-0.38 * a, 0.12 * b, zd - 0.3 * cc)
        radii = s * np.array([42, 36, 55]) * rng.uniform(0.8, 1.15, 3)
        rotation = _rotation(rng.uniform(-0.8, -0.3), 0.3)
        self.paint_ellipsoid("stomach_wall", centre, radii, rotation)
        self.paint_ellipsoid("stomach_content", centre, radii - 5 * s, rotation)
        level = centre[1] + radii[1] * rng.uniform(0.0, 0.6)
        sl = self.grid.box(np.array(centre) - radii.max(), np.array(centre) + radii.max())
        if sl is not None:
            coords = self.grid.coords(sl)
            f_gas = np.maximum(_ellipsoid(coords, centre, radii - 5 * s, rotation), level - coords[1])
            self.paint(sl, _frac(f_gas, self.width) * _frac(self.f_cavity[sl], self.width), "gas")
        # kidneys: cortex shell around medulla, sinus fat at the anteromedial hilum
        self.kidneys = []
        for side, dz in ((1.0, 0.0), (-1.0, 0.1)):
            centre = np.array([side * 0.36 * a, self.y_spine + 6 * s, zd - cc * (0.92 - dz)])
            radii = s * np.array([26, 30, 54]) * rng.uniform(0.9, 1.1, 3)
            rotation = _rotation(side * 0.6, 0.0, side * 0.15)
            self.kidneys.append((centre, radii, rotation))
            self.paint_ellipsoid("kidney_cortex", centre, radii, rotation)
            self.paint_ellipsoid("kidney_medulla", centre, radii - 6 * s, rotation)
            hilum = centre + rotation @ np.array([-side * radii[0] * 0.6, 0.0, 0.0])
            self.paint_ellipsoid("visceral_fat", hilum, radii * [0.45, 0.4, 0.45], rotation)
        # spleen: crescent along the left posterolateral wall
        centre = np.array([-0.6 * a, -0.35 * b, zd - cc * rng.uniform(0.3, 0.45)])
        radii = s * np.array([22, 55, 50]) * rng.uniform(0.8, 1.2, 3)
        rotation = _rotation(0.35 + rng.normal(0, 0.1))
        sl = self.grid.box(centre - radii.max(), centre + radii.max())
        coords = self.grid.coords(sl)
        f = _ellipsoid(coords, centre, radii, rotation)
        hilum = centre + rotation @ np.array([radii[0] * 1.2, 0, 0])
        hollow = _ellipsoid(coords, hilum, radii * [0.9, 0.8, 0.8], rotation)
        f = _smax(f, -hollow, 4 * s)
        self.paint(sl, _frac(f, self.width) * _frac(self.f_cavity[sl], self.width), "spleen")
        # pancreas from the head near the duodenum to the tail at the splenic hilum
        head = np.array([0.1 * a, 0.05 * b, zd - 0.85 * cc])
        body = np.array([-0.12 * a, self.aorta[1] + 22 * s, zd - 0.72 * cc])
        tail = np.array([-0.48 * a, -0.12 * b, zd - 0.6 * cc])
        tubes = _Tubes(self.grid, self.width)
        path = np.concatenate([np.linspace(head, body, 5), np.linspace(body, tail, 6)[1:]])
        tubes.polyline(path, np.linspace(13, 8, len(path)) * s)
        region = tubes.region()
        if region is not None:
            shape = [s_.stop - s_.start for s_ in region]
            lobulated = 1 + 0.12 * _smooth_noise(rng, shape, np.array(shape) * self.grid.spacing / (12 * s))
            self.paint_tubes("pancreas", tubes, value=self.values["pancreas"] * lobulated)
        # splenic vein behind the pancreas joining the portal trunk toward the hilum
        self.hilum = np.array([0.15 * a, 0.04 * b, zd - 0.55 * cc]) + rng.normal(0, 4 * s, 3)
        confluence = np.array([0.03 * a, self.aorta[1] + 18 * s, zd - 0.78 * cc])
        veins = _Tubes(self.grid, self.width)
        veins.polyline(np.linspace(tail + [0, -6 * s, 0], confluence, 6), np.full(6, 4.5 * s))
        veins.polyline(np.linspace(confluence, self.hilum, 6), np.full(6, 6.5 * s))
        self.paint_tubes("portal_trunk", veins)

    def build_bowel(self) -> None:
        """Winding bowel loops in the lower abdomen: tubes where two smooth random fields are both near zero."""
        s, a, b, rng = self.s, self.a, self.b, self.rng
        sl = self.grid.box((-a, -0.35 * b, -1e4), (a, b, self.z_dome - 0.4 * self.liver_cc))
        if sl is None:
            return
        shape = [s_.stop - s_.start for s_ in sl]
        step = 25 * s
        n_ctrl = np.maximum(np.array(shape) * self.grid.spacing / step, 1)
        n1, n2, n3 = (_smooth_noise(rng, shape, n_ctrl) for _ in range(3))
        # unit-variance fields whose correlation length is ~0.7 control steps: |n| * 0.7 step ~ mm
        mm = 0.7 * step
        f_tube = (np.sqrt(n1 * n1 + n2 * n2) - 0.85) * mm
        cavity = _frac(self.f_cavity[sl], self.width)
        self.paint(sl, _frac(f_tube, self.width) * cavity, "bowel_wall")
        # lumen: dark fluid, greyer where it holds chyme or faeces, gas in places
        content = self.values["bowel_content"] * (1 + 0.6 * np.tanh(n3))
        self.paint(sl, _frac(f_tube + 6 * s, self.width) * cavity, "bowel_content", content)
        gas = _frac(np.maximum(f_tube + 6 * s, (1.0 - n3) * mm), self.width) * cavity
        self.paint(sl, gas, "gas")

    # ---- liver and its trees

    def build_liver(self) -> None:
        """Liver as a smooth union of lobes, deformed, under the diaphragm and inside the cavity.

        Keeps its signed distance ``f_liver`` on the box ``liver_sl`` for depth queries.
        """
        s, a, b, rng, cc, zd = self.s, self.a, self.b, self.rng, self.liver_cc, self.z_dome
        # (centre, radii, pitch): the right lobe leans so its tip is infero-lateral and the
        # inferior border slopes up toward the left, the wedge seen on coronal views
        lobes = [
            ((0.42 * a, 0.0, zd - 0.5 * cc), (0.38 * a, 0.6 * b, 0.6 * cc) * rng.uniform(0.88, 1.1, 3), -0.4),
            ((0.14 * a, 0.28 * b, zd - 0.33 * cc), (0.24 * a, 0.36 * b, 0.3 * cc), 0.1),
            ((-0.14 * a, 0.38 * b, zd - 0.28 * cc), (0.34 * a * rng.uniform(0.6, 1.25), 0.24 * b, 0.22 * cc), 0.25),
            ((0.1 * a, -0.15 * b, zd - 0.35 * cc), (0.13 * a, 0.16 * b, 0.22 * cc), 0.0),
        ]
        if rng.random() < 0.3:  # Riedel lobe: a tongue of right lobe reaching caudally
            lobes.append(((0.55 * a, 0.1 * b, zd - 0.85 * cc), (0.14 * a, 0.3 * b, 0.3 * cc), -0.2))
        extent = [np.full(3, max(r)) for _, r, _ in lobes]
        lo = np.min([np.subtract(c, e) for (c, _, _), e in zip(lobes, extent)], axis=0) - 10 * s
        hi = np.max([np.add(c, e) for (c, _, _), e in zip(lobes, extent)], axis=0) + 10 * s
        self.liver_sl = sl = self.grid.box(lo, hi)
        coords = self.grid.coords(sl)
        x, y, z = coords
        tilts = [_rotation(rng.normal(0, 0.12), pitch + rng.normal(0, 0.08)) for _, _, pitch in lobes]
        f = _ellipsoid(coords, *lobes[0][:2], tilts[0])
        for (centre, radii, _), tilt in zip(lobes[1:], tilts[1:]):
            f = _smin(f, _ellipsoid(coords, centre, radii, tilt), 25 * s)
        shape = [s_.stop - s_.start for s_ in sl]
        size = np.array(shape) * self.grid.spacing
        f += 9 * s * _smooth_noise(rng, shape, np.maximum(size / (50 * s), 2))
        f += 4 * s * _smooth_noise(rng, shape, np.maximum(size / (25 * s), 2))
        f = _smax(f, z - self.z_diaphragm[sl[:2]][:, :, None], 4 * s)
        f = _smax(f, self.f_cavity[sl] + 1.5 * s, 8 * s)
        # organs the liver moulds around: right kidney, spine, IVC, aorta
        centre, radii, rotation = self.kidneys[0]
        f = _smax(f, 3 * s - _ellipsoid(coords, centre, radii, rotation), 6 * s)
        f = _smax(f, -_ellipse2d(x, y, (0.0, self.y_spine), (26 * s, 22 * s)), 6 * s)
        f = _smax(f, -_ellipse2d(x, y, self.ivc[:2], np.array(self.ivc[2:]) + 2 * s), 4 * s)
        f = _smax(f, -_ellipse2d(x, y, self.aorta[:2], (self.aorta[2] + 4 * s,) * 2), 4 * s)
        self.f_liver = f.astype(np.float32)
        texture = 1.0 + 0.035 * _smooth_noise(rng, shape, np.maximum(size / (12 * s), 2))
        self.paint(sl, _frac(self.f_liver, self.width), "liver", texture)

    def build_vessel_trees(self) -> None:
        """Portal tree from the hilum and hepatic vein tree from the IVC (hypointense in the HBP)."""
        s, rng = self.s, self.rng
        min_r = max(0.45, 0.3 * float(self.grid.spacing[:2].min()))
        step = 5.0 * s
        self.portal = _grow_tree(
            rng,
            self.depth,
            [
                (self.hilum, (1.0, -0.1, 0.3), 30 * s, 7.0 * s),
                (self.hilum, (-0.8, 0.6, 0.2), 32 * s, 6.0 * s),
            ],
            max_generation=6,
            min_radius=min_r,
            step=step,
        )
        root = np.array([self.ivc[0], self.ivc[1] + 4 * s, self.z_dome - 0.12 * self.liver_cc])
        hepatic = _grow_tree(
            rng,
            self.depth,
            [
                (root, (1.0, 0.2, -0.35), 38 * s, 6.0 * s),
                (root, (0.2, 1.0, -0.35), 36 * s, 5.5 * s),
                (root, (-0.7, 0.8, -0.15), 30 * s, 5.0 * s),
            ],
            max_generation=6,
            min_radius=min_r,
            step=step,
        )
        tubes = _Tubes(self.grid, self.width)
        for br in hepatic:
            tubes.polyline(br.points, br.radii)
        self.paint_tubes("hepatic_vein", tubes, mask=self.liver_fraction)
        tubes = _Tubes(self.grid, self.width)
        for br in self.portal:
            tubes.polyline(br.points, br.radii)
        self.paint_tubes("portal_vein", tubes, mask=self.liver_fraction)

    def build_ducts(self, dilated: set[int]) -> None:
        """Bile ducts beside the portal branches; those upstream of the tumour dilated."""
        offset_dir = _unit(self.rng.standard_normal(3))
        tubes = _Tubes(self.grid, self.width)
        self.ducts = []
        for i, br in enumerate(self.portal):
            tangent = _unit(br.points[-1] - br.points[0])
            normal = _unit(offset_dir - np.dot(offset_dir, tangent) * tangent)
            radii = np.maximum(0.3 * br.radii, 0.45)
            if i in dilated:
                radii = np.minimum(radii * 2.5, 4.0 * self.s + 1.0)
            points = br.points + normal * (br.radii + radii + 0.5)[:, None]
            self.ducts.append(points)
            tubes.polyline(points, radii)
        self.paint_tubes("bile_duct", tubes, mask=self.liver_fraction)

    def build_gallbladder(self) -> None:
        """Gallbladder in its fossa under the liver (absent after cholecystectomy)."""
        if self.rng.random() < 0.15:  # cholecystectomy
            return
        s, a, b = self.s, self.a, self.b
        centre = (0.1 * a, 0.3 * b, self.z_dome - 0.78 * self.liver_cc)
        radii = s * np.array([16, 14, 38]) * self.rng.uniform(0.8, 1.2, 3)
        self.paint_ellipsoid("gallbladder", centre, radii, _rotation(0.3, 0.5))

    # ---- tumour and PNI signs

    def place_tumour(self) -> _TumourSite:
        """Site of the primary tumour.

        The tumour sits on a portal/duct branch of the drawn order (1 = right/left
        main branch near the hilum) deep enough in the liver to hold it; failing
        that, at the deepest point of the liver with the radius shrunk to fit.
        """
        lat, rng = self.lat, self.rng
        radius = max(0.5 * lat.tumour_diameter_nominal_mm, 1.5 * float(self.grid.spacing.max()))
        orders = sorted(range(1, 5), key=lambda o: (abs(o - lat.branch_order), o))
        for order in orders:
            candidates = [i for i, br in enumerate(self.portal) if br.generation == order - 1]
            for i in rng.permutation(candidates) if candidates else []:
                br = self.portal[i]
                point = br.points[int(rng.integers(len(br.points) // 2, len(br.points)))]
                if self.depth(point) >= 0.85 * radius:
                    shift = point + _unit(rng.standard_normal(3)) * 0.25 * radius
                    return _TumourSite(shift if self.depth(shift) >= 0.85 * radius else point, radius, int(i))
        ijk = np.unravel_index(int(np.argmin(self.f_liver)), self.f_liver.shape)
        centre = np.array([self.grid.axes[k][s.start + i] for k, (s, i) in enumerate(zip(self.liver_sl, ijk))], float)
        return _TumourSite(centre, min(radius, 0.85 * self.depth(centre)), -1)

    def upstream_branches(self, site: _TumourSite) -> set[int]:
        """Portal branches peripheral to the tumour: their ducts drain through it."""
        if site.branch < 0:
            return set()
        return {i for i in range(len(self.portal)) if site.branch in _ancestors(self.portal, i)}

    def tumour_field(self, centre, radius, spicules, irregularity, pad) -> tuple[tuple, np.ndarray, np.ndarray]:
        """Signed distance (mm) to a lobulated, spiculated tumour on a box ``pad`` mm beyond it.

        Returns:
            ``(sl, f, rho)``: the box, the distance and the normalised radius |p - c| / radius.
        """
        rng, lat = self.rng, self.lat
        reach = radius * (1.2 + (lat.spiculation_amplitude if spicules else 0)) + 2 * irregularity + pad
        sl = self.grid.box(centre - reach, centre + reach)
        coords = self.grid.coords(sl)
        radii = radius * rng.uniform(0.85, 1.15, 3)
        f = _ellipsoid(coords, centre, radii, _rotation(*rng.uniform(0, np.pi, 3)))
        d = [c - float(v) for c, v in zip(coords, centre)]
        dist = np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2) + 1e-6
        bumps = np.zeros_like(f)
        for _ in range(4):
            v = _unit(rng.standard_normal(3))
            cos = (d[0] * v[0] + d[1] * v[1] + d[2] * v[2]) / dist
            amplitude = np.clip(rng.normal(0, 0.08), -0.15, 0.15)
            bumps += amplitude * np.cos(np.pi * rng.integers(1, 3) * cos + rng.uniform(0, 2 * np.pi))
        if spicules:
            for _ in range(lat.n_spicules):
                v = _unit(rng.standard_normal(3))
                cos = np.clip((d[0] * v[0] + d[1] * v[1] + d[2] * v[2]) / dist, 0, 1)
                # cos**p is a narrow cone: a spike that tapers to its tip
                bumps += lat.spiculation_amplitude * rng.uniform(0.5, 1.0) * cos ** rng.uniform(60, 200)
        f -= radius * bumps
        shape = [s_.stop - s_.start for s_ in sl]
        # an irregular margin, not a hole in the middle: the noise fades toward the centre
        rho = dist / radius
        noise = _smooth_noise(rng, shape, np.array(shape) * self.grid.spacing / 5.0)
        f += min(irregularity, 0.3 * radius) * np.clip(rho, 0, 1) * noise
        return sl, f, rho

    def build_tumour(self, site: _TumourSite) -> None:
        """Primary tumour (and satellite), peritumoral halo and perineural tracks."""
        lat, rng, s = self.lat, self.rng, self.s
        centre, radius, branch = site.centre, site.radius, site.branch
        # peritumoral and TLCR limits: everything must stay within half the crop of the centre
        reach = 0.9 * 0.5 * float(np.min(np.asarray(self.config.crop_size) * self.grid.spacing))

        lesions = [(centre, radius, True)]
        if lat.n_lesions > 1:
            r2 = max(radius * rng.uniform(0.2, 0.4), 1.5 * float(self.grid.spacing.max()))
            best, best_depth = centre, -1e9
            for _ in range(24):
                gap = min(radius + r2 + rng.uniform(3, 15) * s, max(reach - r2, radius + r2))
                candidate = centre + _unit(rng.standard_normal(3)) * gap
                depth = self.depth(candidate)
                if depth > best_depth:
                    best, best_depth = candidate, depth
            lesions.append((best, min(r2, max(best_depth, 1.5 * float(self.grid.spacing.max()))), False))

        fields = [
            self.tumour_field(c, r, spic, lat.margin_irregularity_mm, 3 * lat.halo_width_mm) for c, r, spic in lesions
        ]
        for sl, f, _ in fields:  # halo: hypointense rim of peritumoral parenchyma
            halo = 1.0 - lat.halo_strength * np.exp(-np.clip(f, 0, None) / lat.halo_width_mm) * self.liver_fraction(sl)
            self.image[sl] *= halo

        length = self.build_extensions(centre, radius, branch, reach)
        tumour_value = self.values["tumour"] * rng.uniform(0.85, 1.15)
        for (sl, f, rho), (_, r, primary) in zip(fields, lesions):
            shape = [s_.stop - s_.start for s_ in sl]
            texture = _smooth_noise(rng, shape, np.array(shape) * self.grid.spacing / 6.0)
            value = tumour_value * (1 + 0.15 * texture)
            if primary and lat.rim:  # targetoid: central cloud of retained contrast, dark periphery
                cloud = np.exp(-((rho / 0.55) ** 2)) * (1 + 0.5 * texture)
                value *= 1 + rng.uniform(0.25, 0.5) * cloud - 0.2 * np.exp(-(((rho - 0.9) / 0.15) ** 2))
            if primary and lat.necrosis:
                core = _frac((rho - rng.uniform(0.3, 0.5) + 0.08 * texture) * r, self.width)
                value = value + core * (self.values["bile_duct"] * 0.6 - value)
            self.paint(sl, _frac(f, self.width) * self.liver_fraction(sl), "tumour", value)

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
        lat = self.lat
        if lat.n_extensions == 0:
            return 0.0
        length = float(np.clip(lat.extension_length_nominal_mm, 3.0, max(reach - radius, 3.0)))
        margin = lat.extension_radius_mm + 0.5
        tubes = _Tubes(self.grid, self.width)
        for k in range(lat.n_extensions):
            points = None
            if k == 0 and branch >= 0:
                points = self._duct_track(centre, radius, branch, radius + length, margin)
            if points is None:
                points = self._wandering_track(centre, radius, radius + length, margin)
            if len(points) >= 2:
                tubes.polyline(points, np.linspace(lat.extension_radius_mm, 0.5 * lat.extension_radius_mm, len(points)))
        self.paint_tubes("extension", tubes, value=self.values["extension"], mask=self.liver_fraction)
        return length

    def _duct_track(self, centre, radius, branch, stop, margin) -> np.ndarray | None:
        """Periductal track along the tumour's duct toward the hilum; None if it leaves the liver at once."""
        path = self._densify(np.concatenate([self.ducts[i][::-1] for i in _ancestors(self.portal, branch)]))
        dist = np.linalg.norm(path - centre, axis=1)
        path, dist = path[int(np.argmin(dist)) :], dist[int(np.argmin(dist)) :]
        keep = [p for p, d in zip(path, dist) if 0.7 * radius <= d < stop]
        track = []
        for p in keep:
            if self.depth(p) < margin:
                break
            track.append(p)
        if len(track) < 3:
            return None
        return np.array(track) + self.rng.normal(0, 0.4, (len(track), 3))

    def _wandering_track(self, centre, radius, stop, margin) -> np.ndarray:
        """Track leaving the tumour at an angle to the hilum direction, curving toward the hilum."""
        rng = self.rng
        toward = _unit(self.hilum - centre)
        direction = _rotate(toward, _perpendicular(rng, toward), rng.uniform(0.3, 1.2) * rng.choice([-1, 1]))
        p = centre + direction * 0.7 * radius
        points = [p]
        while np.linalg.norm(p - centre) < stop and len(points) < 80:
            direction = _unit(direction + rng.normal(0, 0.15, 3) + 0.08 * _unit(self.hilum - p))
            if self.depth(p + 1.5 * direction) < margin:
                break
            p = p + 1.5 * direction
            points.append(p)
        return np.array(points)

    @staticmethod
    def _densify(points, step: float = 1.5) -> np.ndarray:
        """Resample a polyline at ``step`` mm so it can carry small wiggles."""
        points = np.asarray(points, float)
        if len(points) < 2:
            return points
        seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
        t = np.concatenate([[0], np.cumsum(seg)])
        samples = np.arange(0, t[-1] + 1e-9, step)
        return np.stack([np.interp(samples, t, points[:, k]) for k in range(3)], axis=1)

    # ---- acquisition

    def acquire(self, noise_rng: np.random.Generator) -> np.ndarray:
        """Blur (finite resolution), coil bias, intensity scale and Rician noise; float32 (X, Y, Z)."""
        lat, rng = self.lat, self.rng
        image = ndimage.gaussian_filter(self.image, sigma=(0.45, 0.45, 0.3), mode="nearest", truncate=3.0)
        x, y = self.grid.axes[0][:, None], self.grid.axes[1][None, :]
        # phased-array coils: brighter near the anterior and posterior surface
        coil = (0.35 * (y / self.b) ** 2 + 0.1 * (x / self.a) ** 2)[:, :, None]
        log_bias = self.config.bias_strength * (_smooth_noise(rng, self.grid.shape, (3, 3, 2)) + 2.5 * coil)
        signal = image * np.exp(log_bias - float(np.median(log_bias))) * lat.intensity_scale
        sigma = lat.intensity_scale / lat.snr
        real = signal + sigma * noise_rng.standard_normal(signal.shape, dtype=np.float32)
        imag = sigma * noise_rng.standard_normal(signal.shape, dtype=np.float32)
        return np.sqrt(real * real + imag * imag).astype(np.float32)


def generate_case(
    index: int, seed: int, config: SyntheticCohortConfig | None = None, return_tissues: bool = False
) -> SyntheticCase:
    """Generate case ``index`` of the cohort ``seed`` in memory.

    Args:
        index: case number (>= 0); the case id is ``case_{index:03d}``.
        seed: cohort seed (>= 0).
        config: cohort arguments; default :class:`SyntheticCohortConfig`.
        return_tissues: also return per-tissue bool masks (X, Y, Z).

    Returns:
        :class:`SyntheticCase` with image float32 (X, Y, Z), label uint8 (X, Y, Z),
        RAS affine (4, 4) and the cohort.csv record. It depends only on
        (index, seed, config).
    """
    config = config or SyntheticCohortConfig()
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got {index} and {seed}.")
    latents = _draw_latents(index, seed, config)
    builder = _CaseBuilder(latents, config, np.random.default_rng([seed, index, _STREAM_ANATOMY]))
    builder.build_body()
    builder.build_diaphragm_and_thorax()
    builder.build_ribs()
    builder.build_viscera()
    builder.build_spine_and_vessels()
    builder.build_liver()
    builder.build_vessel_trees()
    site = builder.place_tumour()
    builder.build_ducts(builder.upstream_branches(site) if latents.duct_dilatation else set())
    builder.build_gallbladder()
    builder.build_tumour(site)
    image = builder.acquire(np.random.default_rng([seed, index, _STREAM_NOISE]))

    lut = np.full(256, BACKGROUND, np.uint8)
    lut[[_TISSUE_ID[t] for t in _LIVER_TISSUES]] = LIVER
    lut[_TISSUE_ID["tumour"]] = TUMOUR
    label = lut[builder.owner]
    voxel_ml = float(np.prod(builder.grid.spacing)) / 1000.0
    counts = np.bincount(label.ravel(), minlength=3)
    if counts[TUMOUR] == 0:
        raise RuntimeError(f"case {index} (seed {seed}) has no tumour voxels; please report this configuration.")
    record = dataclasses.asdict(latents)
    record.update(builder.measures)
    record.update(
        tumour_volume_ml=round(float(counts[TUMOUR]) * voxel_ml, 4),
        liver_volume_ml=round(float(counts[LIVER] + counts[TUMOUR]) * voxel_ml, 3),
    )
    tissues = None
    if return_tissues:
        present = np.flatnonzero(np.bincount(builder.owner.ravel(), minlength=len(_TISSUE_ID)))
        names = list(TISSUE_INTENSITY)
        tissues = {names[i]: builder.owner == i for i in present}
    return SyntheticCase(image=image, label=label, affine=builder.grid.affine, record=record, tissues=tissues)


# --------------------------------------------------------------------------- writing


def _nifti_gz_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """NIfTI-1 bytes, gzipped without a time stamp or file name so equal inputs give equal bytes."""
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    buffer = io.BytesIO()
    # noisy float32 barely compresses at any level: take the fastest
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="", compresslevel=1) as gz:
        gz.write(image.to_bytes())
    return buffer.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _csv_value(value: int | float | str) -> str:
    if isinstance(value, float):
        return repr(round(float(value), 6))
    return str(value)


def write_cohort(
    out_dir: str | Path, n_cases: int, seed: int, config: SyntheticCohortConfig | None = None, verbose: bool = True
) -> dict[str, float | int | str]:
    """Generate ``n_cases`` cases and write images, labels, ``dataset.json`` and ``cohort.csv``.

    Args:
        out_dir: output folder (created).
        n_cases: number of cases, ids ``case_000`` ... .
        seed: cohort seed (>= 0).
        config: cohort arguments; default :class:`SyntheticCohortConfig`.
        verbose: print one progress line per case and the summary line.

    Returns:
        summary with ``n_cases``, ``n_pni_positive``, ``oracle_auc`` (NaN with one
        class), ``seconds`` and ``out_dir``.
    """
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}.")
    config = config or SyntheticCohortConfig()
    out = Path(out_dir)
    start = time.perf_counter()
    records, training = [], []
    for i in range(n_cases):
        case = generate_case(i, seed, config)
        case_id = case.record["case_id"]
        image_rel, label_rel = f"imagesTr/{case_id}.nii.gz", f"labelsTr/{case_id}.nii.gz"
        image = case.image if config.image_dtype == "float32" else np.rint(case.image).astype(np.int16)
        _write_bytes(out / image_rel, _nifti_gz_bytes(image, case.affine))
        _write_bytes(out / label_rel, _nifti_gz_bytes(case.label, case.affine))
        records.append(case.record)
        training.append({"image": image_rel, "label": label_rel, "pni": int(case.record["pni"])})
        if verbose:
            print(f"{case_id} written ({i + 1}/{n_cases})", flush=True)

    columns = list(records[0])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_csv_value(r[c]) for c in columns] for r in records])
    _write_bytes(out / "cohort.csv", text.getvalue().encode())

    dataset = {
        "name": "NeoNet synthetic HBP-MRI cholangiocarcinoma PNI cohort",
        "description": "Synthetic gadoxetic-acid hepatobiliary-phase MRI (T1 FS 3D GRE) of intrahepatic "
        "cholangiocarcinoma with liver/tumour labels and perineural invasion status; no patient data.",
        "reference": "neonet_ext.data.synthetic",
        "licence": "Apache-2.0",
        "release": GENERATOR_VERSION,
        "tensorImageSize": "3D",
        "modality": {"0": "HBP-MRI"},
        "labels": {str(k): v for k, v in sorted(LABEL_NAMES.items())},
        "numTraining": n_cases,
        "numTest": 0,
        "training": training,
        "test": [],
        "generator": {
            "module": __name__,
            "version": GENERATOR_VERSION,
            "seed": seed,
            "n_cases": n_cases,
            "config": dataclasses.asdict(config),
        },
    }
    _write_bytes(out / "dataset.json", (json.dumps(dataset, indent=2) + "\n").encode())

    pni = [r["pni"] for r in records]
    summary = {
        "n_cases": n_cases,
        "n_pni_positive": int(sum(pni)),
        "oracle_auc": oracle_auc(pni, [r["pni_risk"] for r in records]),
        "seconds": round(time.perf_counter() - start, 2),
        "out_dir": str(out),
    }
    if verbose:
        print(summary_line(summary), flush=True)
    return summary


def scoring_cohort_config(n_cases: int) -> SyntheticCohortConfig:
    """Settings of a cohort that scores a model: one permuted block of all ``n_cases``, so it holds
    exactly the configured PNI+ share, and int16 images, as scanners write them."""
    return SyntheticCohortConfig(block_size=n_cases, image_dtype="int16")


def write_cohort_once(
    out_dir: str | Path, n_cases: int, seed: int, config: SyntheticCohortConfig | None = None
) -> Path:
    """:func:`write_cohort` unless ``out_dir`` already holds this very cohort; returns its ``dataset.json``.

    ``dataset.json`` is written last, so a folder an interrupted run left without it is written
    again. A folder holding a cohort of another seed, size or configuration is refused.
    """
    config = config or SyntheticCohortConfig()
    dataset = Path(out_dir) / "dataset.json"
    if dataset.is_file():
        made = json.loads(dataset.read_text()).get("generator", {})
        wanted = {"seed": seed, "n_cases": n_cases, "config": json.loads(json.dumps(dataclasses.asdict(config)))}
        differ = sorted(k for k, v in wanted.items() if made.get(k) != v)
        if differ:
            raise ValueError(f"{out_dir} holds another synthetic cohort ({', '.join(differ)} differ): "
                             "delete it or choose another folder")
    else:
        print(summary_line(write_cohort(out_dir, n_cases, seed, config, verbose=False)), flush=True)
    return dataset


def summary_line(summary: dict[str, float | int | str]) -> str:
    """One line on a written cohort: cases, PNI+ count, oracle AUC, time, folder."""
    n, positive, auc = summary["n_cases"], summary["n_pni_positive"], summary["oracle_auc"]
    auc_text = f"{auc:.3f}" if auc == auc else "n/a (one class only)"
    return (
        f"synthetic cohort: {n} cases, {positive} PNI+ ({positive / n:.1%}), oracle AUC {auc_text}, "
        f"{summary['seconds']} s -> {summary['out_dir']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    defaults = SyntheticCohortConfig()
    parser = argparse.ArgumentParser(
        prog="python -m neonet_ext.data.synthetic", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--cases", type=int, default=128, help="number of cases (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--effect", type=float, default=defaults.effect, help="PNI signal strength (0 none, 2 strong)")
    parser.add_argument("--prevalence", type=float, default=defaults.prevalence, help="PNI+ fraction (default 44/128)")
    parser.add_argument("--block-size", type=int, default=defaults.block_size, help="PNI permuted block size")
    parser.add_argument("--full-size", action="store_true", help="scanner-like 320x260x80 matrix at ~1.2 mm")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), help="volume size in voxels")
    parser.add_argument("--inplane-spacing", type=float, nargs=2, metavar=("LO", "HI"), help="in-plane spacing, mm")
    parser.add_argument("--slice-spacing", type=float, nargs=2, metavar=("LO", "HI"), help="slice spacing range, mm")
    parser.add_argument("--snr", type=float, nargs=2, metavar=("LO", "HI"), help="liver SNR range")
    parser.add_argument("--int16", action="store_true", help="write images as int16, as many scanners do")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    args = parser.parse_args(argv)

    overrides = {"effect": args.effect, "prevalence": args.prevalence, "block_size": args.block_size}
    if args.int16:
        overrides["image_dtype"] = "int16"
    for name, value in (
        ("shape", args.shape),
        ("inplane_spacing_mm", args.inplane_spacing),
        ("slice_spacing_mm", args.slice_spacing),
        ("snr", args.snr),
    ):
        if value is not None:
            overrides[name] = tuple(value)
    if args.cases < 1 or args.seed < 0:
        parser.error("--cases must be >= 1 and --seed >= 0.")
    try:
        config = SyntheticCohortConfig.full_size(**overrides) if args.full_size else SyntheticCohortConfig(**overrides)
    except ValueError as e:
        parser.error(str(e))
    summary = write_cohort(args.out, args.cases, args.seed, config, verbose=not args.quiet)
    if args.quiet:
        print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
