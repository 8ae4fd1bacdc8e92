"""Making and writing cases of the synthetic cohort.

:func:`generate_case` runs the painter (:class:`~neonet_ext.data.synthetic.anatomy.CaseBuilder`)
on a case's latents and reads the label map off it; :func:`write_cohort` writes a cohort in the
Medical Segmentation Decathlon layout (``imagesTr``, ``labelsTr``, ``dataset.json``) with
``cohort.csv``, every file through a temporary file and ``os.replace``, gzipped without a time
stamp or file name so that the same arguments give the same bytes.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from neonet_ext.data.synthetic.anatomy import LIVER_TISSUES, TISSUE_ID, TISSUE_INTENSITY, CaseBuilder
from neonet_ext.data.synthetic.config import GENERATOR_VERSION, STREAM_ANATOMY, STREAM_NOISE, SyntheticCohortConfig
from neonet_ext.data.synthetic.latents import draw_latents
from neonet_ext.labels import BACKGROUND, LABEL_NAMES, LIVER, TUMOUR
from neonet_ext.roc import roc_auc
from neonet_ext.utils.io import atomic_write

__all__ = [
    "GENERATOR_MODULE",
    "SyntheticCase",
    "generate_case",
    "scoring_cohort_config",
    "summary_line",
    "write_cohort",
    "write_cohort_once",
]

#: ``generator.module`` of the ``dataset.json`` that :func:`write_cohort` writes. Generator 1.0.0
#: was one module that wrote its own ``__name__`` there: this name, or ``"__main__"`` when run as
#: ``python -m neonet_ext.data.synthetic`` (see the package's ``__main__``), kept byte for byte.
GENERATOR_MODULE = "neonet_ext.data.synthetic"


@dataclass
class SyntheticCase:
    """One generated case.

    Attributes:
        image: float32 (X, Y, Z) HBP image, arbitrary units (liver ~ ``intensity_scale``).
        label: uint8 (X, Y, Z) label map with values BACKGROUND, LIVER, TUMOUR.
        affine: float64 (4, 4) RAS+ voxel-to-world matrix, diagonal spacing.
        record: the case's row of ``cohort.csv`` (latents and measurements).
        tissues: with ``return_tissues=True``, a bool (X, Y, Z) mask per tissue
            name of :data:`~neonet_ext.data.synthetic.anatomy.TISSUE_INTENSITY` present in the case (the tissue that
            fills most of each voxel); otherwise None.

    ``record`` holds the :class:`~neonet_ext.data.synthetic.latents.CaseLatents` fields and the measurements
    ``tumour_diameter_mm`` (primary tumour as placed), ``extension_length_mm``
    (tracks beyond the tumour radius), ``hilar_distance_mm`` (tumour centre to
    hilum), ``tumour_volume_ml`` and ``liver_volume_ml`` (liver plus tumour labels).
    """

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    record: dict[str, int | float | str]
    tissues: dict[str, np.ndarray] | None = None


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
    latents = draw_latents(index, seed, config)
    builder = CaseBuilder(latents, config, np.random.default_rng([seed, index, STREAM_ANATOMY]))
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
    image = builder.acquire(np.random.default_rng([seed, index, STREAM_NOISE]))

    lut = np.full(256, BACKGROUND, np.uint8)
    lut[[TISSUE_ID[t] for t in LIVER_TISSUES]] = LIVER
    lut[TISSUE_ID["tumour"]] = TUMOUR
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
        present = np.flatnonzero(np.bincount(builder.owner.ravel(), minlength=len(TISSUE_ID)))
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
    """Write ``data`` to ``path`` atomically (a reader sees the old file or the new one)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _csv_value(value: float | str) -> str:
    """A ``cohort.csv`` cell: floats rounded to 6 decimals, in their shortest repr."""
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
    return _write_cohort(out_dir, n_cases, seed, config, verbose, GENERATOR_MODULE)


def _write_cohort(
    out_dir: str | Path,
    n_cases: int,
    seed: int,
    config: SyntheticCohortConfig | None,
    verbose: bool,
    module_name: str,
) -> dict[str, float | int | str]:
    """:func:`write_cohort`, recording ``module_name`` as ``generator.module`` in ``dataset.json``."""
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
            "module": module_name,
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
        "oracle_auc": roc_auc(pni, [r["pni_risk"] for r in records]),
        "seconds": round(time.perf_counter() - start, 2),
        "out_dir": str(out),
    }
    if verbose:
        print(summary_line(summary), flush=True)
    return summary


#: Liver SNR of a noise-free twin cohort: the noise is then far below the int16 rounding.
NOISE_FREE_SNR = 1e6


def scoring_cohort_config(n_cases: int, noise_free: bool = False) -> SyntheticCohortConfig:
    """Settings of a cohort that scores a model: one permuted block of all ``n_cases``, so it holds
    exactly the configured PNI+ share, and int16 images, as scanners write them.

    ``noise_free`` gives the cohort's noise-free twin: the same phantoms, label maps and records
    (the SNR is drawn from its own range, so every other draw is unchanged) without their noise,
    to tell what noise costs a model from what the phantoms' partial volume, halo and texture cost.
    """
    snr = (NOISE_FREE_SNR, NOISE_FREE_SNR) if noise_free else SyntheticCohortConfig.snr
    return SyntheticCohortConfig(block_size=n_cases, image_dtype="int16", snr=snr)


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
    auc_text = "n/a (one class only)" if math.isnan(auc) else f"{auc:.3f}"
    return (
        f"synthetic cohort: {n} cases, {positive} PNI+ ({positive / n:.1%}), oracle AUC {auc_text}, "
        f"{summary['seconds']} s -> {summary['out_dir']}"
    )
