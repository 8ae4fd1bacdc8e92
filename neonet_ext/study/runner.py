"""The study: both of the seed's tables on one cohort, with one protocol, resumable.

Protocol (the same for every profile; the profile sets sizes and budgets only):

1. Patches: NeoSeg segments every case and TLCR cuts its patch (``patch_source="neoseg"``), or
   TLCR cuts it from the ground-truth labels (``"ground_truth"``), on NeoSeg's grid either way.
   Patches are resampled to the profile's patch size when it differs from the TLCR crop size.
2. Folds: 5-fold patient-level cross-validation, stratified by PNI status, seeded.
3. Per fold, NeoGen (autoencoder, diffusion UNet, ControlNet) is trained on that fold's
   training patients only and generates the fold's synthetic PNI+ patches from the masks of
   its training positives. ``shared_generator=True`` trains one NeoGen on every patient
   instead: faster, but the generator (and PattenNet's frozen encoder) has seen the test
   patients, so every result is labelled leaky.
4. Every cell (model x ratio x fold, and PattenNet's ablations at the ablation ratio) is
   one run of the NeoCls bundle's ``train.json`` with the same budget and seed, evaluated once
   on the held-out fold after its last epoch (no model selection on the test patients).
5. The report: ``results.csv``, the two tables with bootstrap intervals, paired tests, ROC
   curves and a summary against the seed's figures (:mod:`neonet_ext.study.report`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from neonet_ext.data.patches import (
    load_patch_datalist,
    patches_with_tumour,
    synthetic_needed,
    write_patch_datalist,
)
from neonet_ext.data.splits import split_cases
from neonet_ext.study.grid import PATTENNET, Cell, plan_cells
from neonet_ext.study.profiles import StudyProfile
from neonet_ext.study.scheduler import ray_session, run_tasks, task_threads
from neonet_ext.study.statistics import size_rank_correlation
from neonet_ext.study.tasks import Task
from neonet_ext.utils.io import atomic_write

__all__ = ["PATCH_SOURCES", "Study"]

PATCH_SOURCES = ("neoseg", "ground_truth")
EXPERIMENT = "neonet-study"
_STAGES = ("autoencoder", "diffusion", "controlnet")
_STAGE_CONFIGS = ("train_autoencoder.json", "train_diffusion.json", "train_controlnet.json")
#: Layered last onto every cell's NeoCls training: after training, the items its training loader iterated go
#: to ``training_items.json`` in the cell's folder (:meth:`Study.collect` counts the synthetic ones) and its
#: test items to ``test_items.json``; a PattenNet's carry their latent cache entries (the latent reader's input).
RECORD_ITEMS = Path(__file__).parent / "configs" / "record_items.json"
#: Layered onto every cell's NeoCls training (after its network's override file): the fold's held-out patients
#: as the test split, scored once after the last epoch with batch-norm statistics recomputed, no checkpoints.
CELL_PROTOCOL = Path(__file__).parent / "configs" / "cell.json"
TRAINING_ITEMS = "training_items.json"
TEST_ITEMS = "test_items.json"


def count_synthetic(training_items: Path) -> int | None:
    """Synthetic items (``"synthetic": true``) of a cell's ``training_items.json``; None without the file
    (a cell trained before the study recorded its items)."""
    if not training_items.is_file():
        return None
    return sum(bool(item.get("synthetic")) for item in json.loads(training_items.read_text())["training"])


def _reader_figures(name: str, per_fold: Sequence[float]) -> dict[str, Any]:
    """A reference reader's ``<name>_auc`` (mean over the folds) and ``<name>_fold_aucs`` (None where a fold
    could not be scored) for ``cohort_summary.json``."""
    import numpy as np

    return {f"{name}_auc": float(np.nanmean(per_fold)), f"{name}_fold_aucs": [None if math.isnan(a) else a for a in per_fold]}


class Study:
    """One study run in ``out_dir`` (see the module docstring for the protocol).

    Args:
        out_dir: the study's folder; everything is written there and a run killed halfway
            continues from it.
        profile: sizes and budgets.
        cohort: a Decathlon-style dataset folder (``dataset.json`` with ``training`` items of
            ``image``, ``label`` and ``pni``). None makes the profile's synthetic cohort.
        patch_source: ``neoseg`` or ``ground_truth``.
        shared_generator: train one NeoGen on all patients (leaky, labelled so).
        tracking: log every training run to ``out_dir/mlruns.db`` (MLflow, SQLite).
        bundles_dir: the folder holding the ``neoseg``, ``neogen`` and ``neocls`` bundles.
        log: where progress lines go.
        address: a Ray cluster to run on (``host:port``, ``ray://host:port`` or ``auto``); None starts a local
            Ray instance (127.0.0.1 only) for the run. The cluster's nodes must see ``out_dir``, the cohort and
            the bundles at the same paths.
        gpus_per_task: GPUs Ray gives each bundle run (0: CPU only).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        profile: StudyProfile,
        cohort: str | os.PathLike | None = None,
        patch_source: str = "neoseg",
        shared_generator: bool = False,
        tracking: bool = True,
        bundles_dir: str | os.PathLike | None = None,
        log: Callable[[str], None] = print,
        address: str | None = None,
        gpus_per_task: float = 0,
    ) -> None:
        if patch_source not in PATCH_SOURCES:
            raise ValueError(f"patch_source must be one of {PATCH_SOURCES}, got {patch_source!r}")
        self.out = Path(out_dir).resolve()
        self.profile = profile
        self.cohort = Path(cohort).resolve() if cohort else None
        self.patch_source = patch_source
        self.shared_generator = shared_generator
        self.tracking = tracking
        from neonet_ext.utils.bundle import bundle_root

        bundles = Path(bundles_dir).resolve() if bundles_dir else Path(bundle_root("neocls")).parent
        self.roots = {name: bundles / name for name in ("neoseg", "neogen", "neocls")}
        for name, root in self.roots.items():
            if not (root / "configs" / "metadata.json").is_file():
                raise FileNotFoundError(f"{name} bundle not found at {root}")
        self.log = log
        self.address = address
        self.gpus_per_task = gpus_per_task
        self.tracking_uri = f"sqlite:///{self.out / 'mlruns.db'}" if tracking else None

    # ------------------------------------------------------------------ settings

    @property
    def settings(self) -> dict[str, Any]:
        """What fixes the results (not how many workers run them): a study continues only with the same."""
        profile = {k: v for k, v in self.profile.to_dict().items() if k not in ("workers", "threads")}
        return {
            "profile": profile,
            "cohort": str(self.cohort) if self.cohort else None,
            "patch_source": self.patch_source,
            "shared_generator": self.shared_generator,
        }

    def _check_settings(self) -> None:
        path = self.out / "study.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved != self.settings:
                changed = sorted(k for k in self.settings if saved.get(k) != self.settings[k])
                raise ValueError(f"{self.out} holds a study with other settings ({', '.join(changed)} differ): "
                                 "continue it with the same options, or choose another --out")
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: tmp.write_text(json.dumps(self.settings, indent=2) + "\n"))

    # ------------------------------------------------------------------ the cohort and its patches

    def cohort_datalist(self) -> Path:
        """The cohort's ``dataset.json``, made first when the study generates its own cohort."""
        if self.cohort is not None:
            path = self.cohort / "dataset.json"
            if not path.is_file():
                raise FileNotFoundError(f"cohort {self.cohort} has no dataset.json (Decathlon form with 'training' items)")
            return path
        folder = self.out / "cohort"
        path = folder / "dataset.json"
        if not path.is_file():
            from neonet_ext.data.synthetic import SyntheticCohortConfig, write_cohort

            options = dict(self.profile.cohort)
            n_cases, seed = int(options.pop("cases")), int(options.pop("seed", 0))
            self.log(f"== synthetic cohort: {n_cases} cases, seed {seed} -> {folder}")
            summary = write_cohort(folder, n_cases, seed, SyntheticCohortConfig(image_dtype="int16", **options), verbose=False)
            self.log(f"   {summary['n_pni_positive']} PNI+, oracle AUC {summary['oracle_auc']:.3f}, "
                     f"{summary['seconds']:.0f} s")
        return path

    def patch_tasks(self, datalist_file: Path) -> tuple[list[Task], Path]:
        """Tasks that cut every case's patch; returns them and the patch datalist they end in."""
        from neonet_ext.transforms import TLCR_ROI_SIZE

        folder = self.out / "patches" / self.patch_source
        tasks: list[Task] = []
        if self.patch_source == "neoseg":
            cases = json.loads(datalist_file.read_text())["training"]
            n_chunks = max(1, min(self.profile.workers, len(cases)))
            chunk_files = []
            for c in range(n_chunks):
                chunk = folder / f"chunk{c}"
                items = [dict(item, image=str((datalist_file.parent / item["image"]).resolve()),
                              label=str((datalist_file.parent / item["label"]).resolve()) if item.get("label") else None)
                         for item in cases[c::n_chunks]]
                chunk.mkdir(parents=True, exist_ok=True)
                (chunk / "cases.json").write_text(json.dumps({"testing": [
                    {k: v for k, v in item.items() if v is not None} for item in items]}, indent=2))
                tasks.append(Task(
                    name=f"patches-neoseg-{c}", workdir=str(chunk), kind="patches",
                    config_files=[str(self.roots["neoseg"] / "configs" / "inference.json")],
                    overrides={"bundle_root": str(self.roots["neoseg"]), "datalist_file": str(chunk / "cases.json"),
                               "output_dir": str(chunk), **self.profile.neoseg},
                ))
                chunk_files.append(str(chunk / "patches.json"))
            tasks.append(Task(name="patches-neoseg", workdir=str(folder), kind="patches",
                              function="neonet_ext.study.patches:merge_patch_datalists",
                              kwargs={"files": chunk_files, "output_file": str(folder / "patches.json")},
                              needs=[t.name for t in tasks]))
        else:
            tasks.append(Task(name="patches-ground_truth", workdir=str(folder), kind="patches",
                              function="neonet_ext.study.patches:ground_truth_patches",
                              kwargs={"datalist_file": str(datalist_file), "output_dir": str(folder),
                                      "neoseg_bundle_root": str(self.roots["neoseg"])}))
        patches = folder / "patches.json"
        if tuple(self.profile.patch_size) != tuple(TLCR_ROI_SIZE):
            size = "x".join(map(str, self.profile.patch_size))
            resized = self.out / "patches" / f"{self.patch_source}_{size}"
            tasks.append(Task(name=f"patches-{size}", workdir=str(resized), kind="patches",
                              function="neonet_ext.study.patches:resample_patches",
                              kwargs={"datalist_file": str(patches), "output_dir": str(resized),
                                      "patch_size": list(self.profile.patch_size)},
                              needs=[tasks[-1].name]))
            patches = resized / "patches.json"
        return tasks, patches

    # ------------------------------------------------------------------ folds, NeoGen and cells

    def folds(self, patches_file: Path) -> list[dict[str, Any]]:
        """Write each fold's datalists; return per fold its files and class counts."""
        items = patches_with_tumour(load_patch_datalist(patches_file, required_keys=["patch", "patch_mask", "pni"]))
        folds = split_cases(items, seed=self.profile.seed, stratify_by="pni", n_folds=self.profile.folds)
        info = []
        for k, test in enumerate(folds):
            train = [item for j, fold in enumerate(folds) if j != k for item in fold]
            folder = self.out / "folds" / f"fold{k}"
            files = {"train": folder / "train.json", "test": folder / "test.json", "positives": folder / "train_positives.json"}
            write_patch_datalist(train, files["train"])
            write_patch_datalist(test, files["test"])
            write_patch_datalist([item for item in train if int(item["pni"]) == 1], files["positives"])
            n_pos = sum(int(item["pni"]) == 1 for item in train)
            info.append({"fold": k, "files": files, "n_train": len(train), "n_train_pos": n_pos,
                         "train_cases": [item["case_id"] for item in train], "test_cases": [item["case_id"] for item in test],
                         "n_test": len(test), "n_test_pos": sum(int(i["pni"]) == 1 for i in test),
                         "synthetic_needed": synthetic_needed(len(train) - n_pos, n_pos, max(self.profile.ratios, default=0)),
                         "all_items": items})
        return info

    def _network_overrides(self, diffusion: bool = False) -> dict[str, Any]:
        """The profile's network widths as config overrides: the autoencoder (NeoGen's and PattenNet's
        encoder alike) and, for configs that build it, the diffusion UNet."""
        overrides = {f"autoencoder_def#{k}": v for k, v in self.profile.autoencoder.items()}
        if diffusion:
            overrides.update({f"diffusion_unet_def#{k}": v for k, v in self.profile.diffusion_unet.items()})
        return overrides

    def generator_tasks(self, name: str, folder: Path, train_file: Path, positives_file: Path | None,
                        n_synthetic: int, train_stages: bool = True) -> list[Task]:
        """NeoGen's three stages trained on ``train_file`` (if ``train_stages``) and the generation
        of ``n_synthetic`` PNI+ patches from the masks in ``positives_file``."""
        root = self.roots["neogen"]
        models = folder / "models"
        base = {"bundle_root": str(root), "ckpt_dir": str(models), "roi_size": list(self.profile.patch_size),
                **self.profile.neogen.get("common", {})}
        tasks = []
        if train_stages:
            for i, stage in enumerate(_STAGES):
                tasks.append(Task(
                    name=f"{name}-neogen-{stage}", workdir=str(folder / stage), kind="neogen", tracked=True,
                    params={"stage": stage, "generator": name, "profile": self.profile.name},
                    config_files=[str(root / "configs" / c) for c in _STAGE_CONFIGS[: i + 1]],
                    overrides={**base, **self._network_overrides(diffusion=i > 0), "datalist_file": str(train_file),
                               "output_dir": str(folder / stage), **self.profile.neogen.get(stage, {})},
                    needs=[tasks[-1].name] if tasks else [],
                ))
        if positives_file is not None and n_synthetic > 0:
            tasks.append(Task(
                name=f"{name}-neogen-generation", workdir=str(folder / "synthetic"), kind="neogen", fresh=True,
                config_files=[str(root / "configs" / "inference.json")],
                overrides={**base, **self._network_overrides(diffusion=True), "datalist_file": str(positives_file),
                           "output_dir": str(folder / "synthetic"), "num_samples": n_synthetic, "class_index": 1,
                           "seed": self.profile.seed, **self.profile.neogen.get("generation", {})},
                needs=[tasks[-1].name] if tasks else [],
            ))
        return tasks

    def cell_task(self, cell: Cell, fold: dict[str, Any], generator: Path, synthetic: Path | None,
                  needs: Sequence[str]) -> Task:
        """The NeoCls training run of one cell, scored on the fold's held-out patients.

        ``generator`` holds the NeoGen models (PattenNet's frozen encoder); ``synthetic`` is the
        fold's synthetic datalist, None when the fold needs none.
        """
        root = self.roots["neocls"]
        configs = [str(root / "configs" / "train.json")]
        if cell.model != PATTENNET:
            configs.append(str(root / "configs" / "networks" / f"{cell.model}.json"))
        elif cell.variant != "full":
            configs.append(str(root / "configs" / "ablations" / f"{cell.variant}.json"))
        configs.append(str(CELL_PROTOCOL))
        workdir = self.out / "cells" / cell.name
        overrides: dict[str, Any] = {
            "bundle_root": str(root),
            "datalist_file": str(fold["files"]["train"]),
            "test_datalist_file": str(fold["files"]["test"]),
            "synthetic_datalist_file": str(synthetic) if synthetic and cell.ratio > 0 else None,
            "synthetic_ratio": cell.ratio,
            "seed": self.profile.seed,
            "output_dir": str(workdir),
            "ckpt_dir": str(workdir / "models"),
            "autoencoder_path": str(generator / "models" / "model_autoencoder.pt"),
            # every cell of a fold reads its patches through the fold's one frozen encoder: encoded once
            "latent_cache_dir": str(generator / "latent_cache"),
            **self._network_overrides(),
            **self.profile.classifier,
        }
        if cell.model == PATTENNET:
            overrides.update(self.profile.pattennet)
        else:
            kwargs = {**self.profile.baseline_kwargs, **self.profile.model_kwargs.get(cell.model, {})}
            overrides.update({f"network_def#{k}": v for k, v in kwargs.items()})
        configs.append(str(RECORD_ITEMS))
        params = {"fold": cell.fold, "model": cell.model, "variant": cell.variant, "ratio": cell.ratio,
                  "profile": self.profile.name, "patch_source": self.patch_source,
                  "leaky_generator": self.shared_generator, "seed": self.profile.seed}
        return Task(name=cell.name, workdir=str(workdir), config_files=configs, overrides=overrides,
                    needs=list(needs), tracked=True, params=params, fresh=True, kind="cell")

    # ------------------------------------------------------------------ running

    def _ray(self):
        """One Ray connection for all of the study's runs (see :func:`neonet_ext.study.scheduler.ray_session`)."""
        return ray_session(self.address, self.profile.workers * task_threads(self.profile.workers, self.profile.threads))

    def _run(self, tasks: Sequence[Task], describe=None) -> dict[str, dict[str, Any]]:
        threads = self.profile.threads
        return run_tasks(tasks, self.profile.workers, threads, self.tracking_uri, EXPERIMENT, describe, self.log,
                         address=self.address, gpus_per_task=self.gpus_per_task)

    def _prepare_tracking(self) -> None:
        if not self.tracking:
            return
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as e:
            raise RuntimeError("the study logs every run to MLflow: install the tracking extra "
                               "(pip install -c constraints.txt -e '.[tracking]') or pass --no-tracking") from e
        # created once here: worker processes creating it at the same moment would collide. A client, not
        # mlflow.set_tracking_uri, which also sets MLFLOW_TRACKING_URI for every later process of the caller.
        client = MlflowClient(tracking_uri=self.tracking_uri)
        if client.get_experiment_by_name(EXPERIMENT) is None:
            client.create_experiment(EXPERIMENT)

    def prepare(self) -> tuple[Path, list[dict[str, Any]]]:
        """Every step before training: check the settings, make the cohort, cut its patches, write the folds.

        Returns the cohort's datalist and the folds (see :meth:`folds`).
        """
        self._check_settings()
        self._prepare_tracking()
        cohort = self.cohort_datalist()
        tasks, patches_file = self.patch_tasks(cohort)
        self.log(f"== patches ({self.patch_source}) at {'x'.join(map(str, self.profile.patch_size))}")
        results = self._run(tasks)
        failed = [name for name, r in results.items() if r["error"]]
        if failed:
            raise RuntimeError(f"cutting the patches failed ({failed[0]}): see {self.out / 'patches'}")
        return cohort, self.folds(patches_file)

    def references(self) -> dict[str, Any]:
        """Prepare the folds and write ``cohort_summary.json``: the cohort's size and, for a synthetic cohort,
        the oracle and sign-reader AUCs under the study's folds, the references the grid's AUCs compare with."""
        with self._ray():
            return self._write_cohort_summary(*self.prepare())

    def _write_cohort_summary(self, cohort: Path, folds: Sequence[dict]) -> dict[str, Any]:
        summary = self.cohort_summary(cohort, folds)
        summary["folds"] = [{k: fold[k] for k in ("fold", "n_train", "n_train_pos", "n_test", "n_test_pos")} for fold in folds]
        path = self.out / "cohort_summary.json"
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
        figures = [f"{summary['n_cases']} cases, {summary['n_pni_positive']} PNI+"]
        figures += [f"{name} AUC {summary[key]:.3f}" for key, name in
                    (("oracle_auc", "oracle"), ("sign_reader_auc", "sign reader (mean over the folds)"),
                     ("size_reader_auc", "tumour-size reader (mean over the folds)"),
                     ("latent_reader_auc", "latent region reader (mean over the folds)")) if key in summary]
        self.log(f"== cohort: {'; '.join(figures)} -> {path}")
        return summary

    def run(self) -> int:
        """Run (or continue) the study and write its report; return 0, or 1 when some cells failed."""
        with self._ray():
            return self._run_study()

    def _run_study(self) -> int:
        start = time.perf_counter()
        cohort, folds = self.prepare()
        cells = plan_cells(self.profile.folds, self.profile.models, self.profile.ratios, self.profile.ablations,
                           self.profile.ablation_ratio)
        tasks = []
        if self.shared_generator:
            shared = self.out / "shared_generator"
            all_file = self.out / "folds" / "all.json"
            write_patch_datalist(folds[0]["all_items"], all_file)
            tasks += self.generator_tasks("shared", shared, all_file, None, 0)
        for fold in folds:
            folder = self.out / "folds" / f"fold{fold['fold']}" / "neogen"
            if self.shared_generator:
                gen = self.generator_tasks(f"fold{fold['fold']}", folder, fold["files"]["train"],
                                           fold["files"]["positives"], fold["synthetic_needed"], train_stages=False)
                for t in gen:
                    t.needs = ["shared-neogen-controlnet"]
                    t.overrides = {**t.overrides, "ckpt_dir": str(shared / "models")}
                encoder_task, generator = "shared-neogen-autoencoder", shared
            else:
                gen = self.generator_tasks(f"fold{fold['fold']}", folder, fold["files"]["train"],
                                           fold["files"]["positives"], fold["synthetic_needed"])
                encoder_task, generator = f"fold{fold['fold']}-neogen-autoencoder", folder
            tasks += gen
            generation = [t.name for t in gen if t.name.endswith("generation")]
            # no generation when the fold's classes are already balanced: nothing synthetic to add
            synthetic = folder / "synthetic" / "synthetic_patches.json" if generation else None
            for cell in (c for c in cells if c.fold == fold["fold"]):
                needs = ([encoder_task] if cell.model == PATTENNET else []) + (generation if cell.ratio > 0 else [])
                tasks.append(self.cell_task(cell, fold, generator, synthetic, needs))
        n_cells = sum(t.kind == "cell" for t in tasks)
        where = f"on the Ray cluster at {self.address}" if self.address else f"{self.profile.workers} at a time"
        self.log(f"== {len(folds)} folds, {n_cells} cells, {len(tasks) - n_cells} NeoGen runs ({where})")

        def describe(task: Task, result: dict) -> str:
            if task.kind != "cell":
                return "done"
            metrics = Path(task.workdir) / "metrics.json"
            return f"AUC {json.loads(metrics.read_text())['roc_auc']:.3f}" if metrics.is_file() else "done"

        results = self._run(tasks, describe)
        rows = self.collect(cells, folds, results)
        from neonet_ext.study.report import write_report

        write_report(self.out, rows, self.profile, self.settings, self._write_cohort_summary(cohort, folds), self.log)
        missing = [r for r in rows if r["error"]]
        self.log(f"== study {'finished' if not missing else 'finished with ' + str(len(missing)) + ' failed cells'} "
                 f"in {(time.perf_counter() - start) / 60:.1f} min: {self.out}")
        return 1 if missing else 0

    def cohort_summary(self, datalist_file: Path, folds: Sequence[dict] = ()) -> dict[str, Any]:
        """Cohort figures for the report: size, PNI+ count and, for a synthetic cohort, the oracle AUC and
        the sign reader's AUC (mean over ``folds``: fit on each fold's training cases, scored on its test cases)."""
        items = json.loads(datalist_file.read_text())["training"]
        summary: dict[str, Any] = {"n_cases": len(items), "n_pni_positive": sum(int(i["pni"]) == 1 for i in items),
                                   "path": str(datalist_file.parent), "synthetic": False}
        table = datalist_file.parent / "cohort.csv"
        if table.is_file():
            import pandas as pd

            from neonet_ext.data.synthetic import IMAGING_SIGNS, sign_reader_auc
            from neonet_ext.roc import roc_auc

            latents = pd.read_csv(table, dtype={"case_id": str}).set_index("case_id")
            if len(latents) and "pni_risk" in latents:
                summary.update(synthetic=True, oracle_auc=roc_auc(latents["pni"], latents["pni_risk"]))
            if folds and len(latents) and set(IMAGING_SIGNS) <= set(latents.columns):
                per_fold = [sign_reader_auc(latents.loc[fold["train_cases"]], latents.loc[fold["test_cases"]])
                            for fold in folds]
                summary.update(_reader_figures("sign_reader", per_fold))
        if folds:
            summary.update(self._size_reader(folds))
            summary.update(self._latent_reader(folds))
        return summary

    @staticmethod
    def _size_reader(folds: Sequence[dict]) -> dict[str, Any]:
        """The tumour-size reader's AUC under the folds (see :func:`tumour_size_reader_auc`); nothing when the
        patches carry no tumour volumes."""
        from neonet_ext.study.statistics import tumour_size_reader_auc

        items = {item["case_id"]: item for item in folds[0]["all_items"]}
        per_fold = [tumour_size_reader_auc([items[c] for c in fold["train_cases"]], [items[c] for c in fold["test_cases"]])
                    for fold in folds]
        return {} if all(math.isnan(a) for a in per_fold) else _reader_figures("size_reader", per_fold)

    def _latent_reader(self, folds: Sequence[dict]) -> dict[str, Any]:
        """The latent region reader's AUC under the folds (see :func:`latent_region_reader_auc`), on the latents
        each fold's real-only PattenNet cell trained and was scored on; nothing before those cells ran."""
        from neonet_ext.study.statistics import latent_region_reader_auc

        per_fold = []
        for fold in folds:
            workdir = self.out / "cells" / Cell(fold["fold"], PATTENNET, 0.0).name
            try:
                train = load_patch_datalist(workdir / TRAINING_ITEMS, "training", required_keys=("pni", "latent"))
                test = load_patch_datalist(workdir / TEST_ITEMS, "testing", required_keys=("pni", "latent"))
            except (OSError, KeyError, ValueError):
                per_fold.append(float("nan"))
                continue
            per_fold.append(latent_region_reader_auc(train, test))
        return {} if all(math.isnan(a) for a in per_fold) else _reader_figures("latent_reader", per_fold)

    def collect(self, cells: Sequence[Cell], folds: Sequence[dict], results: dict[str, dict]) -> list[dict[str, Any]]:
        """One row per cell: its configuration, fold AUC, the per-patient scores and any error."""
        rows = []
        # every fold holds the same items: one volume per case for the whole grid
        volumes = {item["case_id"]: item.get("tumour_volume_ml") for fold in folds[:1] for item in fold.get("all_items", ())}
        for cell in cells:
            fold = folds[cell.fold]
            result = results.get(cell.name, {"error": "not run", "seconds": 0.0})
            workdir = self.out / "cells" / cell.name
            scores: dict[str, tuple[int, float]] = {}
            auc, error, n_synthetic = float("nan"), result["error"], None
            if not error:
                try:
                    with (workdir / "predictions.csv").open() as f:
                        scores = {r["case"]: (int(r["pni"]), float(r["pni_probability"])) for r in csv.DictReader(f)}
                    auc = json.loads((workdir / "metrics.json").read_text())["roc_auc"]
                except (OSError, KeyError, ValueError) as e:
                    error = f"no predictions: {e}"
                try:
                    n_synthetic = count_synthetic(workdir / TRAINING_ITEMS)
                except (OSError, KeyError, ValueError) as e:
                    error = error or f"unreadable {TRAINING_ITEMS}: {e}"
            rows.append({
                "fold": cell.fold, "model": cell.model, "variant": cell.variant, "ratio": cell.ratio,
                "auc": auc, "size_correlation": size_rank_correlation(scores, volumes), "n_train_real": fold["n_train"],
                # what the cell's training loaded, as it recorded it (None when it did not)
                "n_train_synthetic": n_synthetic,
                "n_test": fold["n_test"], "n_test_positive": fold["n_test_pos"],
                "seconds": round(float(result.get("seconds", 0.0)), 1), "error": error,
                "profile": self.profile.name, "patch_source": self.patch_source,
                "leaky_generator": self.shared_generator, "seed": self.profile.seed, "scores": scores,
            })
        return rows

