"""NeoSeg -> TLCR -> NeoCls on one case, built from the NeoCls bundle's own inference config.

Nothing of the chain is re-implemented here: the NeoCls ``configs/inference.json`` is parsed
with ``monai.bundle.ConfigParser`` (it loads the NeoSeg bundle's own config and weights through
``neonet_ext.utils.bundle.BundleStage``), and its ``runner`` (a ``neonet_ext.engines.CaseRunner``)
provides the pre-processing, the sliding-window inference, the post-processing (TLCR, PattenNet,
the per-case files, the report page) and the per-case values. The only difference from
``monai.bundle run`` is where the volume comes from: for DICOM the SDK's series-to-volume
operator has already read it, so the config's first transform (``LoadScand``) is skipped and
the volume enters as the MetaTensor that ``LoadScand`` would have made.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from neonet_ext.data.discovery import describe_case_error
from neonet_ext.labels import LABEL_NAMES, LIVER, TUMOUR
from neonet_ext.transforms import LoadScand

__all__ = ["BUNDLES_ENV", "CaseResult", "NeoNetChain", "find_bundles_dir"]

#: Environment variable naming the folder that holds the ``neoseg`` and ``neocls`` bundles.
BUNDLES_ENV = "NEONET_BUNDLES_DIR"
_BUNDLES = ("neoseg", "neocls")
# apps/deploy/neonet_app/neonet_operators/chain.py -> the repository's bundles/
_REPO_BUNDLES = Path(__file__).resolve().parents[4] / "bundles"


def _holds_bundles(folder: Path) -> bool:
    return all((folder / name / "configs" / "inference.json").is_file() for name in _BUNDLES)


def find_bundles_dir(model_path: str | os.PathLike | None = None) -> Path:
    """The folder holding ``neoseg/`` and ``neocls/``: ``$NEONET_BUNDLES_DIR`` when set, else the
    SDK's model path (``-m`` / ``HOLOSCAN_MODEL_PATH``, where a MAP keeps its models) when it holds
    both bundles, else the repository's ``bundles/``.

    Raises:
        FileNotFoundError: ``$NEONET_BUNDLES_DIR`` is set but lacks a bundle, or no candidate holds both.
    """
    explicit = os.environ.get(BUNDLES_ENV)
    if explicit:
        folder = Path(explicit).expanduser().resolve()
        if not _holds_bundles(folder):
            raise FileNotFoundError(
                f"{BUNDLES_ENV}={explicit}: expected {folder}/neoseg/configs/inference.json and "
                f"{folder}/neocls/configs/inference.json."
            )
        return folder
    candidates = ([Path(model_path).expanduser().resolve()] if model_path else []) + [_REPO_BUNDLES]
    for folder in candidates:
        if _holds_bundles(folder):
            return folder
    raise FileNotFoundError(
        "NeoSeg and NeoCls bundles not found: looked for neoseg/ and neocls/ (each with configs/inference.json) in "
        + ", ".join(str(c) for c in candidates)
        + f"; set {BUNDLES_ENV} or pass the folder with -m."
    )


def _bundle_info(root: Path) -> dict[str, str]:
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    return {"name": str(meta.get("name", root.name)), "version": str(meta.get("version", "")), "path": str(root)}


@dataclass
class CaseResult:
    """What the chain gives for one case.

    Attributes:
        case: the case name (the input's name; it names the per-case folder).
        label: (1, X, Y, Z) uint8 label map on the input grid (0 background, 1 liver, 2 tumour).
        pni_probability: in [0, 1], or None when no tumour was found or the case was refused.
        tumour_found: whether NeoSeg found a tumour.
        tumour_volume_ml: the tumour volume from the label map on the input grid.
        refused: why the input gate gave no probability ("" when it did not refuse).
        measurements: what the gate and the report measured (the NeoCls table's other columns:
            liver volume, tumour surroundings, latent distance, attention shares, the series).
        files: the per-case files the bundles wrote (label map, TLCR patch, attention, report page),
            relative to the output folder.
    """

    case: str
    label: torch.Tensor
    pni_probability: float | None
    tumour_found: bool
    tumour_volume_ml: float | None
    refused: str = ""
    measurements: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


class NeoNetChain:
    """The NeoCls bundle's inference chain, one case at a time.

    Args:
        bundles_dir: folder holding the ``neoseg`` and ``neocls`` bundles.
        output_dir: where the bundles' per-case files go (``output_dir/<case>/``).
        overrides: further config ids and values for the NeoCls config (e.g. ``{"device": "cpu"}``).

    Raises:
        FileNotFoundError: a bundle, config or weights file is missing (the message says where).
        RuntimeError: weights that do not fit the network of a config.
    """

    #: per-case files of the NeoCls chain, by the CaseRunner key that holds their path
    #: case flags that are fields of :class:`CaseResult` of their own; the others go to its measurements
    RESULT_FLAGS = ("pni_probability", "tumour_found", "tumour_volume_ml", "refused")
    SAVED_KEYS = {"pred": "label_map", "patch": "tlcr_patch", "patch_mask": "tlcr_mask",
                  "patch_image": "tlcr_image", "attention": "attention", "report": "report_png"}

    def __init__(
        self, bundles_dir: str | os.PathLike, output_dir: str | os.PathLike, overrides: Mapping[str, Any] | None = None
    ) -> None:
        from monai.bundle import ConfigParser

        bundles_dir = Path(bundles_dir).resolve()
        self.neocls_root, self.neoseg_root = bundles_dir / "neocls", bundles_dir / "neoseg"
        config = self.neocls_root / "configs" / "inference.json"
        if not config.is_file():
            raise FileNotFoundError(f"NeoCls bundle not found: {config} does not exist.")
        self.output_dir = Path(output_dir).resolve()
        parser = ConfigParser()
        parser.read_config(str(config))
        parser["bundle_root"] = str(self.neocls_root)
        parser["neoseg_bundle_root"] = str(self.neoseg_root)
        parser["output_dir"] = str(self.output_dir)
        parser["datalist"] = []  # cases come from the application, one per run
        for key, value in (overrides or {}).items():
            parser[key] = value
        parser.get_parsed_content("initialize")  # as `monai.bundle run` does: set_determinism(seed=0)
        self.runner = parser.get_parsed_content("runner")
        transforms = list(self.runner.preprocessing.transforms)
        if not transforms or not isinstance(transforms[0], LoadScand):
            raise RuntimeError(
                f"NeoSeg pre-processing in {self.neoseg_root}/configs/inference.json does not start with LoadScand; "
                "the application feeds DICOM volumes in place of that transform."
            )
        # the config's own transform objects after LoadScand: the volume enters as LoadScand would give it
        self._after_loading = Compose(transforms[1:])
        self.device = self.runner.device
        self.bundles = {"neoseg": _bundle_info(self.neoseg_root), "neocls": _bundle_info(self.neocls_root)}

    def _run(self, item: dict, preprocessing) -> CaseResult:
        runner = self.runner
        try:
            data = runner.process(item, preprocessing)
        except Exception as exc:  # name the input and the innermost cause, as the bundles' runner does
            raise RuntimeError(describe_case_error(item, exc)) from exc
        flags = {name: flag(data) for name, flag in runner.case_flags.items()}
        label = data["pred"]
        label = label.as_tensor() if isinstance(label, MetaTensor) else torch.as_tensor(label)
        files = {}
        for key, name in self.SAVED_KEYS.items():
            value = data.get(key)
            path = value if isinstance(value, (str, Path)) else getattr(value, "meta", {}).get("saved_to")
            if path:
                files[name] = os.path.relpath(path, self.output_dir)
        probability = flags["pni_probability"]
        return CaseResult(
            case=str(item["case_id"]),
            label=label.to(torch.uint8),
            pni_probability=None if probability is None else float(probability),
            tumour_found=bool(flags["tumour_found"]),
            tumour_volume_ml=flags.get("tumour_volume_ml"),
            refused=str(flags.get("refused") or ""),
            measurements={name: value for name, value in flags.items() if name not in self.RESULT_FLAGS},
            files=files,
        )

    def run_file(self, path: str | os.PathLike, case: str) -> CaseResult:
        """The chain on an image file (NIfTI), read by the config's own ``LoadScand``."""
        return self._run({"image": str(path), "case_id": case}, self.runner.preprocessing)

    def run_volume(self, image: MetaTensor, case: str) -> CaseResult:
        """The chain on a (1, X, Y, Z) MetaTensor with a RAS affine and ``filename_or_obj`` (a DICOM
        series read by the SDK), entering the config's pre-processing after ``LoadScand``."""
        return self._run({"image": image, "case_id": case}, self._after_loading)

    @staticmethod
    def label_names() -> dict[int, str]:
        """Label values of the label map and their names (background excluded)."""
        return {LIVER: LABEL_NAMES[LIVER], TUMOUR: LABEL_NAMES[TUMOUR]}


logging.getLogger(__name__).addHandler(logging.NullHandler())
