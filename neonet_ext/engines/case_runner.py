"""Case-by-case inference that survives bad cases.

MONAI's evaluators stop at the first exception, which suits curated training data but
not a folder of a user's scans: here one unreadable or malformed case is reported and
skipped, every other case is written, and the run fails at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import MetaKeys

from neonet_ext.data.discovery import describe_case_error
from neonet_ext.data.patches import relative_to_folder
from neonet_ext.utils.io import atomic_write

__all__ = ["CaseRunner"]


class CaseRunner:
    """Run ``preprocessing -> inferer(network) -> postprocessing`` on each case of a datalist.

    A case whose loading, checks, inference or saving raises is reported (file and
    cause) and skipped; the others go on. At the end a JSON datalist of what was written
    is saved atomically (e.g. for the next bundle's training), and, if any case failed,
    ``SystemExit`` is raised with the list of failures, so ``monai.bundle run`` exits
    non-zero.

    Args:
        datalist: items such as ``{"image": path, "case_id": ..., "pni": ...}``; keys
            other than the image travel into the output datalist.
        preprocessing: dictionary transform producing ``image_key`` of shape (1, X, Y, Z).
        network: the model, already on ``device`` and loaded.
        inferer: e.g. ``SlidingWindowInferer``; called as ``inferer(inputs, network)``.
        postprocessing: dictionary transform applied to the case with ``pred_key``
            (C, X, Y, Z) added; it saves outputs with ``savepath_in_metadict=True``.
        output_dir: folder of the output datalist.
        saved_keys: keys whose ``meta["saved_to"]`` paths go into the output datalist.
        output_datalist: file name of the output datalist inside ``output_dir``.
        datalist_key: top-level key of the output datalist (Decathlon style).
        case_flags: extra per-case values computed from the post-processed case,
            e.g. ``{"tumour_found": lambda d: bool(d["patch_mask"][1].any())}``.
        device: where inference runs.
        amp: autocast on CUDA.
    """

    def __init__(
        self,
        datalist: Sequence[Mapping[str, Any]],
        preprocessing: Callable,
        network: torch.nn.Module,
        inferer: Inferer,
        postprocessing: Callable,
        output_dir: str | Path,
        saved_keys: Sequence[str] = ("pred",),
        output_datalist: str = "datalist.json",
        datalist_key: str = "testing",
        case_flags: Mapping[str, Callable[[dict], Any]] | None = None,
        image_key: str = "image",
        pred_key: str = "pred",
        device: str | torch.device = "cpu",
        amp: bool = False,
    ) -> None:
        self.datalist = list(datalist)
        self.preprocessing = preprocessing
        self.network = network
        self.inferer = inferer
        self.postprocessing = postprocessing
        self.output_dir = Path(output_dir)
        self.saved_keys = tuple(saved_keys)
        self.output_datalist = output_datalist
        self.datalist_key = datalist_key
        self.case_flags = dict(case_flags or {})
        self.image_key = image_key
        self.pred_key = pred_key
        self.device = torch.device(device)
        self.amp = amp

    def infer(self, data: dict) -> dict:
        """Add ``pred_key`` (C, X, Y, Z) to a pre-processed case."""
        image = data[self.image_key]
        inputs = image.unsqueeze(0).to(self.device)
        with torch.no_grad(), torch.autocast(self.device.type, enabled=self.amp and self.device.type == "cuda"):
            pred = self.inferer(inputs, self.network)[0].float().cpu()
        if isinstance(image, MetaTensor) and not isinstance(pred, MetaTensor):
            pred = MetaTensor(pred, meta=image.meta)
        data[self.pred_key] = pred
        return data

    def run_case(self, item: Mapping[str, Any]) -> dict:
        """Process one case; return its entry of the output datalist."""
        data = self.postprocessing(self.infer(self.preprocessing(dict(item))))
        entry = {k: v for k, v in item.items() if k != self.image_key}
        entry[self.image_key] = str(item[self.image_key])
        for key in self.saved_keys:
            entry[key] = relative_to_folder(data[key].meta[MetaKeys.SAVED_TO], self.output_dir)
        for name, flag in self.case_flags.items():
            entry[name] = flag(data)
        return entry

    def run(self) -> list[dict]:
        """Process every case; return the output datalist entries."""
        self.network.eval()
        n = len(self.datalist)
        entries: list[dict] = []
        failures: list[str] = []
        for i, item in enumerate(self.datalist, 1):
            start = time.perf_counter()
            name = item.get("case_id", item.get(self.image_key))
            try:
                entry = self.run_case(item)
            except Exception as exc:  # one bad case must not stop the batch
                failures.append(describe_case_error(item, exc, self.image_key))
                print(f"[{i}/{n}] {name}: FAILED: {failures[-1]}", flush=True)
                continue
            entries.append(entry)
            flags = "".join(f", {k}={v}" for k, v in entry.items() if k in self.case_flags)
            print(f"[{i}/{n}] {name}: done in {time.perf_counter() - start:.1f} s{flags}", flush=True)

        out = self.output_dir / self.output_datalist
        text = json.dumps({self.datalist_key: entries}, indent=2)
        atomic_write(out, lambda tmp: tmp.write_text(text))
        print(f"{len(entries)} of {n} cases written; datalist {out}", flush=True)
        if failures:
            raise SystemExit(f"{len(failures)} of {n} cases failed:\n  " + "\n  ".join(failures))
        return entries
