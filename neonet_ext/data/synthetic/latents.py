"""The latent PNI model of the synthetic cohort and its reference scorers.

Everything about a case that is drawn before any voxel is made lives here: the PNI status
(exact per permuted block), the latent ``pni_risk`` and the imaging signs it drives
(:class:`CaseLatents`, :func:`draw_latents`, :func:`sample_cohort_latents`). Two reference
scores say what a model could reach: the oracle, the ROC AUC of the latent risk itself
(``neonet_ext.roc.roc_auc(pni, pni_risk)``), and :func:`sign_reader_auc` (a reader measuring every
sign of :data:`IMAGING_SIGNS` exactly).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from neonet_ext.data.synthetic.config import STREAM_BLOCK, STREAM_LATENTS, SyntheticCohortConfig
from neonet_ext.roc import roc_auc

__all__ = [
    "IMAGING_SIGNS",
    "CaseLatents",
    "draw_latents",
    "sample_cohort_latents",
    "sign_matrix",
    "sign_reader",
    "sign_reader_auc",
]

#: Class separation of ``pni_risk`` in within-class standard deviations at effect 1.
RISK_SEPARATION = 1.6


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


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@lru_cache(maxsize=32)
def _block_positives(seed: int, block: int, block_size: int, n_positive: int) -> np.ndarray:
    order = np.random.default_rng([seed, block, STREAM_BLOCK]).permutation(block_size)
    positive = order < n_positive
    positive.flags.writeable = False  # shared by the cache
    return positive


def _pni_status(index: int, seed: int, config: SyntheticCohortConfig) -> int:
    block, position = divmod(index, config.block_size)
    n_positive = math.floor(config.prevalence * config.block_size + 0.5)
    return int(_block_positives(seed, block, config.block_size, n_positive)[position])


def draw_latents(index: int, seed: int, config: SyntheticCohortConfig) -> CaseLatents:
    """The latents of case ``index``, drawn from the stream ``[seed, index, STREAM_LATENTS]``.

    Each imaging sign is ``rho * risk_z + sqrt(1 - rho**2) * noise`` (see ``sign`` below) with
    its own noise, pushed through a link that gives it its range; the draws' order fixes the
    cohort, so a new latent must be drawn after all of these.
    """
    rng = np.random.default_rng([seed, index, STREAM_LATENTS])
    prevalence = config.prevalence
    pni = _pni_status(index, seed, config)
    delta = config.effect * RISK_SEPARATION
    risk = delta * (pni - prevalence) + rng.standard_normal()
    risk_z = risk / math.sqrt(1.0 + delta**2 * prevalence * (1.0 - prevalence))

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
    order_sign = sign(0.5)
    branch_order = 1 if order_sign > 0.6 else 2 if order_sign > -0.3 else 3
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
        latents :func:`~neonet_ext.data.synthetic.generate_case` uses for the same (index, seed, config).
    """
    config = config or SyntheticCohortConfig()
    rows = [dataclasses.asdict(draw_latents(i, seed, config)) for i in range(start, start + n_cases)]
    return pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(CaseLatents)])


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


def sign_matrix(latents: pd.DataFrame) -> np.ndarray:
    """The :data:`IMAGING_SIGNS` of each row as the sign reader reads them: (cases, 8), log diameter first."""
    x = latents[list(IMAGING_SIGNS)].to_numpy(dtype=float, copy=True)
    x[:, 0] = np.log(x[:, 0])
    return x


def sign_reader(train: pd.DataFrame):
    """The sign reader fit on ``train``: a standardised logistic regression of ``pni`` on :func:`sign_matrix`
    (a scikit-learn pipeline; ``predict_proba(sign_matrix(test))[:, 1]`` scores other cases)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression()).fit(sign_matrix(train), train["pni"].astype(int))


def sign_reader_auc(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """ROC AUC on ``test`` of the :func:`sign_reader` fit on ``train``'s exact imaging signs.

    A reference between chance and the oracle (the AUC of ``pni_risk``): a reader that measured every sign of
    :data:`IMAGING_SIGNS` without error, and learnt how to weigh them from the training
    cohort, ranks the test cases this well. Each sign carries only part of ``pni_risk``, so
    even with many training cases it stays below the oracle. Both frames hold the fields of
    :class:`CaseLatents` (``cohort.csv`` or :func:`sample_cohort_latents`); NaN when either
    has one class only.
    """
    y_train, y_test = train["pni"].astype(int), test["pni"].astype(int)  # cohort.csv read as text works too
    if y_train.nunique() < 2 or y_test.nunique() < 2:
        return float("nan")
    return roc_auc(y_test, sign_reader(train).predict_proba(sign_matrix(test))[:, 1])

