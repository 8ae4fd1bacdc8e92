"""Per-case PNI probabilities and the figures of a classifier's evaluation, written at the end of a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from neonet_ext.metrics import expected_calibration_error
from neonet_ext.roc import bootstrap_auc
from neonet_ext.utils.io import atomic_write
from neonet_ext.utils.tables import write_csv


class ClassificationReport:
    """Collect ``(case, probability of class 1, label)`` from an evaluator; write the report when it completes.

    Reads ``engine.state.output`` (decollated: one dictionary per case with ``pred``, the
    softmax probabilities (2,), and ``label``, an index or a one-hot (2,)) and the case ids
    under ``case_key`` of ``engine.state.batch``. At completion it writes, atomically, under
    ``output_dir``: ``predictions.csv`` (``case``, ``pni_probability``, ``pni``),
    ``metrics.json`` (ROC AUC with a bootstrap 95% CI, expected calibration error, accuracy at
    0.5, counts) and ``reliability.png`` (observed PNI rate per probability bin), and prints
    the figures.

    Args:
        output_dir: folder of the report.
        case_key: batch key of the case ids.
        n_bins: probability bins of the calibration error and the plot.
        n_resamples: bootstrap resamples of the AUC interval (0: no interval, NaN bounds).
        seed: bootstrap seed.
        plot: write ``reliability.png`` (off where many small evaluations run, as in the study).
    """

    def __init__(
        self,
        output_dir: str | Path,
        case_key: str = "case_id",
        n_bins: int = 10,
        n_resamples: int = 2000,
        seed: int = 0,
        plot: bool = True,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.case_key = case_key
        self.n_bins = n_bins
        self.n_resamples = n_resamples
        self.seed = seed
        self.plot = plot
        self.rows: list[tuple[str, float, int]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, lambda _: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def collect(self, engine: Engine) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        batch = engine.state.batch
        cases = batch.get(self.case_key) if isinstance(batch, dict) else [item.get(self.case_key) for item in batch]
        cases = list(cases) if cases is not None else [None] * len(outputs)
        for case, out in zip(cases, outputs):
            label = torch.as_tensor(out["label"]).flatten()
            label_index = int(label.argmax()) if label.numel() > 1 else int(label.item())
            probability = float(torch.as_tensor(out["pred"]).flatten()[1])
            self.rows.append((str(case if case is not None else len(self.rows)), probability, label_index))

    def figures(self) -> dict[str, float | int]:
        labels = np.array([r[2] for r in self.rows])
        probabilities = np.array([r[1] for r in self.rows])
        auc, low, high = bootstrap_auc(labels, probabilities, self.n_resamples, seed=self.seed)
        return {
            "n_cases": len(self.rows), "n_positive": int(labels.sum()),
            "roc_auc": auc, "roc_auc_ci95_low": low, "roc_auc_ci95_high": high,
            "expected_calibration_error": expected_calibration_error(labels, probabilities, self.n_bins),
            "accuracy_at_0.5": float(((probabilities >= 0.5) == labels).mean()),
        }

    def write(self, engine: Engine | None = None) -> dict[str, float | int]:
        figures = self.figures()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_csv(self.output_dir / "predictions.csv", ["case", "pni_probability", "pni"],
                  ({"case": case, "pni_probability": p, "pni": y} for case, p, y in self.rows))
        atomic_write(self.output_dir / "metrics.json", lambda tmp: tmp.write_text(json.dumps(figures, indent=2) + "\n"))
        if self.plot:
            self.plot_reliability(self.output_dir / "reliability.png")
        print(
            f"ROC AUC {figures['roc_auc']:.3f} (95% CI {figures['roc_auc_ci95_low']:.3f}-{figures['roc_auc_ci95_high']:.3f}), "
            f"ECE {figures['expected_calibration_error']:.3f}, {figures['n_cases']} cases ({figures['n_positive']} PNI+); "
            f"report in {self.output_dir}",
            flush=True,
        )
        return figures

    def plot_reliability(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from neonet_ext.utils.io import atomic_path

        labels = np.array([r[2] for r in self.rows], dtype=float)
        probabilities = np.array([r[1] for r in self.rows])
        bins = np.clip((probabilities * self.n_bins).astype(int), 0, self.n_bins - 1)
        centres, observed, counts = [], [], []
        for b in range(self.n_bins):
            members = bins == b
            if members.any():
                centres.append(probabilities[members].mean())
                observed.append(labels[members].mean())
                counts.append(int(members.sum()))
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
        ax.plot(centres, observed, marker="o", color="#1f77b4", label="model")
        for x, y, n in zip(centres, observed, counts):
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.set_xlabel("predicted PNI probability (bin mean)")
        ax.set_ylabel("observed PNI rate")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
