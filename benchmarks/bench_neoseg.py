"""NeoSeg bundle on CPU: inference time and memory per volume, its overhead over the bare
sliding-window forward, and training throughput with the share of each step spent waiting for data.

    .venv/bin/python benchmarks/bench_neoseg.py            # ~5 min on 2 cores
    .venv/bin/python benchmarks/bench_neoseg.py --quick    # ~80 s: 1 repetition, 64x64x32 training patches

Data: synthetic HBP-MRI cases from :mod:`neonet_ext.data.synthetic` (seed 0, int16 NIfTI as
scanners store them; ``--image-dtype float32`` for the generator's default), written to a
temporary folder that is removed at the end: case 0 of the small 160x128x64 geometry and
case 0 of the scanner-size 320x260x80 one, each alone in a folder, and a training cohort
of the small geometry.

Measured on the bundle's own configs (``bundles/neoseg/configs``), medians over ``--reps``
repetitions; within a repetition the methods run in turn, so the drifts of a shared
machine hit all of them alike and the ratios are taken side by side in one run:

1. Bundle inference, in a child process, on a folder holding one case::

       python -m monai.bundle run --config_file bundles/neoseg/configs/inference.json \\
           --dataset_dir DIR --output_dir OUT

   wall time, the runner's own per-case time (its ``[1/1] case_000: done in X s`` line:
   loading, preprocessing, sliding window, postprocessing and saving of the label map and
   the TLCR patch) and the child's peak RSS (``os.wait4`` in a small forking wrapper, so that
   the benchmark's own memory does not leak into the child's ``ru_maxrss``). Start-up
   is the same command with ``--run "['$print(...)']"``: interpreter, imports, config
   parsing, network build, weight loading and runner construction, but no case.
2. In-process (``ConfigParser`` on inference.json, same overrides): the runner's steps one
   by one as ``CaseRunner.run_case`` calls them (``preprocessing``, ``CaseRunner.infer``,
   ``postprocessing`` with saving) against the bare forward, ``inferer(x, network)`` under
   ``torch.no_grad`` on the already preprocessed volume as a plain tensor. Ratios to the
   bare forward: the bundle's per-case time (1.), the bundle's wall time less start-up,
   and the in-process pipeline. Targets, on the bundle's per-case time: <= 1.3 for
   scanner-size, <= 1.5 for the small volume.
3. Training: train.json on the generated cohort (one case held out for validation, which
   ``val_interval`` > epochs switches off), ``cache_rate`` 1.0, ``num_workers`` 0 and 2,
   run by the config's own ``initialize`` and ``run`` lists (checkpoint handlers attached
   as the bundle does). Ignite events time each step: GET_BATCH_STARTED to
   GET_BATCH_COMPLETED is the wait for data, GET_BATCH_STARTED to ITERATION_COMPLETED the
   whole step (forward, backward, optimiser, per-iteration handlers). The first step of
   each run is a warm-up, left out of the medians. A step is ``batch_size`` volumes x
   ``num_samples`` patches (2 x 2 in the config); keep ``--train-cases`` even so that
   every step is full.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import psutil
import torch

# monai.data warns on import that nvImageCodec (GPU DICOM decoding) is absent: irrelevant here
logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader")

import monai  # noqa: E402
from ignite.engine import Events  # noqa: E402
from monai.bundle import ConfigParser  # noqa: E402
from monai.data.utils import dense_patch_slices  # noqa: E402

from _common import REPO, ChildRun, cpu_name, run_child  # noqa: E402
from neonet_ext.data.synthetic import SyntheticCohortConfig, write_cohort  # noqa: E402
CONFIGS = REPO / "bundles" / "neoseg" / "configs"
INFERENCE = CONFIGS / "inference.json"
TRAIN = CONFIGS / "train.json"
TARGETS = {"small": 1.5, "scanner-size": 1.3}
DONE_RE = re.compile(r"^\[1/1\] \S+: done in ([0-9.]+) s", re.MULTILINE)
NOOP_RE = re.compile(r"^NOOP cases=(\d+) threads=(\d+)$", re.MULTILINE)
# `run` list of the start-up measurement: builds the runner (so everything it needs) and processes no case
NOOP_RUN = (
    "['$print(\"NOOP cases=\" + str(len(@runner.datalist)) + \" threads=\" + str(torch.get_num_threads()), "
    "flush=True)']"
)


def _x(values) -> str:
    return "x".join(str(v) for v in values)


def _seconds(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


# ------------------------------------------------------------------------------------- inference


def bundle_command(dataset_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", str(INFERENCE),
        "--dataset_dir", str(dataset_dir), "--output_dir", str(output_dir), *extra,
    ]


def n_windows(shape: tuple[int, ...], roi: tuple[int, ...], overlap: float) -> int:
    """Number of sliding windows, as ``SlidingWindowInferer`` places them (after padding to ``roi``)."""
    size = [max(s, r) for s, r in zip(shape, roi)]
    interval = [r if s == r else max(int(r * (1 - overlap)), 1) for s, r in zip(size, roi)]
    return len(dense_patch_slices(size, roi, interval))


class InProcessCase:
    """The inference config built in this process for a folder of one case, to time its steps separately."""

    def __init__(self, dataset_dir: Path, output_dir: Path) -> None:
        parser = ConfigParser()
        parser.read_config(str(INFERENCE))
        parser.update({"dataset_dir": str(dataset_dir), "output_dir": str(output_dir)})
        parser.get_parsed_content("initialize")  # seeds, loads models/model.pt into @network
        self.runner = parser.get_parsed_content("runner")
        self.runner.network.eval()
        self.item = self.runner.datalist[0]
        # the bare forward's input: the preprocessed volume as a plain tensor
        self.x = self.runner.preprocessing(dict(self.item))[self.runner.image_key].as_tensor().unsqueeze(0)
        inferer = self.runner.inferer
        self.roi, self.overlap, self.sw_batch = tuple(inferer.roi_size), inferer.overlap, inferer.sw_batch_size

    def bare(self) -> float:
        """Seconds of ``inferer(x, network)`` alone."""
        start = time.perf_counter()
        with torch.no_grad():
            self.runner.inferer(self.x, self.runner.network)
        return time.perf_counter() - start

    def pipeline(self) -> dict[str, float]:
        """Seconds of each step of ``CaseRunner.run_case``, called as it calls them, and their sum."""
        runner, times = self.runner, {}
        start = time.perf_counter()
        data = runner.preprocessing(dict(self.item))
        times["preprocess"] = time.perf_counter() - start
        start = time.perf_counter()
        data = runner.infer(data)
        times["infer"] = time.perf_counter() - start
        start = time.perf_counter()
        runner.postprocessing(data)
        times["postprocess"] = time.perf_counter() - start
        times["pipeline"] = sum(times.values())
        return times


def bench_inference(volumes: dict[str, Path], tmp: Path, reps: int, warmup: bool) -> None:
    """Figures 1 and 2: the bundle in child processes and its steps in-process, in turn, ``reps`` times."""
    cases = {name: InProcessCase(folder, tmp / "inproc" / name) for name, folder in volumes.items()}
    first_call: dict[str, float] = {}
    if warmup:  # the pipeline's first call in this process: forward, postprocessing and saving still cold
        for name, case in cases.items():
            first_call[name] = case.pipeline()["pipeline"]
            case.bare()
    child: dict[str, list[ChildRun]] = {name: [] for name in volumes}
    per_case: dict[str, list[float]] = {name: [] for name in volumes}
    bare: dict[str, list[float]] = {name: [] for name in volumes}
    steps: dict[str, list[dict[str, float]]] = {name: [] for name in volumes}
    noop: list[ChildRun] = []
    for rep in range(reps):
        for name, folder in volumes.items():
            run = run_child(bundle_command(folder, tmp / "bundle" / f"{name}_{rep}"), tmp / f"{name}_{rep}.log")
            child[name].append(run)
            per_case[name].append(float(DONE_RE.search(run.output).group(1)))
            bare[name].append(cases[name].bare())
            steps[name].append(cases[name].pipeline())
        first = next(iter(volumes.values()))
        noop.append(run_child(bundle_command(first, tmp / "noop", "--run", NOOP_RUN), tmp / f"noop_{rep}.log"))
    parent_rss = psutil.Process().memory_info().rss / 2**20
    n_cases, child_threads = NOOP_RE.search(noop[-1].output).groups()
    assert n_cases == "1", "the start-up run should have built the runner on the one case"

    med = np.median
    wall = {name: med([r.wall for r in runs]) for name, runs in child.items()}
    noop_wall = med([r.wall for r in noop])
    print(f"\n1. Bundle inference per volume: `python -m monai.bundle run --config_file {INFERENCE.relative_to(REPO)} "
          f"--dataset_dir DIR --output_dir OUT`,\n   one case, child process, CPU, medians of {reps}")
    print(f"   {'volume':14s} {'wall s':>7s} {'wall - start-up s':>18s} {'per case s':>11s} {'peak RSS MiB':>13s}")
    for name, runs in child.items():
        rss = med([r.max_rss_mib for r in runs])
        print(f"   {name:14s} {wall[name]:7.2f} {wall[name] - noop_wall:18.2f} {med(per_case[name]):11.1f} {rss:13.0f}")
    print(f"   {'start-up':14s} {noop_wall:7.2f} {'':18s} {'':11s} {med([r.max_rss_mib for r in noop]):13.0f}")
    print("   start-up = the same command processing no case (interpreter, imports, config parsing, network build,\n"
          "   weight loading, runner construction); per case = the runner's `[1/1] case_000: done in X s` (load,\n"
          f"   preprocess, sliding window, postprocess, save); the children run {child_threads} torch threads, beside\n"
          f"   this benchmark's process ({parent_rss:.0f} MiB resident)")

    print(f"\n2. Per-case pipeline against the bare sliding-window forward (in-process, interleaved with 1., "
          f"medians of {reps})")
    print(f"   {'seconds':14s} {'preproc':>8s} {'infer':>7s} {'postproc':>9s} {'pipeline':>9s} {'first call':>11s} "
          f"{'bare fwd':>9s}")
    for name, times in steps.items():
        cols = {k: med([t[k] for t in times]) for k in ("preprocess", "infer", "postprocess", "pipeline")}
        fc = f"{first_call[name]:11.2f}" if name in first_call else f"{'n/a':>11s}"
        print(f"   {name:14s} {cols['preprocess']:8.2f} {cols['infer']:7.2f} {cols['postprocess']:9.2f} "
              f"{cols['pipeline']:9.2f} {fc} {med(bare[name]):9.2f}")
    print(f"   {'ratio to bare':14s} {'pipeline':>9s} {'bundle per case':>16s} {'bundle wall - start-up':>23s} "
          f"{'target (per case)':>18s}")
    for name in steps:
        b = med(bare[name])
        ratio = med(per_case[name]) / b
        verdict = "met" if ratio <= TARGETS[name] else "MISSED"
        print(f"   {name:14s} {med([t['pipeline'] for t in steps[name]]) / b:9.2f} {ratio:16.2f} "
              f"{(wall[name] - noop_wall) / b:23.2f} {'<= ' + str(TARGETS[name]):>11s} {verdict}")
    for name, case in cases.items():
        shape = tuple(case.x.shape[2:])
        print(f"   {name}: preprocessed to {_x(shape)} (2x2x3 mm, foreground crop) -> "
              f"{n_windows(shape, case.roi, case.overlap)} windows of {_x(case.roi)} "
              f"(overlap {case.overlap}, sw_batch_size {case.sw_batch})")
        if reps > 1:
            print(f"      per repetition: bundle per case {_seconds(per_case[name])}; bare {_seconds(bare[name])}; "
                  f"pipeline {_seconds([t['pipeline'] for t in steps[name]])}")
    print("   infer = CaseRunner.infer (MetaTensor in, float pred out); postproc = softmax, argmax, TLCR, invert and\n"
          "   3 NIfTI saves; first call = the pipeline's first run in this process (warm-up, default run only);\n"
          "   bundle per case = the first and only case of a fresh process, as `monai.bundle run` processes it")


# -------------------------------------------------------------------------------------- training


def bench_training(
    cohort: Path, out: Path, num_workers: int, patch: list[int], epochs: int, val_fraction: float
) -> dict:
    """Run train.json in-process; return per-step (patches, data wait s, step s) and the run's figures."""
    parser = ConfigParser()
    parser.read_config(str(TRAIN))
    parser.update({
        "dataset_dir": str(cohort), "output_dir": str(out), "ckpt_dir": str(out / "models"), "resume": False,
        "epochs": epochs, "val_interval": epochs + 1, "val_fraction": val_fraction, "num_workers": num_workers,
        "cache_rate": 1.0, "patch_size": patch,
    })
    start = time.perf_counter()
    parser.get_parsed_content("initialize")
    trainer = parser.get_parsed_content("train#trainer")  # fills the CacheDatasets
    build = time.perf_counter() - start
    logging.getLogger("monai.handlers.StatsHandler").setLevel(logging.WARNING)  # no per-iteration loss lines

    marks: dict[str, float] = {}
    rows: list[tuple[int, float, float]] = []

    @trainer.on(Events.GET_BATCH_STARTED)
    def _get_started(_):
        marks["start"] = time.perf_counter()

    @trainer.on(Events.GET_BATCH_COMPLETED)
    def _get_completed(engine):
        marks["got"] = time.perf_counter()
        marks["patches"] = len(engine.state.batch["image"])  # still collated here

    # attached after the handlers of the trainer's constructor, so it fires after them
    @trainer.on(Events.ITERATION_COMPLETED)
    def _step_completed(_):
        rows.append((marks["patches"], marks["got"] - marks["start"], time.perf_counter() - marks["start"]))

    start = time.perf_counter()
    parser.get_parsed_content("run")  # the config's run list: attach the checkpoint handlers, trainer.run()
    run = time.perf_counter() - start
    return {
        "rows": rows, "build": build, "run": run, "n_train": len(parser.get_parsed_content("split")[0]),
        "batch": parser.get_parsed_content("batch_size"), "num_samples": parser.get_parsed_content("num_samples"),
    }


