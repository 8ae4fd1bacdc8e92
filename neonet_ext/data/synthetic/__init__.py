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

Modules
-------
* :mod:`.config`: :class:`SyntheticCohortConfig`, :data:`GENERATOR_VERSION` and the random streams.
* :mod:`.latents`: the latent PNI model (:class:`CaseLatents`, :func:`sample_cohort_latents`) and
  the reference scorer :func:`sign_reader_auc` (:data:`IMAGING_SIGNS`).
* :mod:`.geometry`: the voxel grid, signed distances, tubes, vessel trees and smooth noise.
* :mod:`.anatomy`: the painter (:class:`~.anatomy.CaseBuilder`), the tissue signals
  (:data:`TISSUE_INTENSITY`) and the anatomical sizes it paints with.
* :mod:`.cohort`: :func:`generate_case`, :func:`write_cohort` and :func:`write_cohort_once`.
* ``__main__``: the command line (:func:`main`).
"""

from __future__ import annotations

from neonet_ext.data.synthetic.anatomy import TISSUE_INTENSITY
from neonet_ext.data.synthetic.cohort import (
    NOISE_FREE_SNR,
    SyntheticCase,
    generate_case,
    scoring_cohort_config,
    summary_line,
    write_cohort,
    write_cohort_once,
)
from neonet_ext.data.synthetic.config import GENERATOR_VERSION, SyntheticCohortConfig
from neonet_ext.data.synthetic.latents import (
    IMAGING_SIGNS,
    CaseLatents,
    sample_cohort_latents,
    sign_matrix,
    sign_reader,
    sign_reader_auc,
)

__all__ = [
    "GENERATOR_VERSION",
    "IMAGING_SIGNS",
    "NOISE_FREE_SNR",
    "TISSUE_INTENSITY",
    "CaseLatents",
    "SyntheticCase",
    "SyntheticCohortConfig",
    "generate_case",
    "main",
    "sample_cohort_latents",
    "scoring_cohort_config",
    "sign_matrix",
    "sign_reader",
    "sign_reader_auc",
    "summary_line",
    "write_cohort",
    "write_cohort_once",
]


def __getattr__(name: str):
    # The command line lives in __main__.py; importing it here at once would make
    # `python -m neonet_ext.data.synthetic` find it already imported (runpy warns about that).
    if name == "main":
        from neonet_ext.data.synthetic.__main__ import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
