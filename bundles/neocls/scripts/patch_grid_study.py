"""Does a finer TLCR grid than NeoSeg's 2 x 2 x 3 mm make the PNI signs more readable? (issue 20, item 3)

    python bundles/neocls/scripts/patch_grid_study.py --out output/patch_grid \\
        --train output/neocls_size/train/cohort --train_cases 300 \\
        --heldout output/neocls_heldout/seed_1001/cohort output/neocls_heldout/seed_1002/cohort

For every case of an existing synthetic cohort (``cohort.csv``, ``imagesTr``, ``labelsTr``:
``python -m neonet_ext.data.synthetic``) ground-truth TLCR patches are cut with NeoSeg's own
loading on each grid (``neonet_ext.study.patch_grid.GridPatchCutter``): 2 x 2 x 3 mm with
today's 64 x 64 x 32 crop, 1 x 1 x 2 mm with 128 x 128 x 48 (the same 128 x 128 x 96 mm field
of view) and, unless ``--no_native``, the input's own grid (crop sized per case to that field
of view). The patches are cached under ``OUT/patches/<grid>/`` (about 6.5 MiB a case for the three
grids; a rerun cuts only the cases not there) and each is reduced to interpretable features of the
signs the generator paints (``neonet_ext.study.patch_grid.patch_features``, recomputed every run).

Per grid it reports the Spearman correlation of each feature with the true sign it reads
(``cohort.csv``; all cases, training and held-out), the held-out ROC AUC (bootstrap 95% CI) of a
logistic regression on the features fit on the training cases, next to ``sign_reader_auc`` (the
exact signs, same cases), and the cost: voxels per patch, bytes per patch (float32, 2
channels) and the measured seconds to cut and featurise one case (reading the volume is
shared by the grids and counted to each).

The tracks are labelled liver and a simple filter cannot tell them from the vessels, so they are
also measured where they are known: ``--track_cases`` training cases with tracks are regenerated
with their tracks' partial-volume fraction and the tracks' contrast against the liver around them
is measured on each grid (``track_visibility``; ``OUT/tracks.csv``).

Writes ``OUT/cuts_<grid>.csv``, ``OUT/features_<grid>.csv``, ``OUT/tracks.csv``, ``OUT/results.json`` and
``OUT/results.md``, and prints the markdown tables; ``--forward`` adds PattenNet's forward time on one
patch of each fixed grid (random weights, as ``benchmarks/bench_classifiers.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

BUNDLE = Path(__file__).resolve().parents[1]
NEOSEG = BUNDLE.parent / "neoseg"
#: Grids of the study: name -> spacing (mm), None for the input's own.
GRIDS = {"2x2x3": (2.0, 2.0, 3.0), "1x1x2": (1.0, 1.0, 2.0), "native": None}


def cohort_cases(folder: Path, n_cases: int | None) -> pd.DataFrame:
    """The first ``n_cases`` rows of ``folder/cohort.csv`` (all if None), with their image and label paths."""
    latents = pd.read_csv(folder / "cohort.csv", dtype={"case_id": str})
    if n_cases is not None:
        latents = latents.iloc[:n_cases]
    latents = latents.assign(
        cohort=str(folder),
        image=[str(folder / "imagesTr" / f"{c}.nii.gz") for c in latents["case_id"]],
        label=[str(folder / "labelsTr" / f"{c}.nii.gz") for c in latents["case_id"]],
    )
    return latents.reset_index(drop=True)


def cut_patches(cases: pd.DataFrame, out: Path, grids: dict) -> dict[str, pd.DataFrame]:
    """Cut every case's TLCR patch on every grid into the cache ``out/patches/<grid>/<cohort>_<case>.npz``.

    A cache file holds ``image`` (X, Y, Z) float32 (channel 0 of the patch: channel 1 is it times
    the tumour mask), ``masks`` (2, X, Y, Z) uint8 and ``spacing`` (3,); ``out/cuts_<grid>.csv``
    records each case's ``key``, ``file`` and ``cut_seconds`` (reading counted to every grid).
    Cases already cached on every grid are skipped.
    """
    from neonet_ext.study.patch_grid import GridPatchCutter
    from neonet_ext.utils.io import atomic_write

    files = {g: out / f"cuts_{g}.csv" for g in grids}
    rows = {g: (pd.read_csv(f).to_dict("records") if f.is_file() else []) for g, f in files.items()}
    done = set.intersection(*({r["key"] for r in rows[g]} for g in grids))
    for g in grids:  # a case cut on one grid only (an interrupted run) is cut again on all
        rows[g] = [r for r in rows[g] if r["key"] in done]
        (out / "patches" / g).mkdir(parents=True, exist_ok=True)
    cutter = GridPatchCutter(NEOSEG, grids)

    def flush() -> None:
        for g, f in files.items():
            atomic_write(f, lambda tmp, g=g: pd.DataFrame(rows[g]).to_csv(tmp, index=False))

    todo = [case for case in cases.to_dict("records") if case["key"] not in done]
    print(f"== cutting: {len(cases) - len(todo)} case(s) cached, {len(todo)} to cut on {len(grids)} grid(s)", flush=True)
    t_start = time.perf_counter()
    for i, case in enumerate(todo):
        for g, p in cutter(case).items():
            file = out / "patches" / g / f"{Path(case['cohort']).parent.name}_{case['case_id']}.npz"
            atomic_write(file, lambda tmp, p=p: np.savez(open(tmp, "wb"), image=p["patch"][0], masks=p["masks"],
                                                         spacing=np.asarray(p["spacing"])))
            rows[g].append({"key": case["key"], "file": str(file), "cut_seconds": p["seconds"]})
        if (i + 1) % 20 == 0 or i + 1 == len(todo):
            flush()
            elapsed = time.perf_counter() - t_start
            print(f"[{i + 1}/{len(todo)}] {elapsed / 60:.1f} min, {elapsed / (i + 1):.2f} s/case (all grids)", flush=True)
    return {g: pd.DataFrame(rows[g]) for g in grids}


def featurise(cuts: dict[str, pd.DataFrame], out: Path, reuse: bool = False) -> dict[str, pd.DataFrame]:
    """Features of every cached patch, written to ``out/features_<grid>.csv``: recomputed unless
    ``reuse`` and that file holds every case already.

    Returns:
        grid name -> one row per case: ``key``, the features, ``spacing_*``, ``roi_*``, ``cut_seconds``,
        ``feature_seconds`` and ``seconds`` (their sum: one case cut and featurised).
    """
    from neonet_ext.study.patch_grid import patch_features
    from neonet_ext.utils.io import atomic_write

    result = {}
    for g, table in cuts.items():
        file = out / f"features_{g}.csv"
        if reuse and file.is_file():
            cached = pd.read_csv(file)
            if set(cached["key"]) >= set(table["key"]):
                result[g] = cached[cached["key"].isin(set(table["key"]))].reset_index(drop=True)
                print(f"== features {g}: {len(result[g])} patches from {file}", flush=True)
                continue
        t_start, rows = time.perf_counter(), []
        for row in table.to_dict("records"):
            with np.load(row["file"]) as cached:
                image, masks, spacing = cached["image"], cached["masks"], tuple(cached["spacing"].tolist())
            t0 = time.perf_counter()
            patch = np.stack([image, image * masks[1]])
            features = patch_features(patch, masks, spacing)
            feature_s = time.perf_counter() - t0
            rows.append({"key": row["key"], **features, **{f"spacing_{a}": s for a, s in zip("xyz", spacing)},
                         **{f"roi_{a}": n for a, n in zip("xyz", image.shape)}, "cut_seconds": row["cut_seconds"],
                         "feature_seconds": feature_s, "seconds": row["cut_seconds"] + feature_s})
        result[g] = pd.DataFrame(rows)
        atomic_write(out / f"features_{g}.csv", lambda tmp, g=g: result[g].to_csv(tmp, index=False))
        print(f"== features {g}: {len(rows)} patches in {(time.perf_counter() - t_start) / 60:.1f} min", flush=True)
    return result


def track_visibility(cohort: Path, cases: pd.DataFrame, out: Path, grids: dict, n_cases: int) -> pd.DataFrame:
    """Contrast of the known perineural tracks on each grid, for the first ``n_cases`` cases with tracks.

    Each case is regenerated with its tracks' partial-volume fraction
    (``neonet_ext.study.patch_grid.painted_tracks``; its label must equal the cohort's), the voxels
    at least 30 % track get label 3 in a copy of the label map (``OUT/tracks/``), and the case goes
    through the same loading on every grid; label 3 is liver to TLCR and marks the track voxels
    (nearest neighbour) whose contrast ``neonet_ext.study.patch_grid.track_contrast`` measures.

    Returns:
        one row per case and grid: ``case_id``, ``grid``, ``n_extensions``, ``extension_radius_mm``
        and the measures.
    """
    import nibabel as nib

    from neonet_ext.data.synthetic import SyntheticCohortConfig
    from neonet_ext.labels import LIVER
    from neonet_ext.study.patch_grid import (
        TRACK_FRACTION,
        TRACK_LABEL,
        GridPatchCutter,
        painted_tracks,
        track_contrast,
    )
    from neonet_ext.transforms import TLCR
    from neonet_ext.utils.io import atomic_write

    generator = json.loads((cohort / "dataset.json").read_text())["generator"]
    config, seed = SyntheticCohortConfig(**generator["config"]), int(generator["seed"])
    cutter = GridPatchCutter(NEOSEG, grids)
    (out / "tracks").mkdir(parents=True, exist_ok=True)
    rows = []
    chosen = cases[cases["n_extensions"] > 0].head(n_cases)
    print(f"== track visibility: {len(chosen)} case(s) with tracks", flush=True)
    for case in chosen.to_dict("records"):
        generated, fraction = painted_tracks(int(case["index"]), seed, config)
        stored = nib.load(case["label"])
        if not np.array_equal(np.asarray(stored.dataobj), generated.label):
            raise RuntimeError(f"{case['case_id']}: the regenerated label differs from the cohort's")
        label = generated.label.copy()
        label[(fraction >= TRACK_FRACTION) & (label == LIVER)] = TRACK_LABEL
        label_file = out / "tracks" / f"{case['case_id']}_label.nii.gz"
        atomic_write(label_file, lambda tmp: nib.save(nib.Nifti1Image(label, stored.affine), str(tmp)))
        for g, (data, spacing, roi, _) in cutter.volumes({"image": case["image"], "label": str(label_file)}).items():
            lab = np.asarray(data["label"])
            track = lab == TRACK_LABEL
            lab = np.where(track, LIVER, lab)
            tlcr = TLCR(roi_size=roi)
            patch, masks, start = tlcr.crop(np.asarray(data["image"]), lab)
            track_patch = tlcr.image_crop(track.astype(np.uint8), start)[0] > 0
            rows.append({"case_id": case["case_id"], "grid": g, "n_extensions": int(case["n_extensions"]),
                         "extension_radius_mm": float(case["extension_radius_mm"]),
                         "native_track_voxels": int((label == TRACK_LABEL).sum()),
                         **track_contrast(patch, masks, track_patch, spacing)})
    table = pd.DataFrame(rows)
    atomic_write(out / "tracks.csv", lambda tmp: table.to_csv(tmp, index=False))
    return table


def pattennet_forward_seconds(roi: tuple[int, int, int], rounds: int = 3) -> dict[str, float]:
    """Median forward time (s) and peak-memory growth (MiB) of PattenNet (NeoGen's autoencoder, random
    weights, eval, no grad, batch 1) on one random (1, 2, *roi) patch, with the current torch threads."""
    import resource

    import torch

    from neonet_ext.networks import PattenNet, neogen_autoencoder
    from neonet_ext.utils.timing import median_times_in_turn

    torch.manual_seed(0)
    model = PattenNet(neogen_autoencoder()).eval()
    x = torch.randn(1, 2, *roi)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        seconds = median_times_in_turn({"pattennet": lambda: model(x)}, rounds)["pattennet"]
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024  # ru_maxrss is KiB on Linux
    return {"seconds": seconds, "peak_rss_growth_mib": float(grown), "rounds": rounds}


def score(features: pd.DataFrame, train: pd.DataFrame, heldout: pd.DataFrame, n_resamples: int) -> dict:
    """Readability of each sign and held-out AUC of a logistic regression on ``features`` of one grid."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from neonet_ext.roc import bootstrap_auc
    from neonet_ext.study.patch_grid import FEATURE_SIGNS

    names = list(FEATURE_SIGNS)
    table = features.set_index("key")
    both = pd.concat([train, heldout], ignore_index=True)
    x_all = table.loc[both["key"], names].to_numpy(float)
    spearman = {}
    for j, name in enumerate(names):
        sign = both[FEATURE_SIGNS[name]].to_numpy(float)
        ok = np.isfinite(x_all[:, j])
        rho, p = spearmanr(x_all[ok, j], sign[ok])
        spearman[name] = {"sign": FEATURE_SIGNS[name], "rho": float(rho), "p": float(p), "n": int(ok.sum())}

    def matrix(frame: pd.DataFrame) -> np.ndarray:
        x = np.array(table.loc[frame["key"], names], dtype=float)  # a writable copy
        x[:, names.index("tumour_volume_ml")] = np.log(x[:, names.index("tumour_volume_ml")])
        return x

    x_train, x_test = matrix(train), matrix(heldout)
    fill = np.nanmedian(x_train, axis=0)  # a patch without the far liver has no halo: the training median
    x_train = np.where(np.isfinite(x_train), x_train, fill)
    x_test = np.where(np.isfinite(x_test), x_test, fill)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_train, train["pni"].astype(int))
    probability = model.predict_proba(x_test)[:, 1]
    auc, low, high = bootstrap_auc(heldout["pni"].astype(int), probability, n_resamples=n_resamples)
    seconds = features["seconds"].to_numpy(float)
    rois = features[["roi_x", "roi_y", "roi_z"]].to_numpy(int)
    voxels = np.prod(rois, axis=1)
    return {
        "spearman": spearman,
        "auc": auc, "auc_ci": [low, high],
        "heldout_probability": [float(v) for v in probability],
        "feature_values": {name: [float(v) for v in x_all[:, j]] for j, name in enumerate(names)},
        "coefficients": dict(zip(names, (float(c) for c in model[-1].coef_[0]))),
        "roi": [int(v) for v in np.median(rois, axis=0)],
        "voxels_median": int(np.median(voxels)),
        "bytes_per_patch_median": int(np.median(voxels)) * 2 * 4,
        "seconds_per_case_mean": float(seconds.mean()),
        "seconds_per_case_median": float(np.median(seconds)),
        "missing_features": int((~np.isfinite(table.loc[both["key"], names].to_numpy(float))).sum()),
    }


