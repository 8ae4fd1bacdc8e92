"""The NeoCls chain (MRI -> NeoSeg -> TLCR -> PattenNet) on CPU: time and memory per patient, by stage.
PattenNet's forward against the baseline classifiers' is ``bench_classifiers.py``'s measurement.

    .venv/bin/python benchmarks/bench_neocls.py            # ~4 min on 2 cores
    .venv/bin/python benchmarks/bench_neocls.py --quick    # 1 repetition

Data: synthetic HBP-MRI case 0 (seed 0, int16 NIfTI as scanners store them) in the small
160x128x64 geometry and the scanner-size 320x260x80 one, each alone in a temporary folder.
Weights: the shipped ones (``bundles/neoseg/models/model.pt``, ``bundles/neocls/models/model.pt``);
``--checkpoint`` names other NeoCls weights, and without any the PattenNet of the config runs
with random weights (the cost is the same).

1. The bundle, in a child process: ``python -m monai.bundle run --config_file
   bundles/neocls/configs/inference.json --dataset_dir DIR --output_dir OUT``: wall time
   (start-up included) and the child's peak RSS (``os.wait4`` in a forking wrapper).
2. In-process, on the same config: each transform of the chain timed as ``CaseRunner`` runs
   it, summed by stage: load (read and check the file), preprocess (orient, resample,
   normalise, crop), NeoSeg (sliding-window forward, softmax, argmax, inverting the label map
   to the input grid), TLCR, PattenNet (probability and attention map), writing (the NIfTI
   files and the report PNG). Medians over ``--reps`` repetitions.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader")

import monai  # noqa: E402
from monai.bundle import ConfigParser  # noqa: E402
from monai.transforms import Compose  # noqa: E402

from _common import REPO, cpu_name, run_child  # noqa: E402
from neonet_ext.data.synthetic import SyntheticCohortConfig, write_cohort  # noqa: E402

CONFIGS = REPO / "bundles" / "neocls" / "configs"
SHIPPED = REPO / "bundles" / "neocls" / "models" / "model.pt"
STAGES = ("load", "preprocess", "NeoSeg", "TLCR", "PattenNet", "writing")
STAGE_OF = {
    "LoadScand": "load", "CheckImaged": "load",
    "Orientationd": "preprocess", "Spacingd": "preprocess", "ScaleIntensityRangePercentilesd": "preprocess",
    "CropForegroundd": "preprocess", "EnsureTyped": "preprocess",
    "Activationsd": "NeoSeg", "CopyItemsd": "NeoSeg", "AsDiscreted": "NeoSeg", "InputGridArgmaxd": "NeoSeg",
    "CleanTumourLabeld": "TLCR", "TLCRd": "TLCR", "DeleteItemsd": "TLCR",
    "InputGated": "PattenNet", "PNIPredictord": "PattenNet", "SaveImaged": "writing", "SaveCaseReportd": "writing",
}


def stage_of(transform) -> str:
    name = type(transform).__name__
    if name not in STAGE_OF:
        raise KeyError(f"{name} (a transform of NeoCls's chain) has no stage in bench_neocls.STAGE_OF; add it.")
    return STAGE_OF[name]


def flat(transform) -> list:
    return [t for inner in transform.transforms for t in flat(inner)] if isinstance(transform, Compose) else [transform]


def stage_times(folder: Path, out: Path, checkpoint: Path) -> dict[str, float]:
    """Seconds per stage for the one case in ``folder``, run in-process as CaseRunner runs it."""
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser.update({"dataset_dir": str(folder), "output_dir": str(out), "checkpoint": str(checkpoint)})
    runner = parser.get_parsed_content("runner")
    item = runner.datalist[0]
    seconds: dict[str, float] = defaultdict(float)
    d = dict(item)
    for t in flat(runner.preprocessing):
        t0 = time.perf_counter()
        d = t(d)
        seconds[stage_of(t)] += time.perf_counter() - t0
    t0 = time.perf_counter()
    d = runner.infer(d)
    seconds["NeoSeg"] += time.perf_counter() - t0
    for t in flat(runner.postprocessing):
        t0 = time.perf_counter()
        d = t(d)
        seconds[stage_of(t)] += time.perf_counter() - t0
    return dict(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, help="repetitions of the in-process run (default 3; 1 with --quick)")
    parser.add_argument("--checkpoint", type=Path, help="NeoCls weights (default: the shipped ones, else random)")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    total = time.perf_counter()
    print(f"NeoCls chain benchmark: {os.cpu_count()} CPUs, {cpu_name()}; torch {torch.__version__} on CPU, "
          f"{torch.get_num_threads()} threads; monai {monai.__version__}; python {platform.python_version()}")

    tmp = Path(tempfile.mkdtemp(prefix="bench_neocls_"))
    try:
        checkpoint = args.checkpoint or SHIPPED
        if not checkpoint.is_file():
            cfg = ConfigParser()
            cfg.read_config(str(CONFIGS / "inference.json"))
            torch.manual_seed(0)
            checkpoint = tmp / "random_pattennet.pt"
            torch.save(cfg.get_parsed_content("network_def").state_dict(), checkpoint)
            print("no NeoCls weights: PattenNet runs with random weights (same cost)")
        volumes = {}
        for name, config in (("small", SyntheticCohortConfig(image_dtype="int16")),
                             ("scanner-size", SyntheticCohortConfig.full_size(image_dtype="int16"))):
            write_cohort(tmp / name, 1, 0, config, verbose=False)
            volumes[name] = tmp / name / "imagesTr"

        print("\n1. bundle run on one case (child process, start-up included)")
        print(f"{'volume':13s} {'wall s':>8s} {'peak RSS MiB':>13s}")
        for name, folder in volumes.items():
            command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "inference.json"),
                       "--dataset_dir", str(folder), "--output_dir", str(tmp / f"out_{name}"),
                       "--checkpoint", str(checkpoint)]
            child = run_child(command, tmp / f"{name}.log")
            print(f"{name:13s} {child.wall:8.1f} {child.max_rss_mib:13.0f}")

        print(f"\n2. per stage, in-process (median of {reps}), seconds")
        print(f"{'volume':13s} " + " ".join(f"{s:>10s}" for s in STAGES) + f" {'total':>8s}")
        for name, folder in volumes.items():
            runs = [stage_times(folder, tmp / f"stages_{name}_{r}", checkpoint) for r in range(reps)]
            medians = {s: float(np.median([r.get(s, 0.0) for r in runs])) for s in STAGES}
            print(f"{name:13s} " + " ".join(f"{medians[s]:10.3f}" for s in STAGES) + f" {sum(medians.values()):8.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
