"""MONAI Label inference tasks that run the NeoSeg bundle and the NeoCls chain from their own configs.

Both parse the bundle's ``configs/inference.json`` with :class:`neonet_ext.utils.bundle.BundleStage`
(the project's way of running a bundle as one stage) and run its ``runner``'s pre-processing,
inference step and post-processing, minus the transforms that write files. Nothing of the
bundles' pipelines is restated here, so a change to a bundle config is served as it is.

MONAI Label's own ``BundleInferTask`` is not used: it imports ``monailabel.transform.post``,
which needs torchvision, and no CPU torchvision build for torch 2.13 can be installed here
(PyPI's is a CUDA build whose import fails). Its ``Restored`` step is not needed either: the
bundle's ``TumourRefined`` already brings the label map back onto the input grid.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from monai.transforms import SaveImaged, SqueezeDimd
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask
from neonet_ext.engines import CaseRunner, SaveCaseReportd
from neonet_ext.transforms import TLCRd
from neonet_ext.utils.bundle import BundleStage

from lib.bundles import ImageKeyGuard, drop_transforms, flatten_transforms, read_metadata

logger = logging.getLogger(__name__)

__all__ = ["NeoClsInferTask", "NeoSegInferTask"]


def neoseg_weights(bundle_root: str | os.PathLike) -> list[Path]:
    """NeoSeg's weight files: its network's, and its tumour refiner's where the bundle has one."""
    models = Path(bundle_root) / "models"
    return [models / "model.pt", *([models / "refiner.pt"] if (models / "refiner.pt").is_file() else [])]


