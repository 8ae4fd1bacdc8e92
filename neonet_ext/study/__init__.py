"""The study runner: the seed's comparison (models x synthetic ratios) and ablation tables on any cohort.

``python -m neonet_ext.study --profile quick --out OUT`` (see :mod:`neonet_ext.study.runner` for the
protocol and :mod:`neonet_ext.study.profiles` for the profiles).
"""

from neonet_ext.study.grid import ABLATIONS, BASELINES, PATTENNET, RATIOS, Cell, plan_cells
from neonet_ext.study.profiles import PROFILE_NAMES, StudyProfile, load_profile
from neonet_ext.study.runner import PATCH_SOURCES, Study

__all__ = [
    "ABLATIONS",
    "BASELINES",
    "PATCH_SOURCES",
    "PATTENNET",
    "PROFILE_NAMES",
    "RATIOS",
    "Cell",
    "Study",
    "StudyProfile",
    "load_profile",
    "plan_cells",
]
