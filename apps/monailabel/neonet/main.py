"""NeoNet's MONAI Label app: NeoSeg (liver and tumour segmentation) and NeoCls (PNI probability).

Start it with (see ../README.md)::

    monailabel start_server --app apps/monailabel/neonet --studies <folder of NIfTI studies> \\
        [--conf bundles <folder with neoseg/ and neocls/>] [--conf model_dir <folder>] [--conf models neoseg,neocls]

``--conf`` values:

- ``bundles``: where the NeoSeg and NeoCls bundles are (default: the repository's ``bundles/``).
- ``model_dir``: where the served copies of the bundles live (default ``<app>/model``); they are
  copied there on the first start and ``/train`` writes only there.
- ``models``: the models to serve, ``neoseg``, ``neocls`` or both (default both). NeoCls runs
  the NeoSeg copy beside it, so both are always copied.
"""

from __future__ import annotations

import logging
from pathlib import Path

import neonet_ext
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask
from neonet_ext.labels import BACKGROUND, LABEL_NAMES

from lib.bundles import BUNDLE_NAMES, DEFAULT_BUNDLES, prepare_model_dir
from lib.infers import NeoClsInferTask, NeoSegInferTask
from lib.trainers import NeoSegTrainTask

logger = logging.getLogger(__name__)


class NeoNetApp(MONAILabelApp):
    """The NeoNet models as MONAI Label tasks: ``neoseg`` (segmentation, trainable) and
    ``neocls`` (classification: PNI probability by NeoSeg -> TLCR -> PattenNet).

    Raises:
        ValueError: ``--conf models`` names a model the app does not have.
        FileNotFoundError: ``--conf bundles`` does not hold the NeoSeg and NeoCls bundles.
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.models = [m.strip() for m in conf.get("models", ",".join(BUNDLE_NAMES)).split(",") if m.strip()]
        unknown = sorted(set(self.models) - set(BUNDLE_NAMES))
        if unknown or not self.models:
            raise ValueError(f"--conf models {conf.get('models')!r}: choose among {', '.join(BUNDLE_NAMES)}.")
        source = Path(conf.get("bundles", DEFAULT_BUNDLES))
        model_dir = Path(conf.get("model_dir", Path(app_dir) / "model"))
        self.bundle_roots = prepare_model_dir(source, model_dir, BUNDLE_NAMES)
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="NeoNet",
            description="Liver and tumour segmentation (NeoSeg) and perineural-invasion probability (NeoCls) "
            "of cholangiocarcinoma from hepatobiliary-phase MRI. Demo weights trained on synthetic data: "
            "research use only.",
            version=neonet_ext.__version__,
            labels=self._labels(),
        )

    def _labels(self) -> dict[str, int]:
        # NeoSeg's label values, from the one place the project defines them
        if "neoseg" not in self.models:
            return {}
        return {name: value for value, name in LABEL_NAMES.items() if value != BACKGROUND}

    def init_infers(self) -> dict[str, InferTask]:
        tasks: dict[str, InferTask] = {}
        if "neoseg" in self.models:
            tasks["neoseg"] = NeoSegInferTask(self.bundle_roots["neoseg"])
        if "neocls" in self.models:
            tasks["neocls"] = NeoClsInferTask(self.bundle_roots["neocls"], self.bundle_roots["neoseg"])
        for name, task in tasks.items():
            if not task.is_valid():
                raise FileNotFoundError(f"model '{name}': {task.bundle_root} lacks configs/inference.json or weights.")
        return tasks

    def init_trainers(self) -> dict[str, TrainTask]:
        if "neoseg" not in self.models:
            return {}
        return {"neoseg": NeoSegTrainTask(self.bundle_roots["neoseg"], self.conf)}
