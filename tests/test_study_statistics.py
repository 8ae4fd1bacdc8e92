"""The study's statistics, grid, profiles and report logic, on scores whose answers are known."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from neonet_ext.roc import roc_auc
from neonet_ext.study import ABLATIONS, BASELINES, PATTENNET, load_profile, plan_cells
from neonet_ext.study.report import write_report
from neonet_ext.study.statistics import cross_validated_auc, holm, paired_bootstrap_test


def _fold(rng, n_pos, n_neg, separation, offset=0):
    labels = [1] * n_pos + [0] * n_neg
    scores = rng.normal(size=len(labels)) + separation * np.array(labels)
    return {f"case_{offset + i:03d}": (y, float(s)) for i, (y, s) in enumerate(zip(labels, scores))}


def test_cross_validated_auc_is_the_mean_of_the_fold_aucs_with_an_interval_around_it():
    rng = np.random.default_rng(1)
    folds = [_fold(rng, 5, 9, 1.0, 20 * k) for k in range(5)]
    mean, low, high = cross_validated_auc(folds, n_resamples=500)
    expected = np.mean([roc_auc([y for y, _ in f.values()], [s for _, s in f.values()]) for f in folds])
    assert mean == pytest.approx(expected)
    assert low < mean < high
    assert 0 <= low and high <= 1



def test_intervals_and_tests_are_the_ones_documented_figures_were_made_with():
    # computed with the bootstrap before the AUC was unified (pair counting; the same resamples)
    rng = np.random.default_rng(0)
    rng.integers(0, 2, 40), rng.normal(0, 1, 40)  # the draws of test_roc's example, for the same folds as pinned
    folds, folds_b = [], []
    for f in range(3):
        labels = rng.integers(0, 2, 15)
        a, b = np.round(labels + rng.normal(0, 1, 15), 1), np.round(labels * 0.5 + rng.normal(0, 1, 15), 1)
        folds.append({f"f{f}c{i}": (int(labels[i]), float(a[i])) for i in range(15)})
        folds_b.append({f"f{f}c{i}": (int(labels[i]), float(b[i])) for i in range(15)})
    expected = (0.8111904761904762, 0.659797619047619, 0.9183630952380951)
    assert cross_validated_auc(folds, 300, seed=1) == pytest.approx(expected, abs=1e-12)
    paired = paired_bootstrap_test(folds, folds_b, 300, seed=2)
    assert paired == pytest.approx({"difference": 0.18035714285714288, "ci95_low": -0.013071428571428522,
                                    "ci95_high": 0.37162797619047616, "p_value": 0.06666666666666667}, abs=1e-12)

def test_paired_test_separates_a_real_difference_from_none():
    rng = np.random.default_rng(2)
    folds = [_fold(rng, 8, 12, 0.0, 30 * k) for k in range(5)]
    perfect = [{c: (y, float(y) + 0.01 * i) for i, (c, (y, _)) in enumerate(f.items())} for f in folds]
    same = paired_bootstrap_test(folds, folds, n_resamples=300)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    better = paired_bootstrap_test(perfect, folds, n_resamples=300)
    assert better["difference"] > 0.3 and better["p_value"] < 0.05 and better["ci95_low"] > 0
    with pytest.raises(ValueError, match="same patients"):
        paired_bootstrap_test(folds, [_fold(rng, 8, 12, 0.0, 500 + k) for k in range(5)], n_resamples=10)


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm([0.01, float("nan")])[1])


def test_profiles_and_the_grid():
    quick = load_profile("quick")
    assert set(quick.models) == {*BASELINES, PATTENNET} and tuple(quick.ablations) == ABLATIONS  # the whole grid
    cells = plan_cells(quick.folds, quick.models, quick.ratios, quick.ablations, quick.ablation_ratio)
    assert len(cells) == 5 * (14 * 5 + 5)  # table 2's full PattenNet is table 1's cell at 100 %
    assert len({c.name for c in cells}) == len(cells)
    learning = load_profile("learning")  # quick's grid and networks on a larger, unseen cohort, 4x the updates
    assert set(learning.models) == set(quick.models) and tuple(learning.ablations) == ABLATIONS
    assert learning.cohort["cases"] >= 300 and learning.cohort["seed"] != 0  # seed 0 trains the shipped weights
    assert tuple(learning.patch_size) == tuple(quick.patch_size) and learning.autoencoder == quick.autoencoder
    updates = {name: p.classifier["epochs"] * p.classifier["train#trainer#epoch_length"]
               for name, p in (("quick", quick), ("learning", learning))}
    assert updates == {"quick": 16, "learning": 64}
    paper = load_profile("paper")
    assert paper.cohort["cases"] == 128 and tuple(paper.patch_size) == (64, 64, 32)
    with pytest.raises(FileNotFoundError, match="built-in ones are"):
        load_profile("no-such-profile")


def test_profile_files_are_checked(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"description": "x", "cohort": {}, "patch_size": [8, 8, 8], "epochs": 3}))
    with pytest.raises(ValueError, match="unknown keys"):
        load_profile(bad)
    bad.write_text(json.dumps({"description": "x", "cohort": {}, "patch_size": [8, 8, 8], "models": ["vgg16"]}))
    with pytest.raises(ValueError, match="unknown models"):
        load_profile(bad)


def _rows(profile, quality):
    """Rows of a finished grid whose per-patient scores separate the classes by ``quality[(model, variant, ratio)]``."""
    rng = np.random.default_rng(3)
    base = [_fold(rng, 6, 10, 0.0, 20 * k) for k in range(profile.folds)]
    rows = []
    for cell in plan_cells(profile.folds, profile.models, profile.ratios, profile.ablations, profile.ablation_ratio):
        q = quality.get((cell.model, cell.variant, cell.ratio), 0.0)
        scores = {c: (y, s + q * y) for c, (y, s) in base[cell.fold].items()}
        rows.append({"fold": cell.fold, "model": cell.model, "variant": cell.variant, "ratio": cell.ratio,
                     "auc": roc_auc([y for y, _ in scores.values()], [s for _, s in scores.values()]), "n_train_real": 64,
                     "n_train_synthetic": 0, "n_test": 16, "n_test_positive": 6, "seconds": 1.0, "error": "",
                     "profile": profile.name, "patch_source": "neoseg", "leaky_generator": False, "seed": 0,
                     "scores": scores})
    return rows


def test_report_says_reproduced_where_the_scores_show_it(tmp_path):
    profile = dataclasses.replace(load_profile("tiny"), models=("densenet121", "resnet50", PATTENNET), ratios=(0.0, 0.5, 1.0),
                                  ablations=("channel_only", "spatial_only"), folds=3, bootstrap_resamples=300)
    # PattenNet gets better with synthetic data and beats both baselines; spatial-only beats channel-only.
    quality = {(PATTENNET, "full", 0.0): 1.0, (PATTENNET, "full", 0.5): 2.5, (PATTENNET, "full", 1.0): 6.0,
               (PATTENNET, "spatial_only", 1.0): 2.0}
    settings = {"patch_source": "neoseg", "shared_generator": False}
    cohort = {"n_cases": 48, "n_pni_positive": 18, "synthetic": True, "oracle_auc": 0.9, "path": str(tmp_path)}
    paths = write_report(tmp_path, _rows(profile, quality), profile, settings, cohort, log=lambda _: None)
    summary = paths["summary.md"].read_text()
    lines = {line.split("|")[1].strip(): line for line in summary.splitlines() if line.startswith("| ") and "verdict" not in line}
    assert lines["synthetic patches help PattenNet (R+S 100% vs R)"].rstrip(" |").endswith("reproduced")
    assert "| reproduced |" in lines["PattenNet's AUC rises with the ratio"]
    assert "rank 1 of 3" in lines["PattenNet is the best model (R+S 100%)"]
    assert "| reproduced |" in lines["the full PattenNet beats every ablation"]
    assert "| reproduced |" in lines["spatial attention alone beats channel attention alone"]
    assert "synthetic-data results" in summary
    table = paths["auc_table.md"].read_text()
    assert "| PattenNet | " in table and "*seed: PattenNet* | 0.700 | 0.767 | 0.790 |" in table
    results = paths["results.csv"].read_text().splitlines()
    assert len(results) == 1 + 3 * (3 * 3 + 2)
    assert paths["roc_curves.png"].stat().st_size > 10_000


def test_report_puts_every_cell_beside_the_reference_readers(tmp_path):
    profile = dataclasses.replace(load_profile("tiny"), models=("densenet121", PATTENNET), ratios=(0.0, 1.0), ablations=(),
                                  folds=2, bootstrap_resamples=50)
    rows = _rows(profile, {(PATTENNET, "full", 0.0): 1.0, ("densenet121", "full", 1.0): 3.0})
    for row, correlation in zip((r for r in rows if r["model"] == PATTENNET and r["ratio"] == 0.0), (0.8, 1.0)):
        row["size_correlation"] = correlation
    cohort = {"n_cases": 32, "n_pni_positive": 12, "synthetic": True, "path": str(tmp_path),
              "sign_reader_auc": 0.8, "size_reader_auc": 0.64}
    paths = write_report(tmp_path, rows, profile, {"patch_source": "neoseg", "shared_generator": False}, cohort,
                         log=lambda _: None)
    table = paths["auc_table.md"].read_text()
    assert "| *reference: sign reader (exact imaging signs)* | 0.800 | 0.800 |" in table
    assert "| *reference: tumour-size reader* | 0.640 | 0.640 |" in table
    pattennet_r = np.mean([r["auc"] for r in rows if r["model"] == PATTENNET and r["ratio"] == 0.0])
    summary = paths["summary.md"].read_text()
    assert f"- R: PattenNet {pattennet_r:.3f} = {pattennet_r / 0.8:.2f} x the sign reader (exact imaging signs), " \
           f"{pattennet_r / 0.64:.2f} x the tumour-size reader (the best model); its scores' rank correlation with " \
           "the tumour volume 0.900 (mean over the folds)." in summary
    assert [r.split(",")[6] for r in paths["results.csv"].read_text().splitlines()[:3]] == ["size_correlation", "", ""]
    assert "- R+S 100%: PattenNet " in summary and "DenseNet-121" in summary.split("- R+S 100%:")[1]


def test_size_rank_correlation_of_a_cell_s_scores():
    from neonet_ext.study.statistics import size_rank_correlation

    scores = {"a": (0, 0.1), "b": (1, 0.5), "c": (1, 0.9)}
    assert size_rank_correlation(scores, {"a": 1.0, "b": 4.0, "c": 30.0}) == pytest.approx(1.0)
    assert size_rank_correlation(scores, {"a": 30.0, "b": 4.0, "c": 1.0}) == pytest.approx(-1.0)
    assert size_rank_correlation(scores, {"a": 4.0, "b": 1.0, "c": 30.0}) == pytest.approx(0.5)
    assert np.isnan(size_rank_correlation(scores, {"a": 1.0, "b": 4.0}))  # a case without a volume
    assert np.isnan(size_rank_correlation({c: (0, 0.5) for c in "abc"}, {"a": 1.0, "b": 4.0, "c": 30.0}))


def test_the_tumour_size_reader_ranks_by_the_size_its_training_cases_tie_to_pni():
    from neonet_ext.study.statistics import tumour_size_reader_auc

    def items(volumes, labels):
        return [{"tumour_volume_ml": v, "pni": y} for v, y in zip(volumes, labels)]

    train = items([1, 2, 3, 20, 30, 40], [0, 0, 0, 1, 1, 1])
    test = items([5, 50, 2, 10], [0, 1, 0, 1])
    assert tumour_size_reader_auc(train, test) == 1.0
    # the sign of the fit counts: where small tumours are the PNI+ ones, the same test cases rank the other way
    assert tumour_size_reader_auc(items([1, 2, 3, 20, 30, 40], [1, 1, 1, 0, 0, 0]), test) == 0.0
    assert np.isnan(tumour_size_reader_auc(train, items([5, 50], [1, 1])))
    assert np.isnan(tumour_size_reader_auc(train, [{"pni": 0}, {"pni": 1, "tumour_volume_ml": 3.0}]))


def test_report_marks_missing_cells_and_leaky_generators(tmp_path):
    profile = dataclasses.replace(load_profile("tiny"), bootstrap_resamples=100)
    rows = _rows(profile, {})
    rows[0].update(error="RuntimeError: out of memory", scores={}, auc=float("nan"))
    settings = {"patch_source": "ground_truth", "shared_generator": True}
    cohort = {"n_cases": 16, "n_pni_positive": 6, "synthetic": False, "path": str(tmp_path)}
    paths = write_report(tmp_path, rows, profile, settings, cohort, log=lambda _: None)
    assert "LEAKY" in paths["auc_table.md"].read_text() and "LEAKY" in paths["summary.md"].read_text()
    assert (rows[0]["model"], rows[0]["ratio"]) == ("densenet121", 0.0)
    assert "| DenseNet-121 | — |" in paths["auc_table.md"].read_text()  # a fold missing: no mean for that cell
    assert "failed: densenet121 fold 0" in paths["summary.md"].read_text()
    assert "synthetic-data results" not in paths["summary.md"].read_text()


def test_the_latent_region_reader_finds_a_contrast_that_tumour_size_does_not_show(tmp_path):
    """Every tumour has the same size; PNI lies in one latent channel's contrast between the tumour's rim and
    the far liver, as the halo would. The linear reader of the region means finds it; fit on flipped labels
    it ranks the same test patients the other way; entries without region fractions give no figure."""
    import torch

    from neonet_ext.study.statistics import latent_region_reader_auc

    rng = np.random.default_rng(0)
    regions = torch.zeros(2, 8, 8, 8)
    regions[0] = 1.0  # tissue everywhere
    regions[1, 3:5, 3:5, 3:5] = 1.0  # the same tumour in every patch
    rim = torch.zeros(8, 8, 8, dtype=torch.bool)
    rim[2:6, 2:6, 2:6] = True
    rim &= regions[1] == 0

    def items(labels, name, with_regions=True):
        out = []
        for i, y in enumerate(labels):
            mu = torch.as_tensor(rng.normal(0.0, 0.3, (4, 8, 8, 8)), dtype=torch.float32)
            mu[1][rim] += float(y) + float(rng.normal(0.0, 0.3))
            entry = {"mu": mu, "regions": regions} if with_regions else {"mu": mu}
            path = tmp_path / f"{name}_{i}-identity.pt"
            torch.save(entry, path)
            out.append({"pni": int(y), "latent": [str(path)]})
        return out

    labels = [0, 1] * 15
    train, test = items(labels, "train"), items([0, 1] * 10, "test")
    assert latent_region_reader_auc(train, test) > 0.9
    flipped = [dict(item, pni=1 - item["pni"]) for item in train]
    assert latent_region_reader_auc(flipped, test) < 0.1
    assert np.isnan(latent_region_reader_auc(train, items([0, 1], "bare", with_regions=False)))
    assert np.isnan(latent_region_reader_auc(train[:3], test))  # fewer than two training cases of a class
