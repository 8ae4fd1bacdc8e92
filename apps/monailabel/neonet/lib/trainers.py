"""MONAI Label training task for NeoSeg: the bundle's own ``configs/train.json`` on the datastore's labels."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.tasks.train.bundle import BundleTrainTask

logger = logging.getLogger(__name__)

__all__ = ["NeoSegTrainTask"]

# train.json values a /train request may set (same names as the bundle's command-line overrides),
# e.g. {"patch_size": [32, 32, 16], "num_workers": 0, "cache_rate": 0} for a quick CPU run
TUNABLE = ("val_interval", "patch_size", "batch_size", "num_samples", "num_workers", "cache_rate",
           "learning_rate", "time_limit")


class NeoSegTrainTask(BundleTrainTask):
    """MONAI Label's ``BundleTrainTask`` run on NeoSeg's ``train.json``, with three adjustments.

    - ``epochs`` follows ``max_epochs``: the bundle's cosine learning-rate schedule spans
      ``epochs``, which MONAI Label does not know about.
    - ``resume`` is off unless the request sets it: the bundle would otherwise continue from
      its last full checkpoint in ``runs/checkpoints``, and a second ``/train`` with the same
      ``max_epochs`` would then train nothing. ``pretrained`` (MONAI Label's option, on by
      default) still starts from the served ``models/model.pt``.
    - a request may set the bundle values in :data:`TUNABLE`, and a split that leaves no
      validation study is refused: the bundle writes ``models/model.pt`` only when a
      validation improves its Dice.

    The trained weights replace ``<bundle_root>/models/model.pt``, which the NeoSeg and NeoCls
    infer tasks then serve.

    Args:
        bundle_root: the NeoSeg bundle's folder (the served copy: training writes into it).
        conf: the app's ``--conf`` values.
    """

    def __init__(self, bundle_root: str | os.PathLike, conf: dict[str, str]) -> None:
        super().__init__(str(bundle_root), conf, load_strict=True)
        self._request: dict[str, Any] = {}

    def config(self) -> dict[str, Any]:
        options = super().config()
        options.update({k: self.bundle_config.get(k) for k in TUNABLE})
        options["resume"] = False
        return options

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        labelled = len(datastore.datalist())
        if labelled < 2:
            raise ValueError(
                f"NeoSeg training needs at least 2 studies with a final label (one to train on, one to validate); "
                f"the datastore has {labelled}. Save labels first (PUT /datastore/label?image=<id>&tag=final)."
            )
        self._request = dict(request)
        return super().__call__(request, datastore)

    def _partition_datalist(self, datalist: list[dict], request: dict[str, Any], shuffle: bool = False):
        train, val = super()._partition_datalist(datalist, request, shuffle)
        if val is not None and not val:
            raise ValueError(
                f"val_split {request.get('val_split', 0.2)} leaves no validation study among {len(datalist)}; "
                "NeoSeg writes models/model.pt only after a validation: raise val_split (e.g. 0.5)."
            )
        if not train:
            raise ValueError(f"val_split {request.get('val_split')} leaves no training study among {len(datalist)}.")
        return train, val

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        request = self._request
        overrides["epochs"] = overrides[self.const.key_train_trainer_max_epochs()]
        overrides["resume"] = bool(request.get("resume", False))
        for key in TUNABLE:
            if key in request:
                value = request[key]
                # options typed in a client arrive as text: "[32, 32, 16]", "0", "null"
                overrides[key] = json.loads(value) if isinstance(value, str) else value
        logger.info(f"NeoSeg training overrides: { {k: v for k, v in overrides.items() if 'data' not in k} }")
        return overrides
