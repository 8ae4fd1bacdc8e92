"""Case-by-case inference that survives bad cases and interruptions.

MONAI's evaluators stop at the first exception, which suits curated training data but
not a folder of a user's scans: here one unreadable or malformed case is reported and
skipped, every other case is written, and the run fails at the end. The output datalist
and the table are rewritten as each case finishes, so an interrupted run keeps what it
did, and a re-run into the same folder skips the cases already done with the same input
and the same weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.utils import MetaKeys

from neonet_ext.data.discovery import describe_case_error
from neonet_ext.data.patches import PATH_KEYS, relative_to_folder
from neonet_ext.utils.io import atomic_write, file_sha1, input_sha1
from neonet_ext.utils.tables import csv_text
from neonet_ext.utils.writers import CASE_ID_META_KEY

__all__ = ["INPUT_SHA1_KEY", "RUN_SHA1_KEY", "CaseRunner"]

#: Output datalist keys identifying what a case's outputs were made from: its input's bytes, and the
#: weights and settings of the run. A re-run skips a case whose two values are unchanged.
INPUT_SHA1_KEY = "input_sha1"
RUN_SHA1_KEY = "run_sha1"


class CaseRunner:
    """Run ``preprocessing -> inferer(network) -> postprocessing`` on each case of a datalist.

    A case whose loading, checks, inference or saving raises is reported (file and
    cause) and skipped, and the files it wrote before failing are removed; the others go
    on. After each case the JSON datalist of what was written (e.g. for the next bundle's
    training) and, optionally, a CSV table with one row per case (failed ones with their
    error) are rewritten atomically. If any case failed, ``SystemExit`` is raised at the
    end with the list of failures, so ``monai.bundle run`` exits non-zero.

    Each datalist entry records :data:`INPUT_SHA1_KEY` (the input's bytes) and
    :data:`RUN_SHA1_KEY` (``model_files`` and ``settings``). With ``resume``, a re-run into
    the same ``output_dir`` keeps the entry of a case whose two values are unchanged and
    whose outputs are all there, and says so; a case it processes again has its earlier
    outputs removed first, so no stale file sits beside a new row.

    The case id is put into the image's meta data (:data:`~neonet_ext.utils.writers.CASE_ID_META_KEY`),
    so that ``SaveImage(output_name_formatter=neonet_ext.utils.writers.case_output_name)``
    writes every output of a case to ``output_dir/<case id>/``.

    Args:
        datalist: items such as ``{"image": path, "case_id": ..., "pni": ...}``; keys
            other than the image travel into the output datalist.
        preprocessing: dictionary transform producing ``image_key`` of shape (1, X, Y, Z).
        network: the model, already on ``device`` and loaded; None skips inference (the
            post-processing then works on the pre-processed case alone).
        inferer: e.g. ``SlidingWindowInferer``; called as ``inferer(inputs, network)``.
        postprocessing: dictionary transform applied to the case with ``pred_key``
            (C, X, Y, Z) added; it saves outputs with ``savepath_in_metadict=True``.
        output_dir: folder of the output datalist, the table and the case folders.
        saved_keys: keys whose ``meta["saved_to"]`` paths (or string values) go into the
            output datalist.
        output_datalist: file name of the output datalist inside ``output_dir``.
        datalist_key: top-level key of the output datalist (Decathlon style).
        case_flags: extra per-case values computed from the post-processed case (None leaves the
            value out of the datalist entry, and its table cell empty),
            e.g. ``{"tumour_found": lambda d: bool(d["patch_mask"][1].any())}``.
        output_table: file name of a CSV inside ``output_dir`` with the columns ``case``,
            the ``case_flags`` and ``error``; None writes no table.
        model_files: the weights the outputs depend on (their bytes go into the run's sha1).
        settings: JSON-able options the outputs depend on (they go into the run's sha1).
        resume: keep the cases an earlier run into ``output_dir`` did with the same input and run sha1.
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
        model_files: Sequence[str | os.PathLike] = (),
        settings: Mapping[str, Any] | None = None,
        resume: bool = True,
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
        self.model_files = [os.fspath(f) for f in model_files]
        self.settings = dict(settings or {})
        self.resume = resume
        self.device = torch.device(device)
        self.amp = amp

    def run_sha1(self) -> str:
        """SHA-1 of the weights' bytes and the settings: what else than the input a case's outputs depend on."""
        identity = {"model_files": [file_sha1(f) for f in self.model_files], "settings": self.settings}
        return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()

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
        data = (preprocessing or self.preprocessing)(dict(item))
        image = data.get(self.image_key)
        if isinstance(image, MetaTensor) and item.get("case_id") is not None:
            image.meta[CASE_ID_META_KEY] = str(item["case_id"])
        return self.postprocessing(self.infer(data))

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
            value = flag(data)
            if value is not None:  # the table shows an empty cell; a None in a datalist breaks collation in training
                entry[name] = value
        return entry

    def table_text(self, rows: Sequence[Mapping[str, Any]]) -> str:
        """CSV text of ``rows`` with the columns ``case``, the case flags and ``error``;
        floats with 6 decimals, None as an empty cell."""
        return csv_text(["case", *self.case_flags, "error"], rows)

    def _output_path(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.output_dir / path

    def _earlier_entries(self) -> dict[str, dict]:
        """Entries of the output datalist an earlier run left, by case id (none without ``resume``)."""
        path = self.output_dir / self.output_datalist
        if not self.resume or not path.is_file():
            return {}
        try:
            entries = json.loads(path.read_text())[self.datalist_key]
            return {str(e["case_id"]): e for e in entries if isinstance(e, dict) and "case_id" in e}
        except (ValueError, KeyError, TypeError) as e:
            warnings.warn(f"{path} is not a datalist an earlier run wrote ({e}); every case is processed anew.", stacklevel=2)
            return {}

    def _outputs_of(self, entry: Mapping[str, Any]) -> list[Path]:
        return [self._output_path(entry[k]) for k in self.saved_keys if isinstance(entry.get(k), str)]

    def _remove_outputs(self, entry: Mapping[str, Any] | None) -> None:
        """Remove the files an earlier run wrote for a case (only files inside ``output_dir``)."""
        root = self.output_dir.resolve()
        for path in self._outputs_of(entry or {}):
            if path.resolve().is_relative_to(root) and path.is_file():
                path.unlink()

    def _case_files(self, case_id: str) -> set[Path]:
        folder = self.output_dir / case_id
        return {p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else set()

    def _remove_new_files(self, case_id: str, before: set[Path]) -> None:
        """Remove what a failed case wrote to its folder (files that were not there before it started)."""
        for path in self._case_files(case_id) - before:
            path.unlink()
        with contextlib.suppress(OSError):  # left when it holds anything else
            (self.output_dir / case_id).rmdir()

    def _write_tables(self, entries: Sequence[dict], rows: Sequence[dict], pending: Sequence[dict] = ()) -> None:
        """Rewrite the datalist and the table: the cases done so far, then the earlier run's entries of the
        cases still to come (so that a second interruption loses nothing; each is checked when reached)."""
        entries = [*entries, *pending]
        rows = [*rows, *(self._row(str(e["case_id"]), e) for e in pending)]
        text = json.dumps({self.datalist_key: entries}, indent=2)
        atomic_write(self.output_dir / self.output_datalist, lambda tmp: tmp.write_text(text))
        if self.output_table:
            table = self.table_text(rows)
            atomic_write(self.output_dir / self.output_table, lambda tmp: tmp.write_text(table))

    def _row(self, name: str, entry: Mapping[str, Any]) -> dict:
        return {"case": name, **{k: entry.get(k) for k in self.case_flags}, "error": ""}

    def run(self) -> list[dict]:
        """Process every case; return the output datalist entries."""
        n = len(self.datalist)
        run_sha1 = self.run_sha1()
        earlier = self._earlier_entries()
        entries: list[dict] = []
        failures: list[str] = []
        rows: list[dict] = []
        kept = 0

        def pending(i: int) -> list[dict]:
            later = (str(item.get("case_id")) for item in self.datalist[i:])
            return [earlier[c] for c in later if c in earlier]

        for i, item in enumerate(self.datalist, 1):
            start = time.perf_counter()
            name = str(item.get("case_id", item.get(self.image_key)))
            before_entry = earlier.get(name)
            try:
                source_sha1 = input_sha1(item[self.image_key]) if isinstance(item.get(self.image_key), (str, Path)) else None
            except OSError:
                source_sha1 = None  # unreadable: processing says why
            if (
                before_entry is not None
                and source_sha1 is not None
                and before_entry.get(INPUT_SHA1_KEY) == source_sha1
                and before_entry.get(RUN_SHA1_KEY) == run_sha1
                and all(p.is_file() for p in self._outputs_of(before_entry))
            ):
                entries.append(before_entry)
                rows.append(self._row(name, before_entry))
                kept += 1
                print(f"[{i}/{n}] {name}: done by an earlier run with the same input and weights; kept", flush=True)
                self._write_tables(entries, rows, pending(i))
                continue
            self._remove_outputs(before_entry)
            before = self._case_files(name)
            try:
                entry = self.run_case(item)
            except Exception as exc:  # one bad case must not stop the batch
                self._remove_new_files(name, before)
                failures.append(describe_case_error(item, exc, self.image_key))
                print(f"[{i}/{n}] {name}: FAILED: {failures[-1]}", flush=True)
                rows.append({"case": name, "error": failures[-1]})
                self._write_tables(entries, rows, pending(i))
                continue
            entry[INPUT_SHA1_KEY], entry[RUN_SHA1_KEY] = source_sha1, run_sha1
            entries.append(entry)
            rows.append(self._row(name, entry))
            self._write_tables(entries, rows, pending(i))
            flags = "".join(f", {k}={v:.3f}" if isinstance(v, float) else f", {k}={v}"
                            for k, v in entry.items() if k in self.case_flags and v not in (None, ""))
            print(f"[{i}/{n}] {name}: done in {time.perf_counter() - start:.1f} s{flags}", flush=True)

        self._write_tables(entries, rows)
        out = self.output_dir / self.output_datalist
        earlier_note = f" ({kept} kept from an earlier run)" if kept else ""
        print(f"{len(entries)} of {n} cases written to {self.output_dir}/<case>/{earlier_note}; datalist {out}", flush=True)
        if self.output_table:
            print(f"table {self.output_dir / self.output_table}", flush=True)
        if failures:
            raise SystemExit(f"{len(failures)} of {n} cases failed:\n  " + "\n  ".join(failures))
        return entries
