"""The study's report: results.csv, the seed's two tables with intervals, paired tests, ROC curves, a summary.

Every figure is the mean of the five fold AUCs with a 95% patient-bootstrap interval
(:mod:`neonet_ext.study.statistics`). The summary compares each of the seed's findings with
this run and says plainly whether it was reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neonet_ext.study.grid import (
    PATTENNET,
    SEED_ABLATION_AUC,
    SEED_AUC,
    SEED_MEAN_AUC,
    ratio_label,
)
from neonet_ext.study.profiles import StudyProfile
from neonet_ext.study.statistics import (
    bootstrap_mean_aucs,
    bootstrap_p_value,
    cross_validated_auc,
    holm,
    paired_bootstrap_test,
)
from neonet_ext.utils.io import atomic_path, atomic_write
from neonet_ext.utils.tables import csv_text, write_csv

__all__ = ["StudyResults", "write_report"]

_ROW_COLUMNS = ("fold", "model", "variant", "ratio", "ratio_label", "auc", "size_correlation", "n_train_real",
                "n_train_synthetic", "n_test", "n_test_positive", "seconds", "profile", "patch_source", "leaky_generator",
                "seed", "error")
_DISPLAY = {PATTENNET: "PattenNet", "swin-transformer": "SwinTransformer"}
_VARIANTS = {"full": "PattenNet (2 DABs)", "channel_only": "channel attention only", "spatial_only": "spatial attention only",
             "blocks_0": "0 blocks (LDM encoder)", "blocks_1": "1 block", "blocks_3": "3 blocks"}


def _name(model: str) -> str:
    if model in _DISPLAY:
        return _DISPLAY[model]
    for prefix, shown in (("resnet", "ResNet-"), ("densenet", "DenseNet-")):
        if model.startswith(prefix):
            return shown + model[len(prefix):]
    if model.startswith("efficientnet-"):
        return "EfficientNet-" + model.split("-", 1)[1].upper()
    return model


def _fmt(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.3f}"


def _p(value: float) -> str:
    return "—" if math.isnan(value) else ("<0.001" if value < 0.001 else f"{value:.3f}")


class StudyResults:
    """The cells' per-patient scores, grouped for the tables and tests.

    Args:
        rows: one row per cell (see :meth:`neonet_ext.study.runner.Study.collect`), with ``scores``.
        n_folds: the folds of the study.
        n_resamples: bootstrap resamples.
        seed: bootstrap seed.
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]], n_folds: int, n_resamples: int = 2000, seed: int = 0) -> None:
        self.rows = list(rows)
        self.n_folds = n_folds
        self.n_resamples = n_resamples
        self.seed = seed
        self.folds: dict[tuple[str, str, float], list[dict]] = {}
        for row in self.rows:
            key = (row["model"], row["variant"], float(row["ratio"]))
            self.folds.setdefault(key, [None] * n_folds)[row["fold"]] = row["scores"] if not row["error"] else None

    def complete(self, key: tuple[str, str, float]) -> bool:
        folds = self.folds.get(key)
        return bool(folds) and all(f for f in folds)

    def cv_auc(self, keys: Sequence[tuple[str, str, float]]) -> tuple[np.ndarray, np.ndarray]:
        """Mean fold AUC (per key) and its bootstrap samples (keys x resamples), all on the same resamples."""
        return bootstrap_mean_aucs([[self.folds[k][f] for k in keys] for f in range(self.n_folds)], self.n_resamples, self.seed)

    def estimate(self, key: tuple[str, str, float]) -> tuple[float, float, float]:
        """(mean AUC, 2.5th, 97.5th percentile); NaNs for a cell with a missing fold."""
        if not self.complete(key):
            return (math.nan,) * 3
        return cross_validated_auc(self.folds[key], self.n_resamples, seed=self.seed)

    def mean_over(self, keys: Sequence[tuple[str, str, float]]) -> tuple[float, float, float, np.ndarray]:
        """Mean over ``keys`` of their AUCs with an interval, and the samples of that mean."""
        keys = [k for k in keys if self.complete(k)]
        if not keys:
            return math.nan, math.nan, math.nan, np.array([])
        point, samples = self.cv_auc(keys)
        mean = samples.mean(axis=0)
        low, high = np.percentile(mean, [2.5, 97.5])
        return float(point.mean()), float(low), float(high), mean

    def test(self, a: tuple[str, str, float], b: tuple[str, str, float]) -> dict[str, float]:
        """Paired bootstrap of AUC(a) - AUC(b); NaNs when a cell is incomplete."""
        if not (self.complete(a) and self.complete(b)):
            return {"difference": math.nan, "ci95_low": math.nan, "ci95_high": math.nan, "p_value": math.nan}
        return paired_bootstrap_test(self.folds[a], self.folds[b], self.n_resamples, self.seed)


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _results_csv(rows: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The results table (one row per fold, model, variant and ratio) and the per-case scores, as CSV text;
    floats as Python writes them, AUCs with 4 decimals and probabilities with 6."""
    main = csv_text(_ROW_COLUMNS, ({**row, "ratio_label": ratio_label(row["ratio"]),
                                    "auc": None if math.isnan(row["auc"]) else f"{row['auc']:.4f}",
                                    "size_correlation": _optional(row.get("size_correlation"))} for row in rows),
                    float_format="{}")
    scores = csv_text(["fold", "model", "variant", "ratio", "case", "pni", "pni_probability"],
                      ({"fold": row["fold"], "model": row["model"], "variant": row["variant"], "ratio": row["ratio"],
                        "case": case, "pni": label, "pni_probability": f"{p:.6f}"}
                       for row in rows for case, (label, p) in sorted(row["scores"].items())),
                      float_format="{}")
    return main, scores


def _optional(value: float | None, digits: int = 3) -> str | None:
    return None if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _mean_size_correlation(results: StudyResults, model: str, ratio: float) -> float:
    values = [r.get("size_correlation") for r in results.rows
              if (r["model"], r["variant"], r["ratio"]) == (model, "full", ratio) and not r["error"]]
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _cell_text(estimate: tuple[float, float, float]) -> str:
    mean, low, high = estimate
    return "—" if math.isnan(mean) else f"{mean:.3f} ({low:.2f}–{high:.2f})"


#: the cohort summary's reference readers: key -> row name in Table 1 and the summary
_REFERENCES = {"sign_reader_auc": "sign reader (exact imaging signs)", "size_reader_auc": "tumour-size reader",
               "latent_reader_auc": "latent region reader (linear, PattenNet's frozen latent)"}


def references(cohort: Mapping[str, Any]) -> dict[str, float]:
    """The reference readers the cohort summary holds (mean fold AUC under the study's folds), by row name."""
    return {name: float(cohort[key]) for key, name in _REFERENCES.items() if cohort.get(key) is not None}


def auc_table(results: StudyResults, models: Sequence[str], ratios: Sequence[float],
              reference_aucs: Mapping[str, float] | None = None) -> str:
    """Table 1 in markdown: models x ratios, mean AUC (95% CI), with the reference readers (scored on the
    same folds; they train on real patients only, so one value fills each row) and the seed's published rows."""
    header = "| model | " + " | ".join(ratio_label(r) for r in ratios) + " |\n|---|" + "---|" * len(ratios) + "\n"
    lines = [f"| {_name(m)} | " + " | ".join(_cell_text(results.estimate((m, "full", r))) for r in ratios) + " |"
             for m in models]
    means = [results.mean_over([(m, "full", r) for m in models]) for r in ratios]
    lines.append("| **mean over models** | " + " | ".join(_cell_text(m[:3]) for m in means) + " |")
    for name, value in (reference_aucs or {}).items():
        lines.append(f"| *reference: {name}* | " + " | ".join(_fmt(value) for _ in ratios) + " |")
    for model, values in SEED_AUC.items():
        if model in models:
            lines.append(f"| *seed: {_name(model)}* | " + " | ".join(_fmt(values.get(r, math.nan)) for r in ratios) + " |")
    lines.append("| *seed: mean over models* | " + " | ".join(_fmt(SEED_MEAN_AUC.get(r, math.nan)) for r in ratios) + " |")
    return header + "\n".join(lines) + "\n"


def ablation_table(results: StudyResults, variants: Sequence[str], ratio: float) -> str:
    """Table 2 in markdown: PattenNet's variants at ``ratio``, ours (95% CI) next to the seed's."""
    lines = ["| variant | AUC (95% CI) | seed |", "|---|---|---|"]
    for variant in ("full", *variants):
        lines.append(f"| {_VARIANTS[variant]} | {_cell_text(results.estimate((PATTENNET, variant, ratio)))} | "
                     f"{_fmt(SEED_ABLATION_AUC.get(variant, math.nan))} |")
    return "\n".join(lines) + "\n"


def paired_tests(results: StudyResults, models: Sequence[str], ratios: Sequence[float], variants: Sequence[str],
                 ablation_ratio: float) -> list[dict[str, Any]]:
    """The three families of paired tests, each Holm-adjusted within itself."""
    families: dict[str, list[dict[str, Any]]] = {"PattenNet vs baseline": [], "R+S vs R": [], "ablation vs full": []}
    if PATTENNET in models:
        for r in ratios:
            for m in models:
                if m != PATTENNET:
                    families["PattenNet vs baseline"].append(
                        {"a": (PATTENNET, "full", r), "b": (m, "full", r), "what": f"PattenNet − {_name(m)}, {ratio_label(r)}"})
    if 0.0 in ratios:
        for m in models:
            for r in ratios:
                if r > 0:
                    families["R+S vs R"].append(
                        {"a": (m, "full", r), "b": (m, "full", 0.0), "what": f"{_name(m)}: {ratio_label(r)} − R"})
    for v in variants:
        families["ablation vs full"].append(
            {"a": (PATTENNET, v, ablation_ratio), "b": (PATTENNET, "full", ablation_ratio), "what": f"{_VARIANTS[v]} − full"})
    rows = []
    for family, tests in families.items():
        for t in tests:
            t.update(results.test(t["a"], t["b"]), family=family)
        for t, adjusted in zip(tests, holm([t["p_value"] for t in tests])):
            t["p_holm"] = adjusted
        rows += tests
    return rows


def tests_markdown(tests: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for family in dict.fromkeys(t["family"] for t in tests):
        lines += [f"\n### {family}\n", "| comparison | AUC difference (95% CI) | p | p (Holm) |", "|---|---|---|---|"]
        for t in (t for t in tests if t["family"] == family):
            diff = "—" if math.isnan(t["difference"]) else f"{t['difference']:+.3f} ({t['ci95_low']:+.2f} to {t['ci95_high']:+.2f})"
            lines.append(f"| {t['what']} | {diff} | {_p(t['p_value'])} | {_p(t['p_holm'])} |")
    return "\n".join(lines) + "\n"


def plot_roc_curves(results: StudyResults, models: Sequence[str], ratios: Sequence[float], variants: Sequence[str],
                    ablation_ratio: float, path: Path) -> None:
    """ROC curves of the pooled held-out predictions: every model at R and at the largest ratio, and the ablations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    panels = [(f"table 1, {ratio_label(r)}", [((m, "full", r), _name(m)) for m in models]) for r in dict.fromkeys((0.0, max(ratios)))
              if r in ratios]
    if variants:
        panels.append((f"table 2, {ratio_label(ablation_ratio)}",
                       [((PATTENNET, v, ablation_ratio), _VARIANTS[v]) for v in ("full", *variants)]))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), squeeze=False)
    colours = plt.get_cmap("tab20")
    for ax, (title, curves) in zip(axes[0], panels):
        ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
        for i, (key, label) in enumerate(curves):
            if not results.complete(key):
                continue
            pooled = [v for fold in results.folds[key] for v in fold.values()]
            fpr, tpr, _ = roc_curve([y for y, _ in pooled], [p for _, p in pooled])
            mean = results.estimate(key)[0]
            bold = key[0] == PATTENNET and key[1] == "full"
            ax.plot(fpr, tpr, color="black" if bold else colours(i % 20), linewidth=2.2 if bold else 1.0,
                    label=f"{label} ({mean:.2f})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("1 − specificity")
        ax.set_ylabel("sensitivity")
        ax.set_aspect("equal")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=6.5)
    fig.suptitle("Held-out predictions pooled over the folds (legend: mean fold AUC)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _verdict(difference: float, p_value: float, expected_sign: int = 1) -> str:
    if math.isnan(difference):
        return "not measured (cells missing)"
    if difference * expected_sign > 0:
        return "reproduced" if p_value < 0.05 else "same direction, not significant (p = " + _p(p_value) + ")"
    return "not reproduced"


def summary_markdown(results: StudyResults, tests: Sequence[Mapping[str, Any]], profile: StudyProfile,
                     settings: Mapping[str, Any], cohort: Mapping[str, Any]) -> str:
    """The plain-language comparison with the seed's findings."""
    models, ratios = list(profile.models), list(profile.ratios)
    top = max(ratios)
    lines = ["# Study summary", ""]
    data = (f"a synthetic cohort made by this project ({cohort['n_cases']} cases, {cohort['n_pni_positive']} PNI+"
            + (f"; oracle AUC of the generator's latent risk {cohort['oracle_auc']:.3f}, the best any model could reach"
               if "oracle_auc" in cohort else "")
            + (f"; a logistic reader of the exact imaging signs, fit on each fold's training cases, reaches "
               f"{cohort['sign_reader_auc']:.3f}, a reference for what the images allow" if "sign_reader_auc" in cohort else "")
            + ")") if cohort.get("synthetic") else \
        f"the cohort at {cohort['path']} ({cohort['n_cases']} cases, {cohort['n_pni_positive']} PNI+)"
    lines += [
        f"Profile `{profile.name}` ({profile.description}); data: {data}. Patches from "
        f"{'NeoSeg segmentations' if settings['patch_source'] == 'neoseg' else 'the ground-truth labels'}, "
        f"{'x'.join(map(str, profile.patch_size))} voxels; {profile.folds}-fold patient-level stratified cross-validation; "
        f"NeoGen trained {'ONCE ON ALL PATIENTS (shared generator): these results are LEAKY, the generator and PattenNet encoder saw the test patients' if settings['shared_generator'] else 'per fold on that fold’s training patients only'}.",
        "",
    ]
    if cohort.get("synthetic"):
        lines += ["These are synthetic-data results. The seed's figures come from 128 patients of its own; "
                  "agreement or disagreement here says how the method behaves on this project's phantoms at this budget, "
                  "not whether the seed's clinical findings hold.", ""]
    lines += ["| seed finding | seed | this run | verdict |", "|---|---|---|---|"]

    if PATTENNET in models and 0.0 in ratios:
        t = results.test((PATTENNET, "full", top), (PATTENNET, "full", 0.0))
        seed_diff = SEED_AUC[PATTENNET][top] - SEED_AUC[PATTENNET][0.0] if top in SEED_AUC[PATTENNET] else math.nan
        ours = results.estimate((PATTENNET, "full", top))[0], results.estimate((PATTENNET, "full", 0.0))[0]
        lines.append(f"| synthetic patches help PattenNet ({ratio_label(top)} vs R) | {_fmt(SEED_AUC[PATTENNET].get(top))} vs "
                     f"{_fmt(SEED_AUC[PATTENNET][0.0])} ({seed_diff:+.3f}) | {_fmt(ours[0])} vs {_fmt(ours[1])} "
                     f"({t['difference']:+.3f}, p {_p(t['p_value'])}) | {_verdict(t['difference'], t['p_value'])} |")
        r_values = [results.estimate((PATTENNET, "full", r))[0] for r in ratios]
        if not any(math.isnan(v) for v in r_values) and len(ratios) > 2:
            from scipy.stats import spearmanr

            rho = float(spearmanr(ratios, r_values).statistic)
            monotone = all(b > a for a, b in zip(r_values, r_values[1:]))
            verdict = "reproduced" if monotone else "partly (rises overall, not at every step)" if rho > 0 else "not reproduced"
            lines.append("| PattenNet's AUC rises with the ratio | " + ", ".join(_fmt(SEED_AUC[PATTENNET].get(r)) for r in ratios)
                         + " | " + ", ".join(_fmt(v) for v in r_values) + f" (Spearman {rho:+.2f}) | {verdict} |")
    if 0.0 in ratios and len(models) > 1:
        a = results.mean_over([(m, "full", top) for m in models])
        b = results.mean_over([(m, "full", 0.0) for m in models])
        if len(a[3]) and len(b[3]):
            p = bootstrap_p_value(a[3] - b[3])
            diff = a[0] - b[0]
            lines.append(f"| synthetic patches help on average over models | {_fmt(SEED_MEAN_AUC.get(top))} vs {_fmt(SEED_MEAN_AUC[0.0])} | "
                         f"{_fmt(a[0])} vs {_fmt(b[0])} ({diff:+.3f}, p {_p(p)}) | {_verdict(diff, p)} |")
    if PATTENNET in models and len(models) > 1:
        estimates = {m: results.estimate((m, "full", top))[0] for m in models}
        measured = sorted((m for m in models if not math.isnan(estimates[m])), key=lambda m: -estimates[m])
        seed_text = f"PattenNet best ({_fmt(SEED_AUC[PATTENNET].get(top))}; mean over models {_fmt(SEED_MEAN_AUC.get(top))})"
        if PATTENNET in measured:
            rank = measured.index(PATTENNET) + 1
            beaten = [t for t in tests if t["family"] == "PattenNet vs baseline" and t["b"][2] == top]
            significant = sum(1 for t in beaten if t["difference"] > 0 and t["p_holm"] < 0.05)
            verdict = ("reproduced" if rank == 1 and significant == len(beaten) else
                       "best, not significantly" if rank == 1 else "not reproduced")
            lines.append(f"| PattenNet is the best model ({ratio_label(top)}) | {seed_text} | rank {rank} of {len(measured)} "
                         f"(best: {_name(measured[0])} {_fmt(estimates[measured[0]])}); better than {significant} of "
                         f"{len(beaten)} baselines after Holm | {verdict} |")
        else:
            lines.append(f"| PattenNet is the best model ({ratio_label(top)}) | {seed_text} | — | not measured (cells missing) |")
    variants = list(profile.ablations)
    if variants:
        ar = profile.ablation_ratio
        est = {v: results.estimate((PATTENNET, v, ar))[0] for v in ("full", *variants)}
        if not any(math.isnan(x) for x in est.values()):
            best = max(est, key=est.get)
            lines.append(f"| the full PattenNet beats every ablation | full {SEED_ABLATION_AUC['full']:.3f}, next "
                         f"{max(v for k, v in SEED_ABLATION_AUC.items() if k != 'full'):.3f} | full {_fmt(est['full'])}, "
                         f"best: {_VARIANTS[best]} {_fmt(est[best])} | {'reproduced' if best == 'full' else 'not reproduced'} |")
            if {"channel_only", "spatial_only"} <= set(variants):
                t = results.test((PATTENNET, "spatial_only", ar), (PATTENNET, "channel_only", ar))
                lines.append(f"| spatial attention alone beats channel attention alone | {SEED_ABLATION_AUC['spatial_only']:.3f} vs "
                             f"{SEED_ABLATION_AUC['channel_only']:.3f} | {_fmt(est['spatial_only'])} vs {_fmt(est['channel_only'])} "
                             f"(p {_p(t['p_value'])}) | {_verdict(t['difference'], t['p_value'])} |")
            blocks = [v for v in ("blocks_0", "blocks_1", "full", "blocks_3") if v in est]
            if len(blocks) == 4:
                best_blocks = max(blocks, key=est.get)
                lines.append("| two blocks are the best depth (0/1/2/3) | " + ", ".join(
                    f"{SEED_ABLATION_AUC[v]:.3f}" for v in blocks) + " | " + ", ".join(_fmt(est[v]) for v in blocks)
                    + f" | {'reproduced' if best_blocks == 'full' else 'not reproduced'} |")
    lines += _beside_the_references(results, models, ratios, references(cohort))
    failed = [r for r in results.rows if r["error"]]
    lines += ["", f"Cells: {len(results.rows) - len(failed)} of {len(results.rows)} finished"
              + (f"; failed: {', '.join(sorted({r['model'] + ' fold ' + str(r['fold']) for r in failed})[:8])}" if failed else "") + ".",
              "'reproduced' means the same direction with p < 0.05 (paired patient bootstrap of the mean fold AUC); "
              "rankings are of point estimates. See auc_table.md, ablation_table.md and tests.md."]
    return "\n".join(lines) + "\n"


def _beside_the_references(results: StudyResults, models: Sequence[str], ratios: Sequence[float],
                           reference_aucs: Mapping[str, float]) -> list[str]:
    """PattenNet and the best model of each end of the grid as fractions of each reference reader."""
    if not reference_aucs or PATTENNET not in models:
        return []
    lines = ["", "Beside the reference readers (scored on the same test patients of the same folds; "
             + "; ".join(f"{name} {_fmt(value)}" for name, value in reference_aucs.items()) + "):"]
    for ratio in sorted({0.0, max(ratios)} & set(ratios)):
        estimates = {m: results.estimate((m, "full", ratio))[0] for m in models}
        measured = [m for m in models if not math.isnan(estimates[m])]
        if PATTENNET not in measured:
            continue
        best = max(measured, key=estimates.get)
        shown = [PATTENNET] + ([best] if best != PATTENNET else [])
        lines.append(f"- {ratio_label(ratio)}: " + "; ".join(
            f"{_name(m)} {_fmt(estimates[m])} = " + ", ".join(f"{estimates[m] / value:.2f} x the {name}"
                                                              for name, value in reference_aucs.items())
            + (" (the best model)" if m == best else "")
            + (f"; its scores' rank correlation with the tumour volume {_fmt(rho)} (mean over the folds)"
               if not math.isnan(rho := _mean_size_correlation(results, m, ratio)) else "")
            for m in shown) + ".")
    return lines


def write_report(out_dir: Path, rows: Sequence[Mapping[str, Any]], profile: StudyProfile, settings: Mapping[str, Any],
                 cohort: Mapping[str, Any], log: Callable[[str], None] = print) -> dict[str, Path]:
    """Write every report file under ``out_dir``; return their paths by name."""
    out_dir = Path(out_dir)
    results = StudyResults(rows, profile.folds, profile.bootstrap_resamples, profile.seed)
    models, ratios, variants = list(profile.models), list(profile.ratios), list(profile.ablations)
    leaky = " — LEAKY: shared generator" if settings["shared_generator"] else ""
    paths = {name: out_dir / name for name in ("results.csv", "predictions.csv", "auc_table.md", "ablation_table.md",
                                               "tests.md", "tests.csv", "roc_curves.png", "summary.md")}
    main_csv, scores_csv = _results_csv(rows)
    _write_text(paths["results.csv"], main_csv)
    _write_text(paths["predictions.csv"], scores_csv)
    note = (f"Mean AUC over {profile.folds} folds (95% CI, bootstrap over patients); profile `{profile.name}`, "
            f"patches from {settings['patch_source']}{leaky}.\n\n")
    _write_text(paths["auc_table.md"], f"# Table 1: models x training data{leaky}\n\n" + note
                + auc_table(results, models, ratios, references(cohort)))
    if variants:
        _write_text(paths["ablation_table.md"], f"# Table 2: PattenNet ablation, {ratio_label(profile.ablation_ratio)}{leaky}\n\n"
                    + note + ablation_table(results, variants, profile.ablation_ratio))
    tests = paired_tests(results, models, ratios, variants, profile.ablation_ratio)
    _write_text(paths["tests.md"], f"# Paired bootstrap tests{leaky}\n\nDifferences of mean fold AUC on the same patients; "
                f"p two-sided; Holm's adjustment within each family.\n" + tests_markdown(tests))
    write_csv(paths["tests.csv"], ["family", "comparison", "difference", "ci95_low", "ci95_high", "p_value", "p_holm"],
              ({**t, "comparison": t["what"]} for t in tests), float_format="{:.4f}")
    plot_roc_curves(results, models, ratios, variants, profile.ablation_ratio, paths["roc_curves.png"])
    _write_text(paths["summary.md"], summary_markdown(results, tests, profile, settings, cohort))
    for name in ("auc_table.md", "ablation_table.md", "summary.md"):
        if paths[name].is_file():
            log(paths[name].read_text())
    log("report: " + ", ".join(str(p) for p in paths.values() if p.is_file()))
    return paths
