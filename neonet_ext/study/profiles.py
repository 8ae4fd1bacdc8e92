"""Study profiles: the sizes and budgets of one study run, as JSON files of bundle overrides.

A profile fixes everything that is not the protocol: the synthetic cohort made when no
``--cohort`` is given, the patch size the classifiers and NeoGen see, the network widths,
and the training budgets. Every cell of the grid gets the same budget and seeds. The
built-in profiles are ``tiny`` (the test suite), ``quick`` (the whole grid on 2 CPU cores
within an hour) and ``paper`` (the seed's cohort size and the bundles' full-size settings,
for a GPU); a path to a JSON file of the same form works too. A profile may name another
as its ``base`` and give only what differs: its keys replace the base's, and a dictionary
of stage overrides (``classifier``, ``neogen``, ...) is merged into the base's one level
deep. ``paper_smoke`` is the ``paper`` profile so shrunk that a CPU runs it in minutes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from neonet_ext.study.grid import ABLATIONS, BASELINES, PATTENNET, RATIOS

__all__ = ["PROFILE_NAMES", "StudyProfile", "load_profile"]

_PROFILE_DIR = Path(__file__).parent / "profiles"
PROFILE_NAMES: tuple[str, ...] = tuple(sorted(p.stem for p in _PROFILE_DIR.glob("*.json")))


@dataclasses.dataclass(frozen=True)
class StudyProfile:
    """The settings of a study run (see the module docstring).

    Attributes:
        name: the profile's name.
        description: one line on what it is for.
        cohort: arguments of the synthetic cohort made when no cohort is given
            (``cases``, ``seed``, ``block_size``, ``effect``).
        patch_size: spatial size (X, Y, Z) the classifiers and NeoGen see. TLCR patches of
            another size are resampled to it (the same field of view at a coarser grid).
        folds: cross-validation folds.
        seed: the seed of the folds and of every training run.
        workers: bundle runs at a time on one machine (Ray tasks; each gets ``threads`` CPUs and torch threads).
        threads: CPUs and torch threads per run; 0 shares the machine's cores among the workers.
        models: table 1's models (``pattennet`` and baseline names).
        ratios: table 1's synthetic ratios.
        ablations: table 2's PattenNet variants.
        ablation_ratio: the ratio table 2 is trained at (R + S).
        autoencoder: overrides of NeoGen's (and so PattenNet's) ``autoencoder_def``.
        diffusion_unet: overrides of NeoGen's ``diffusion_unet_def`` (the ControlNet follows it).
        neogen: overrides per NeoGen run: ``common``, ``autoencoder``, ``diffusion``,
            ``controlnet``, ``generation``.
        classifier: overrides of every NeoCls training run (budget, batch, learning rate).
        pattennet: overrides of PattenNet's runs only (e.g. ``network_def#features``).
        baseline_kwargs: arguments of ``get_classifier`` for every baseline (e.g. ``width``).
        model_kwargs: more arguments for single baselines, by name.
        neoseg: overrides of NeoSeg's inference when it cuts the patches.
        bootstrap_resamples: resamples of the intervals and tests.
    """

    name: str
    description: str
    cohort: Mapping[str, Any]
    patch_size: Sequence[int]
    folds: int = 5
    seed: int = 0
    workers: int = 1
    threads: int = 0
    models: Sequence[str] = (*BASELINES, PATTENNET)
    ratios: Sequence[float] = RATIOS
    ablations: Sequence[str] = ABLATIONS
    ablation_ratio: float = 1.0
    autoencoder: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    diffusion_unet: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    neogen: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    classifier: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    pattennet: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    baseline_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    model_kwargs: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    neoseg: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    bootstrap_resamples: int = 2000

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m != PATTENNET and m not in BASELINES]
        if unknown:
            raise ValueError(f"profile {self.name}: unknown models {unknown}; valid: {', '.join((*BASELINES, PATTENNET))}")
        unknown = [a for a in self.ablations if a not in ABLATIONS]
        if unknown:
            raise ValueError(f"profile {self.name}: unknown ablations {unknown}; valid: {', '.join(ABLATIONS)}")
        if self.folds < 2:
            raise ValueError(f"profile {self.name}: cross-validation needs at least 2 folds, got {self.folds}")
        if any(not 0 <= r <= 1 for r in self.ratios) or not 0 <= self.ablation_ratio <= 1:
            raise ValueError(f"profile {self.name}: synthetic ratios must lie in [0, 1]")
        if len(self.patch_size) != 3:
            raise ValueError(f"profile {self.name}: patch_size must be (X, Y, Z), got {self.patch_size}")

    def with_models(self, models: Sequence[str]) -> StudyProfile:
        """The same profile restricted to ``models`` (a partial grid)."""
        return dataclasses.replace(self, models=tuple(models))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def load_profile(name_or_path: str | Path) -> StudyProfile:
    """A built-in profile by name (``tiny``, ``quick``, ``paper``) or a profile JSON file.

    Raises:
        FileNotFoundError: neither a built-in name nor an existing file.
        ValueError: the file is not a valid profile (the message names it).
    """
    path = _PROFILE_DIR / f"{name_or_path}.json"
    if not path.is_file():
        path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"no study profile '{name_or_path}': built-in ones are {', '.join(PROFILE_NAMES)}, "
                                "or give the path of a profile JSON file")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"study profile {path} is not valid JSON: {e}") from e
    fields = {f.name for f in dataclasses.fields(StudyProfile)}
    unknown = sorted(set(content) - fields - {"comment", "base"})
    if unknown:
        raise ValueError(f"study profile {path}: unknown keys {unknown}")
    content.pop("comment", None)
    name = content.pop("name", path.stem)
    if "base" in content:
        base = load_profile(content.pop("base")).to_dict()
        content = {**base, **{k: {**base[k], **v} if isinstance(base.get(k), dict) and isinstance(v, dict) else v
                              for k, v in content.items()}}
    content["name"] = name
    for key in ("models", "ratios", "ablations", "patch_size"):
        if key in content:
            content[key] = tuple(content[key])
    try:
        return StudyProfile(**content)
    except TypeError as e:
        raise ValueError(f"study profile {path}: {e}") from e