def paired_differences(results: dict, train: pd.DataFrame, heldout: pd.DataFrame, reference: str,
                       n_resamples: int, seed: int = 0) -> dict:
    """Each grid against ``reference`` on the same cases: the difference of held-out AUC and of each feature's
    Spearman correlation, with paired percentile-bootstrap 95% CIs (the cases resampled alike for both grids).
    Uses the ``heldout_probability`` and ``feature_values`` that :func:`score` keeps."""
    from scipy.stats import spearmanr

    from neonet_ext.roc import percentile_interval, resample_cases, roc_auc
    from neonet_ext.study.patch_grid import FEATURE_SIGNS

    y = heldout["pni"].astype(int).to_numpy()
    both = pd.concat([train, heldout], ignore_index=True)
    signs = {name: both[sign].to_numpy(float) for name, sign in FEATURE_SIGNS.items()}
    auc_draws = resample_cases(np.random.default_rng(seed), len(y), n_resamples)
    rho_draws = resample_cases(np.random.default_rng(seed + 1), len(both), n_resamples // 2)
    ref = results["grids"][reference]
    out = {}
    for g, r in results["grids"].items():
        if g == reference:
            continue
        a, b = np.asarray(r["heldout_probability"]), np.asarray(ref["heldout_probability"])
        diffs = [roc_auc(y[i], a[i]) - roc_auc(y[i], b[i]) for i in auc_draws if y[i].min() != y[i].max()]
        entry = {"auc_difference": roc_auc(y, a) - roc_auc(y, b), "auc_difference_ci": list(percentile_interval(diffs))}
        for name, sign in signs.items():
            fa, fb = np.asarray(r["feature_values"][name]), np.asarray(ref["feature_values"][name])
            if np.nanstd(fa) == 0 or np.nanstd(fb) == 0:
                continue
            ok = np.isfinite(fa) & np.isfinite(fb)

            def rho(idx, f):
                return spearmanr(f[idx], sign[idx])[0]

            draws = [rho(i[ok[i]], fa) - rho(i[ok[i]], fb) for i in rho_draws]
            entry[f"rho_difference_{name}"] = float(rho(np.flatnonzero(ok), fa) - rho(np.flatnonzero(ok), fb))
            entry[f"rho_difference_{name}_ci"] = list(percentile_interval(draws))
        out[g] = entry
    return out


def markdown(results: dict) -> str:
    """The results as markdown tables (readability, AUC, cost)."""
    from neonet_ext.study.patch_grid import FEATURE_SIGNS

    grids = list(results["grids"])
    lines = [f"Training: {results['n_train']} cases ({', '.join(results['train'])}); held-out: {results['n_heldout']} cases "
             f"({', '.join(results['heldout'])}).", "",
             "Spearman correlation of each patch feature with the true sign it reads (all "
             f"{results['n_train'] + results['n_heldout']} cases):", "",
             "| feature | true sign | " + " | ".join(grids) + " |",
             "|---|---|" + "---:|" * len(grids)]
    for name, sign in FEATURE_SIGNS.items():
        rhos = [results["grids"][g]["spearman"][name]["rho"] for g in grids]
        lines.append(f"| {name} | {sign} | " + " | ".join("— (constant)" if np.isnan(r) else f"{r:.3f}" for r in rhos) + " |")
    lines += ["", "Held-out PNI ROC AUC (bootstrap 95% CI) of a logistic regression on the features, the sign reader on "
              "the same cases, and the cost of the patch:", "",
              "| grid | TLCR crop (voxels) | voxels | MiB per patch (float32, 2 ch) | s per case (cut + features) | "
              "PattenNet forward (s) | feature AUC [95% CI] | sign reader AUC |",
              "|---|---|---:|---:|---:|---:|---|---:|"]
    for g in grids:
        r = results["grids"][g]
        crop = " x ".join(str(n) for n in r["roi"]) + (" (median; per case)" if g == "native" else "")
        forward = f"{r['pattennet_forward']['seconds']:.2f}" if "pattennet_forward" in r else "-"
        lines.append(f"| {g} | {crop} | {r['voxels_median']:,} | {r['bytes_per_patch_median'] / 2**20:.2f} | "
                     f"{r['seconds_per_case_mean']:.2f} | {forward} | {r['auc']:.3f} [{r['auc_ci'][0]:.3f}, {r['auc_ci'][1]:.3f}] | "
                     f"{results['sign_reader_auc']:.3f} |")
    if "paired" in results:
        ref = results["paired_reference"]
        lines += ["", f"Each grid minus {ref} on the same cases (paired bootstrap 95% CI):", "",
                  "| grid | held-out AUC | " + " | ".join(f"rho {n}" for n in FEATURE_SIGNS if n in ("halo_contrast", "radial_cv", "surface_ratio", "tracks_1p5mm")) + " |",
                  "|---|---|" + "---|" * 4]
        for g, d in results["paired"].items():
            cells = [f"{d['auc_difference']:+.3f} [{d['auc_difference_ci'][0]:+.3f}, {d['auc_difference_ci'][1]:+.3f}]"]
            for n in ("halo_contrast", "radial_cv", "surface_ratio", "tracks_1p5mm"):
                if f"rho_difference_{n}" in d:
                    lo, hi = d[f"rho_difference_{n}_ci"]
                    cells.append(f"{d[f'rho_difference_{n}']:+.3f} [{lo:+.3f}, {hi:+.3f}]")
                else:
                    cells.append("—")
            lines.append(f"| {g} | " + " | ".join(cells) + " |")
    if "tracks" in results:
        lines += ["", f"Contrast of the known perineural tracks (≥ 3 mm outside the tumour) on each grid, "
                  f"{results['tracks']['n_cases']} training cases with tracks (medians over the cases; contrast "
                  "0.58 for a track filling its voxels, 0 for none; visible: share of track voxels darker than "
                  "the liver by > 2 noise SD):", "",
                  "| grid | cases measured | track volume (mm³) | contrast | liver noise (SD) | visible | "
                  "contrast minus 2x2x3 (paired median) | cases with more contrast than on 2x2x3 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for g, t in results["tracks"]["grids"].items():
            paired = (f"{t['contrast_minus_2x2x3_median']:+.3f} | {t['share_darker_than_2x2x3']:.0%} of {t['paired_cases']}"
                      if "paired_cases" in t else "— | —")
            lines.append(f"| {g} | {t['n_cases_measured']} | {t['track_mm3_median']:.0f} | {t['contrast_median']:.3f} | "
                         f"{t['noise_median']:.3f} | {t['visible_median']:.2f} | {paired} |")
    lines += ["", f"Wall time of the run: {results['wall_minutes']:.1f} min ({results['hardware']})."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (feature caches and results)")
    parser.add_argument("--train", required=True, help="training cohort folder (cohort.csv, imagesTr, labelsTr)")
    parser.add_argument("--train_cases", type=int, default=300, help="use the first N training cases")
    parser.add_argument("--heldout", nargs="+", required=True, help="held-out cohort folders (all their cases)")
    parser.add_argument("--no_native", action="store_true", help="leave out the input's own grid")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the AUC CI")
    parser.add_argument("--reuse_features", action="store_true",
                        help="take the features from OUT/features_<grid>.csv where it holds every case")
    parser.add_argument("--track_cases", type=int, default=40,
                        help="training cases with tracks whose track contrast is measured on each grid (0: none)")
    parser.add_argument("--forward", action="store_true",
                        help="also time PattenNet's forward on one patch of each fixed grid (after the cutting)")
    parser.add_argument("--hardware", default="2-core CPU, shared with a training run", help="recorded with the timings")
    args = parser.parse_args(argv)

    import torch

    from neonet_ext.data.synthetic import sign_reader_auc
    from neonet_ext.utils.io import atomic_write

    torch.set_num_threads(1)
    np.random.seed(0)
    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grids = {g: s for g, s in GRIDS.items() if not (args.no_native and s is None)}
    train = cohort_cases(Path(args.train), args.train_cases)
    heldout = pd.concat([cohort_cases(Path(h), None) for h in args.heldout], ignore_index=True)
    for frame in (train, heldout):
        frame["key"] = frame["cohort"] + "/" + frame["case_id"]
    cuts = cut_patches(pd.concat([train, heldout], ignore_index=True), out, grids)
    features = featurise(cuts, out, reuse=args.reuse_features)
    results = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "train": [args.train], "heldout": list(args.heldout),
        "n_train": len(train), "n_heldout": len(heldout), "hardware": args.hardware,
        "sign_reader_auc": float(sign_reader_auc(train, heldout)),
        "grids": {g: score(features[g], train, heldout, args.bootstrap) for g in grids},
    }
    results["paired_reference"] = "2x2x3"
    results["paired"] = paired_differences(results, train, heldout, "2x2x3", args.bootstrap)
    if args.track_cases > 0:
        tracks = track_visibility(Path(args.train), train, out, grids, args.track_cases)
        measured = tracks[tracks["track_mm3"] > 0]
        results["tracks"] = {
            "n_cases": int(tracks["case_id"].nunique()),
            "grids": {g: {"n_cases_measured": int(len(m)), "contrast_median": float(m["contrast"].median()),
                          "visible_median": float(m["visible"].median()), "noise_median": float(m["noise"].median()),
                          "track_mm3_median": float(m["track_mm3"].median())}
                      for g, m in measured.groupby("grid", sort=False)},
        }
        contrast = measured.pivot(index="case_id", columns="grid", values="contrast")
        for g in results["tracks"]["grids"]:
            if g != "2x2x3":  # the same cases measured on both grids
                pair = contrast[[g, "2x2x3"]].dropna()
                results["tracks"]["grids"][g].update(
                    paired_cases=int(len(pair)), contrast_minus_2x2x3_median=float((pair[g] - pair["2x2x3"]).median()),
                    share_darker_than_2x2x3=float((pair[g] > pair["2x2x3"]).mean()))
    if args.forward:  # smallest crop first: the peak-RSS growth of the larger one is then its own excess
        for g in sorted((g for g in grids if grids[g] is not None), key=lambda g: np.prod(results["grids"][g]["roi"])):
            results["grids"][g]["pattennet_forward"] = pattennet_forward_seconds(tuple(results["grids"][g]["roi"]))
            print(f"PattenNet forward {g}: {results['grids'][g]['pattennet_forward']}", flush=True)
    results["cut_and_featurise_seconds_sum"] = float(sum(f["seconds"].sum() for f in features.values()))
    results["wall_minutes"] = (time.perf_counter() - t0) / 60
    text = markdown(results)
    atomic_write(out / "results.json", lambda tmp: tmp.write_text(json.dumps(results, indent=2) + "\n"))
    atomic_write(out / "results.md", lambda tmp: tmp.write_text(text))
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
