"""Case-by-case inference that survives bad cases.

MONAI's evaluators stop at the first exception, which suits curated training data but
not a folder of a user's scans: here one unreadable or malformed case is reported and
skipped, every other case is written, and the run fails at the end.
"""

from __future__ import annotations

import csv
import io
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
from neonet_ext.data.patches import PATH_KEYS, relative_to_folder
from neonet_ext.utils.io import atomic_write

__all__ = ["CaseRunner"]


class CaseRunner:
    """Run ``preprocessing -> inferer(network) -> postprocessing`` on each case of a datalist.

    A case whose loading, checks, inference or saving raises is reported (file and
    cause) and skipped; the others go on. At the end a JSON datalist of what was written
    is saved atomically (e.g. for the next bundle's training), optionally a CSV table of
    the per-case values with one row per case (failed ones with their error), and, if any
    case failed, ``SystemExit`` is raised with the list of failures, so
    ``monai.bundle run`` exits non-zero.

    Args:
        datalist: items such as ``{"image": path, "case_id": ..., "pni": ...}``; keys
            other than the image travel into the output datalist.
        preprocessing: dictionary transform producing ``image_key`` of shape (1, X, Y, Z).
        network: the model, already on ``device`` and loaded; None skips inference (the
            post-processing then works on the pre-processed case alone).
        inferer: e.g. ``SlidingWindowInferer``; called as ``inferer(inputs, network)``.
        postprocessing: dictionary transform applied to the case with ``pred_key``
            (C, X, Y, Z) added; it saves outputs with ``savepath_in_metadict=True``.
        output_dir: folder of the output datalist.
        saved_keys: keys whose ``meta["saved_to"]`` paths (or string values) go into the
            output datalist.
        output_datalist: file name of the output datalist inside ``output_dir``.
        datalist_key: top-level key of the output datalist (Decathlon style).
        case_flags: extra per-case values computed from the post-processed case,
            e.g. ``{"tumour_found": lambda d: bool(d["patch_mask"][1].any())}``.
        output_table: file name of a CSV inside ``output_dir`` with the columns ``case``,
            the ``case_flags`` and ``error``; None writes no table.
        device: where inference runs.
        amp: autocast on CUDA.
    """

    def __init__(
        self,
        datalist: Sequence[Mapping[str, Any]],
        preprocessing: Callable,
        network: torch.nn.Module | None,
        inferer: Inferer | None,
        postprocessing: Callable,
        output_dir: str | Path,
        saved_keys: Sequence[str] = ("pred",),
        output_datalist: str = "datalist.json",
        datalist_key: str = "testing",
        case_flags: Mapping[str, Callable[[dict], Any]] | None = None,
        output_table: str | None = None,
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
        self.output_table = output_table
        self.image_key = image_key
        self.pred_key = pred_key
        self.device = torch.device(device)
        self.amp = amp

    def infer(self, data: dict) -> dict:
        """Add ``pred_key`` (C, X, Y, Z) to a pre-processed case (nothing without a network)."""
        if self.network is None:
            return data
        self.network.eval()  # here, not in run(): callers that serve one case at a time use infer alone
        image = data[self.image_key]
        inputs = image.unsqueeze(0).to(self.device)
        with torch.no_grad(), torch.autocast(self.device.type, enabled=self.amp and self.device.type == "cuda"):
            pred = self.inferer(inputs, self.network)[0].float().cpu()
        if isinstance(image, MetaTensor) and not isinstance(pred, MetaTensor):
            pred = MetaTensor(pred, meta=image.meta)
        data[self.pred_key] = pred
        return data

    def process(self, item: Mapping[str, Any], preprocessing: Callable | None = None) -> dict:
        """One case through pre-processing (``preprocessing`` in place of the runner's, e.g. one that
        starts from an image already loaded), inference and post-processing; return its data."""
        return self.postprocessing(self.infer((preprocessing or self.preprocessing)(dict(item))))

    def run_case(self, item: Mapping[str, Any]) -> dict:
        """Process one case; return its entry of the output datalist."""
        data = self.process(item)
        # input paths too are stored relative to the output folder (absolute when outside it), as
        # readers of the datalist resolve relative paths from its folder, not the working directory
        entry = {k: relative_to_folder(v, self.output_dir) if k in PATH_KEYS and isinstance(v, (str, Path)) else v
                 for k, v in item.items()}
        for key in self.saved_keys:
            value = data[key]
            path = value if isinstance(value, (str, Path)) else value.meta[MetaKeys.SAVED_TO]
            entry[key] = relative_to_folder(path, self.output_dir)
        for name, flag in self.case_flags.items():
            entry[name] = flag(data)
        return entry

    def table_text(self, rows: Sequence[Mapping[str, Any]]) -> str:
        """CSV text of ``rows`` with the columns ``case``, the case flags and ``error``;
        floats with 6 decimals, None as an empty cell."""
        columns = ["case", *self.case_flags, "error"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: f"{v:.6f}" if isinstance(v, float) else v for c, v in row.items()})
        return buffer.getvalue()

    def run(self) -> list[dict]:
        """Process every case; return the output datalist entries."""
        n = len(self.datalist)
        entries: list[dict] = []
        failures: list[str] = []
        rows: list[dict] = []
        for i, item in enumerate(self.datalist, 1):
            start = time.perf_counter()
            name = item.get("case_id", item.get(self.image_key))
            try:
                entry = self.run_case(item)
            except Exception as exc:  # one bad case must not stop the batch
                failures.append(describe_case_error(item, exc, self.image_key))
                print(f"[{i}/{n}] {name}: FAILED: {failures[-1]}", flush=True)
                rows.append({"case": name, "error": failures[-1]})
                continue
            entries.append(entry)
            rows.append({"case": name, **{k: entry[k] for k in self.case_flags}, "error": ""})
            flags = "".join(f", {k}={v:.3f}" if isinstance(v, float) else f", {k}={v}"
                            for k, v in entry.items() if k in self.case_flags)
            print(f"[{i}/{n}] {name}: done in {time.perf_counter() - start:.1f} s{flags}", flush=True)

        out = self.output_dir / self.output_datalist
        text = json.dumps({self.datalist_key: entries}, indent=2)
        atomic_write(out, lambda tmp: tmp.write_text(text))
        print(f"{len(entries)} of {n} cases written to {self.output_dir}/<case>/; datalist {out}", flush=True)
        if self.output_table:
            table = self.output_dir / self.output_table
            atomic_write(table, lambda tmp: tmp.write_text(self.table_text(rows)))
            print(f"table {table}", flush=True)
        if failures:
            raise SystemExit(f"{len(failures)} of {n} cases failed:\n  " + "\n  ".join(failures))
        return entries