class _BundleChainTask(ImageKeyGuard, BasicInferTask):
    """A task served by one bundle config, parsed on first use and again when weights change.

    The parse is per device (a request may name one) and is redone when any file of
    ``watched`` changes, so weights written by ``/train`` are served without a restart.
    Parsing waits for the first request: the training subprocess builds the app too and
    needs no networks.

    Args:
        bundle_root: the bundle's folder.
        name: the bundle's name, for messages.
        watched: weight files whose change triggers a new parse.
        kwargs: passed to ``BasicInferTask``.
    """

    def __init__(self, bundle_root: str | os.PathLike, name: str, watched: Sequence[Path], **kwargs: Any) -> None:
        self.bundle_root = Path(bundle_root)
        self.name = name
        self.watched = list(watched)
        self.metadata = read_metadata(self.bundle_root)
        self._lock = threading.Lock()
        self._runners: dict[str, tuple[tuple, CaseRunner]] = {}
        super().__init__(path=[str(p) for p in self.watched], network=None, dimension=3,
                         description=self.metadata.get("description", ""), **kwargs)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": self.metadata.get("version"), "bundle_root": str(self.bundle_root)}

    def is_valid(self) -> bool:
        return (self.bundle_root / "configs" / "inference.json").is_file() and all(p.is_file() for p in self.watched)

    def overrides(self, device: torch.device) -> dict[str, Any]:
        """Config values to replace before parsing (the runner gets an empty datalist: one
        request is one case)."""
        return {"device": device, "datalist": []}

    def runner(self, data: dict[str, Any] | None) -> CaseRunner:
        """The bundle's ``runner`` (a :class:`~neonet_ext.engines.CaseRunner`) for the request's
        device, parsed again when a watched weight file changed."""
        device = torch.device((data or {}).get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        stamp = tuple(p.stat().st_mtime_ns if p.exists() else None for p in self.watched)
        with self._lock:
            cached = self._runners.get(str(device))
            if cached is None or cached[0] != stamp:
                logger.info(f"{self.name}: parsing {self.bundle_root / 'configs' / 'inference.json'} for {device}")
                runner = BundleStage(self.bundle_root, self.name, overrides=self.overrides(device))["runner"]
                self._runners[str(device)] = cached = (stamp, runner)
            return cached[1]

    def pre_transforms(self, data: dict[str, Any] | None = None) -> Sequence[Callable]:
        return flatten_transforms(self.runner(data).preprocessing)

    def run_inferer(self, data: dict[str, Any], convert_to_batch: bool = True, device: str = "cuda") -> dict[str, Any]:
        # the bundle's own inference step: its network and inferer, autocast as the bundle sets it
        return self.runner(data).infer(data)

    def clear_cache(self) -> None:
        with self._lock:
            self._runners.clear()


class NeoSegInferTask(_BundleChainTask):
    """NeoSeg: liver and tumour label map (0 background, 1 liver, 2 tumour) on the input image's grid.

    Runs the bundle's pre-processing, sliding-window SegResNet and post-processing up to and
    including ``TumourRefined`` (back to the input's orientation, spacing and extent), without the
    TLCR crop and the file writers, which the label map does not depend on. The result is
    written as uint8 with the input's affine.

    Args:
        bundle_root: the NeoSeg bundle's folder (its ``models/model.pt`` and ``models/refiner.pt`` are served).
    """

    def __init__(self, bundle_root: str | os.PathLike) -> None:
        metadata = read_metadata(bundle_root)
        channels = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
        labels = {name: int(value) for value, name in channels.items() if name.lower() != "background"}
        super().__init__(bundle_root, "NeoSeg", neoseg_weights(bundle_root),
                         type=InferType.SEGMENTATION, labels=labels)

    def post_transforms(self, data: dict[str, Any] | None = None) -> Sequence[Callable]:
        post = drop_transforms(flatten_transforms(self.runner(data).postprocessing), (SaveImaged, TLCRd))
        # (1, X, Y, Z) -> (X, Y, Z): MONAI Label's writer expects a channel-less label map
        return [*post, SqueezeDimd(keys=self.output_label_key, dim=0)]

    def writer(self, data: dict[str, Any], extension: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
        # labels are 0..2: uint8 unless the request asks for another type (result_dtype)
        return super().writer(data, extension, dtype if dtype or data.get("result_dtype") else "uint8")


class NeoClsInferTask(_BundleChainTask):
    """NeoCls: PNI probability of a study, by the bundle's chain NeoSeg -> TLCR -> PattenNet.

    Runs NeoCls's ``configs/inference.json`` as ``monai.bundle run`` does, with the NeoSeg
    bundle at ``neoseg_root``, minus the writers of the attention map and the report page.
    The result JSON holds MONAI Label's ``prediction`` list (``idx``, ``label``, ``score`` per
    class) and the bundle's per-case values: ``pni_probability`` (None when NeoSeg finds no
    tumour, as the bundle reports it), ``tumour_found`` and ``tumour_volume_ml``.

    Args:
        bundle_root: the NeoCls bundle's folder.
        neoseg_root: the NeoSeg bundle the chain runs (the served copy, so trained weights are used).
    """

    def __init__(self, bundle_root: str | os.PathLike, neoseg_root: str | os.PathLike) -> None:
        self.neoseg_root = Path(neoseg_root)
        metadata = read_metadata(bundle_root)
        channels = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
        labels = {name: int(value) for value, name in channels.items()}
        watched = [Path(bundle_root) / "models" / "model.pt", *neoseg_weights(self.neoseg_root)]
        super().__init__(bundle_root, "NeoCls", watched, type=InferType.CLASSIFICATION, labels=labels)

    def overrides(self, device: torch.device) -> dict[str, Any]:
        return {**super().overrides(device), "neoseg_bundle_root": str(self.neoseg_root), "patches_file": None}

    def post_transforms(self, data: dict[str, Any] | None = None) -> Sequence[Callable]:
        return drop_transforms(flatten_transforms(self.runner(data).postprocessing), (SaveImaged, SaveCaseReportd))

    def writer(self, data: dict[str, Any], extension: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
        # the bundle's per-case values, computed by its own case_flags (as in predictions.csv)
        values = {name: flag(data) for name, flag in self.runner(data).case_flags.items()}
        p = values.get("pni_probability")
        names = {index: name for name, index in self.labels.items()}
        prediction = [] if p is None else [
            {"idx": 0, "label": names[0], "score": 1.0 - float(p)},
            {"idx": 1, "label": names[1], "score": float(p)},
        ]
        return None, {"prediction": prediction, **values}
