"""The study's grid: models x synthetic ratios x folds (table 1) and PattenNet's ablations (table 2),
with the seed study's published figures to compare against."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

__all__ = [
    "ABLATIONS",
    "BASELINES",
    "PATTENNET",
    "RATIOS",
    "SEED_ABLATION_AUC",
    "SEED_AUC",
    "SEED_MEAN_AUC",
    "Cell",
    "plan_cells",
    "ratio_label",
]

PATTENNET = "pattennet"
#: Table 1's baselines, in the seed's order (names of :func:`neonet_ext.networks.get_classifier`).
BASELINES: tuple[str, ...] = (
    "resnet50", "resnet101", "resnet152", "resnet200",
    "densenet121", "densenet169", "densenet201", "densenet264",
    "efficientnet-b0", "efficientnet-b1", "efficientnet-b2", "efficientnet-b3",
    "swin-transformer",
)
#: Synthetic ratios of table 1: 0 is real data only (R); r adds r x (n_neg - n_pos) synthetic PNI+ patches.
RATIOS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Table 2's variants (override files under bundles/neocls/configs/ablations), besides the full PattenNet.
ABLATIONS: tuple[str, ...] = ("channel_only", "spatial_only", "blocks_0", "blocks_1", "blocks_3")

# The seed's published 5-fold mean AUCs on its private cohort (128 patients, 44 PNI+). Only the
# figures the seed states are here; the other models' cells are not published in our source.
SEED_AUC: dict[str, dict[float, float]] = {PATTENNET: {0.0: 0.7001, 0.25: 0.7577, 0.5: 0.7670, 0.75: 0.7812, 1.0: 0.7903}}
SEED_MEAN_AUC: dict[float, float] = {0.0: 0.6760, 1.0: 0.7417}
SEED_ABLATION_AUC: dict[str, float] = {
    "full": 0.7903, "channel_only": 0.7276, "spatial_only": 0.7410, "blocks_0": 0.7001, "blocks_1": 0.7589, "blocks_3": 0.7713,
}


def ratio_label(ratio: float) -> str:
    """``R`` for real data only, else the balance in percent (``R+S 50%``)."""
    return "R" if ratio == 0 else f"R+S {ratio * 100:g}%"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run of the grid: a model (or PattenNet ablation ``variant``) at a ratio on a fold."""

    fold: int
    model: str
    ratio: float
    variant: str = "full"

    @property
    def name(self) -> str:
        """A unique, file-system-safe name, e.g. ``fold2-resnet50-r0.50`` or ``fold0-pattennet-blocks_1-r1.00``."""
        variant = "" if self.variant == "full" else f"-{self.variant}"
        return f"fold{self.fold}-{self.model}{variant}-r{self.ratio:.2f}"



def plan_cells(
    n_folds: int, models: Sequence[str], ratios: Sequence[float], ablations: Sequence[str], ablation_ratio: float
) -> list[Cell]:
    """Every cell of both tables, fold by fold; the full PattenNet at ``ablation_ratio`` is shared by both."""
    cells = []
    for fold in range(n_folds):
        cells += [Cell(fold, model, float(ratio)) for model in models for ratio in ratios]
        if ablations:
            cells += [Cell(fold, PATTENNET, float(ablation_ratio), variant) for variant in ("full", *ablations)]
    return list(dict.fromkeys(cells))  # the full PattenNet cell of table 1 serves table 2 too
