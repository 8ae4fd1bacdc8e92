"""PNG pages of cases, their labels, TLCR patches and attention maps, for a person to look at."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neonet_ext.labels import LIVER, TUMOUR  # noqa: E402
from neonet_ext.utils.io import atomic_path  # noqa: E402

__all__ = ["save_case_report", "save_learning_curve", "save_patch_grid"]


def _axial(volume: np.ndarray, z: int) -> np.ndarray:
    # radiological convention: patient's right on the viewer's left, anterior up
    return volume[:, :, z].T[::-1, ::-1]


def _coronal(volume: np.ndarray, y: int) -> np.ndarray:
    return volume[:, y, :].T[::-1, ::-1]


def _window(image: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(image, [1, 99.5])
    return float(lo), float(hi)


def _show(ax, picture, label_slice, aspect, vmin, vmax) -> None:
    ax.imshow(picture, cmap="gray", vmin=vmin, vmax=vmax, aspect=aspect, interpolation="nearest")
    if label_slice is not None:
        for value, color in ((LIVER, "#37c871"), (TUMOUR, "#ff3b3b")):
            mask = (label_slice >= value) if value == LIVER else (label_slice == value)
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors=color, linewidths=0.7)
    ax.set_xticks([])
    ax.set_yticks([])


def save_patch_grid(
    rows: Sequence[tuple[str, Sequence[np.ndarray], Sequence[np.ndarray]]],
    path: str | os.PathLike,
    spacing: Sequence[float] = (2.0, 2.0, 3.0),
    dpi: int = 110,
) -> None:
    """Write a PNG grid of TLCR crops: one row per group (e.g. real, then generated).

    Each row is ``(title, crops, masks)`` with crops (X, Y, Z) in [0, 1] and masks
    (2, X, Y, Z) (liver or tumour; tumour). A tile is the axial slice through the tumour
    centre with the liver-or-tumour contour green and the tumour contour red.
    """
    n_cols = max(len(crops) for _, crops, _ in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.3 * n_cols, 2.5 * len(rows)), squeeze=False)
    sx, sy = float(spacing[0]), float(spacing[1])
    for (title, crops, masks), ax_row in zip(rows, axes):
        for c, ax in enumerate(ax_row):
            if c >= len(crops):
                ax.axis("off")
                continue
            tissue, tumour = (np.asarray(m) > 0 for m in masks[c])
            label = np.where(tumour, TUMOUR, np.where(tissue, LIVER, 0))
            points = np.argwhere(tumour)
            z = int(points[:, 2].mean().round()) if len(points) else label.shape[2] // 2
            _show(ax, _axial(np.asarray(crops[c]), z), _axial(label, z), sy / sx, 0.0, 1.0)
            ax.set_title(f"{title} #{c + 1}", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)


def save_case_report(
    image: np.ndarray,
    label: np.ndarray,
    spacing: Sequence[float],
    patch: np.ndarray,
    attention: np.ndarray | None,
    probability: float | None,
    title: str,
    path: str | os.PathLike,
    dpi: int = 110,
    attention_shares: tuple[float | None, float | None] = (None, None),
    refusal: str | None = None,
) -> None:
    """One page per case that a person can read without a viewer.

    Top row: axial and coronal slices of the volume through the tumour centre with the
    segmentation (liver green, tumour red). Bottom row: the two TLCR channels' slices through
    the patch centre, and the attention map over channel 0. The title gives the PNI
    probability.

    Args:
        image, label: (X, Y, Z) volume and label map on one grid, RAS.
        spacing: voxel size in mm (3,).
        patch: (2, cx, cy, cz) TLCR patch.
        attention: (cx, cy, cz) attention map on the patch grid, any range (shown normalised);
            None leaves its panel empty.
        probability: PNI probability in [0, 1]; None when no tumour was found (said on the page).
        title: the case name.
        attention_shares: the share of the attention mass within the tumour and its 10 mm rim, and the
            share of the patch that region takes (:func:`neonet_ext.metrics.attention_share`); written
            under the map when given.
        refusal: why the case got no probability (the input gate's reasons), said on the page.
    """
    fig, axes = plt.subplots(2, 3, figsize=(10.5, 6.6))
    tumour = np.argwhere(label == TUMOUR)
    centre = tumour.mean(0).round().astype(int) if len(tumour) else np.array(label.shape) // 2
    sx, sy, sz = (float(s) for s in spacing)
    vmin, vmax = _window(image)
    _show(axes[0, 0], _axial(image, centre[2]), _axial(label, centre[2]), sy / sx, vmin, vmax)
    axes[0, 0].set_title(f"axial z={centre[2]}", fontsize=8)
    _show(axes[0, 1], _coronal(image, centre[1]), _coronal(label, centre[1]), sz / sx, vmin, vmax)
    axes[0, 1].set_title(f"coronal y={centre[1]}", fontsize=8)
    axes[0, 2].axis("off")
    if probability is not None:
        verdict, size = f"PNI probability\n{probability:.3f}", 20
    elif refusal:
        verdict, size = "no PNI prediction:\n" + "\n".join(textwrap.wrap(refusal, 34)), 10
    else:
        verdict, size = "no tumour found:\nno PNI prediction", 14
    axes[0, 2].text(0.0, 0.6, verdict, fontsize=size, va="center")
    axes[0, 2].text(0.0, 0.15, "research use only,\nnot for clinical decisions", fontsize=8, color="0.4")
    z = patch.shape[-1] // 2
    for c, name in enumerate(("TLCR ch0: liver+tumour", "TLCR ch1: tumour")):
        _show(axes[1, c], _axial(patch[c], z), None, sy / sx, vmin, vmax)
        axes[1, c].set_title(name, fontsize=8)
    if attention is None:
        axes[1, 2].axis("off")
    else:
        span = float(attention.max() - attention.min())
        heat = (attention - attention.min()) / span if span > 0 else np.zeros_like(attention)
        _show(axes[1, 2], _axial(patch[0], z), None, sy / sx, vmin, vmax)
        axes[1, 2].imshow(
            _axial(heat, z), cmap="jet", alpha=0.4, vmin=0, vmax=1, aspect=sy / sx, interpolation="bilinear"
        )
        mass, region = attention_shares
        where = "" if mass is None or region is None else (
            f"\n{100 * mass:.0f}% of it in tumour + 10 mm ({100 * region:.0f}% of the patch)")
        axes[1, 2].set_title(f"attention over ch0{where}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)


def save_learning_curve(
    patients: Sequence[int],
    auc: Sequence[float],
    ci95: Sequence[tuple[float, float]],
    reference: Sequence[float],
    path: str | os.PathLike,
    model_name: str = "PattenNet",
    reference_name: str = "sign reader",
    dpi: int = 100,
) -> None:
    """
    Held-out AUC against the number of training patients, with the 95% CI, beside a reference fit on the same
    patients (e.g. the sign reader) and 0.9 x that reference; written atomically as a PNG.

    Args:
        patients: training patients of each run (x, log scale).
        auc: the model's held-out AUC of each run.
        ci95: (low, high) of each AUC.
        reference: the reference's held-out AUC of each run.
    """
    order = np.argsort(patients)
    x, y = np.asarray(patients)[order], np.asarray(auc)[order]
    low, high = (np.asarray([ci95[i][k] for i in order]) for k in (0, 1))
    ref = np.asarray(reference)[order]
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    ax.errorbar(x, y, yerr=[y - low, high - y], marker="o", capsize=3, label=f"{model_name} (95% CI)")
    ax.plot(x, ref, marker="s", label=reference_name)
    ax.plot(x, 0.9 * ref, linestyle=":", color="grey", label=f"0.9 x {reference_name}")
    ax.set_xscale("log")
    ax.set_xticks(x, [str(int(n)) for n in x])
    ax.minorticks_off()
    ax.set_xlabel("training patients")
    ax.set_ylabel("held-out AUC")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