def report_training(results: dict[int, dict], patch: list[int], epochs: int) -> None:
    first = next(iter(results.values()))
    k = first["num_samples"]
    print(f"\n3. Training (train.json, in-process, CPU): {first['n_train']} small cases (+1 held out, validation off), "
          f"cache_rate 1.0,\n   patch {_x(patch)}, batch {first['batch']} volumes x {k} patches, {epochs} epochs; "
          "medians over the steps after the first (warm-up)")
    print(f"   {'num_workers':>11s} {'steps':>5s} {'step s':>7s} {'volumes/s':>10s} {'patches/s':>10s} "
          f"{'data wait s':>12s} {'wait share':>11s} {'whole run vol/s':>16s} {'cache fill s':>13s}")
    for nw, res in results.items():
        rows = res["rows"][1:] or res["rows"]
        step = float(np.median([r[2] for r in rows]))
        patches = float(np.median([r[0] for r in rows]))
        wait = float(np.median([r[1] for r in rows]))
        share = float(np.median([r[1] / r[2] for r in rows]))
        whole = sum(r[0] for r in res["rows"]) / k / res["run"]
        print(f"   {nw:11d} {len(rows):5d} {step:7.2f} {patches / k / step:10.3f} {patches / step:10.3f} "
              f"{wait:12.3f} {share:11.1%} {whole:16.3f} {res['build']:13.1f}")
    print("   step = GET_BATCH_STARTED -> ITERATION_COMPLETED; data wait = GET_BATCH_STARTED -> GET_BATCH_COMPLETED;\n"
          "   whole run = all volumes / trainer.run() wall (warm-up step, worker starts, epoch-end checkpoints "
          "included);\n   cache fill = building the trainer, the CacheDatasets' deterministic transforms included")


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 repetition, no warm-up, 64x64x32 training patches, 4 training cases (~80 s)")
    parser.add_argument("--reps", type=int, help="inference repetitions (default 3; 1 with --quick)")
    parser.add_argument("--train-patch", type=int, nargs=3, metavar=("X", "Y", "Z"),
                        help="training patch size (default the config's 96 96 48; 64 64 32 with --quick)")
    parser.add_argument("--train-cases", type=int,
                        help="training cases, one more is written for validation (default 6; 4 with --quick)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per num_workers setting (default 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers settings (default 0 2)")
    parser.add_argument("--image-dtype", choices=("int16", "float32"), default="int16", help="NIfTI image dtype")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    patch = args.train_patch or ([64, 64, 32] if args.quick else [96, 96, 48])
    n_train = args.train_cases or (4 if args.quick else 6)
    total_start = time.perf_counter()

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"NeoSeg benchmark ({'--quick' if args.quick else 'default'} run): {os.cpu_count()} CPUs ({usable} usable), "
          f"{cpu_name()}; torch {torch.__version__} on CPU, {torch.get_num_threads()} threads; "
          f"monai {monai.__version__}; python {platform.python_version()}")

    tmp = Path(tempfile.mkdtemp(prefix="bench_neoseg_"))
    try:
        start = time.perf_counter()
        cohort = tmp / "cohort"
        write_cohort(cohort, n_train + 1, 0, SyntheticCohortConfig(image_dtype=args.image_dtype), verbose=False)
        (tmp / "small").mkdir()
        shutil.copy2(cohort / "imagesTr" / "case_000.nii.gz", tmp / "small")
        write_cohort(tmp / "full", 1, 0, SyntheticCohortConfig.full_size(image_dtype=args.image_dtype), verbose=False)
        volumes = {"small": tmp / "small", "scanner-size": tmp / "full" / "imagesTr"}
        print(f"Data: synthetic HBP-MRI case_000 (seed 0), {args.image_dtype} NIfTI, generated in "
              f"{time.perf_counter() - start:.0f} s into a temporary folder:")
        for name, folder in volumes.items():
            header = nib.load(next(folder.glob("*.nii.gz"))).header
            zooms = "x".join(f"{z:.2f}" for z in header.get_zooms())
            print(f"   {name:13s} {_x(header.get_data_shape())} voxels of {zooms} mm")

        bench_inference(volumes, tmp, reps, warmup=not args.quick)

        results = {
            nw: bench_training(cohort, tmp / f"train_w{nw}", nw, patch, args.epochs, 1.0 / (n_train + 1))
            for nw in args.workers
        }
        report_training(results, patch, args.epochs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - total_start:.0f} s")


if __name__ == "__main__":
    main()
