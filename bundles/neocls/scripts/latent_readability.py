"""Where PattenNet's reading of the imaging signs is lost: in the autoencoder's latent, or in learning from it.

    python bundles/neocls/scripts/latent_readability.py --out output/neocls_size --train_cases 1000 --heldout 144

Uses ``training_size.py``'s cohorts under ``--out`` (made there if missing: training seed 0,
held-out ``--heldout_seed``; ground-truth TLCR patches) and the autoencoder and latent cache of
NeoCls ``configs/train.json`` with the ``--override`` layered on it. Two measurements:

1. **Does the latent keep the signs?** On the held-out patches, the hand-made sign features of
   ``neonet_ext.study.patch_grid.patch_features`` on each patch and on its reconstruction
   (decoder of the unaugmented view's posterior mean, masked as the patch): Spearman with the
   true sign in ``cohort.csv``. Equal columns: the latent kept what the feature reads.
2. **Can the head learn them from the latent?** PattenNet's trainable part (``network_def`` of the
   config; ``--features``/``--strides`` change it) regresses the 8 standardised imaging signs
   (``neonet_ext.data.synthetic.IMAGING_SIGNS``, log diameter) from the cached views of the
   training split's patients (the bundle's split and seed), direct supervision that no real
   cohort has; then, on the held-out patients, the Pearson r of each sign and the AUC of the sign
   reader (fit on the training split's true signs) applied to the predicted signs. A reader AUC on
   predicted signs well below the one on true signs, with the features of 1. intact, puts the loss
   in what the head learns from this many patients.

3. **Does pooling by region read them?** No network: each channel of the unaugmented view's
   latent averaged over the tumour, the liver rim around it (``--rim`` latent voxels) and the
   liver beyond ``--far`` voxels (masks from the patch's TLCR masks, on the latent grid), with the
   rim-minus-far and tumour-minus-far contrasts and the log tumour size, into a logistic
   regression of PNI fit on the training split (``--C``), scored on the held-out patients; and
   a ridge regression of the halo from the same numbers. A global mean cannot form such contrasts.

Writes ``OUT/readability/results.md`` and ``results.csv`` (one row per feature and per epoch).
Extra ``--id value`` pairs set ids of the NeoCls config (e.g. ``--autoencoder_path w.pt``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.bundle import ConfigParser
from monai.transforms import LoadImage
from scipy.stats import spearmanr

from neonet_ext.data import load_patch_datalist, patches_with_tumour, split_cases
from neonet_ext.data.synthetic import IMAGING_SIGNS, sign_matrix, sign_reader
from neonet_ext.engines.checkpoints import load_weights
from neonet_ext.networks import PattenNetFromLatents, region_means
from neonet_ext.roc import roc_auc
from neonet_ext.study.patch_grid import FEATURE_SIGNS, patch_features
from neonet_ext.transforms import LoadLatentd
from neonet_ext.utils.bundle import parse_overrides
from neonet_ext.utils.io import atomic_write
from neonet_ext.utils.tables import write_csv
from training_size import DEFAULT_HELDOUT_SEED, cohort_patches, heldout_suffix  # this folder is on sys.path when the script runs

BUNDLE = Path(__file__).resolve().parents[1]


def neocls_config(override: str | None, output_dir: Path, pairs: dict[str, object]) -> ConfigParser:
    """NeoCls ``train.json`` with ``override`` layered on it and ``pairs`` set (``id -> value``)."""
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / "train.json"), *([override] if override else [])])
    parser["output_dir"] = str(output_dir)
    parser["device"] = "$torch.device('cpu')"
    for key, value in pairs.items():
        parser[key] = value
    return parser


def view_latents(cache, items: list[dict], views: int, with_regions: bool = False) -> torch.Tensor:
    """Posterior means of the first ``views`` cached views of each item: (N, views, C * L, x, y, z), float16; with
    ``with_regions`` each view's 2 region fractions follow its latent (C * L + 2 channels), as PattenNet's region
    pooling reads them."""
    load = LoadLatentd("latent", with_sigma=False, with_regions=with_regions, dtype=torch.float16)
    latents = []
    for entry in cache(items, num_views=views):
        read = load(entry)
        latents.append(torch.cat([read["latent_mu"], read["latent_regions"]], dim=1) if with_regions
                       else read["latent_mu"])
    return torch.stack(latents)


def feature_survival(autoencoder, cache, items: list[dict], signs: pd.DataFrame) -> list[dict]:
    """Spearman of each hand-made feature with its sign, on the patches and on their reconstructions."""
    load = LoadImage(image_only=True, ensure_channel_first=True)
    rows = []
    for item, latent in zip(items, view_latents(cache, items, 1)):
        patch, masks = load(item["patch"]), np.asarray(load(item["patch_mask"]))
        spacing = [float(s) for s in patch.pixdim[:3]]
        mu = latent[0].float()
        with torch.no_grad():
            decoded = autoencoder.decode(mu.view(patch.shape[0], -1, *mu.shape[1:])).squeeze(1).numpy()
        rows.append({"case_id": item["case_id"],
                     **{f"patch:{k}": v for k, v in patch_features(np.asarray(patch), masks, spacing).items()},
                     **{f"decoded:{k}": v for k, v in patch_features(decoded * (masks > 0), masks, spacing).items()}})
    table = pd.DataFrame(rows).set_index("case_id").join(signs)
    out = []
    for feature, sign in FEATURE_SIGNS.items():
        both = table[[f"patch:{feature}", f"decoded:{feature}", sign]].dropna()
        if len(both) < 3 or both[f"patch:{feature}"].nunique() < 2:
            continue  # too few cases, or constant on this grid: no correlation to report
        out.append({"measure": "feature", "name": feature, "sign": sign, "cases": len(both),
                    "spearman_patch": spearmanr(both[f"patch:{feature}"], both[sign])[0],
                    "spearman_decoded": spearmanr(both[f"decoded:{feature}"], both[sign])[0]})
    return out


def sign_regression(parser: ConfigParser, cache, train: list[dict], test: list[dict], train_signs: pd.DataFrame,
                    test_signs: pd.DataFrame, epochs: int, learning_rate: float, views: int) -> list[dict]:
    """Train the head to regress the standardised signs; per epoch, held-out r per sign and the reader's AUC."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x_train, x_test = sign_matrix(train_signs), sign_matrix(test_signs)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-8
    targets = torch.as_tensor((x_train - mean) / std, dtype=torch.float32)
    network = parser.get_parsed_content("network_def")
    regions = network.masked_pooling
    z_train, z_test = view_latents(cache, train, views, regions), view_latents(cache, test, 1, regions)[:, 0]
    head = PattenNetFromLatents(network)
    optimizer = torch.optim.AdamW([p for p in head.parameters() if p.requires_grad], learning_rate, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    reader = sign_reader(train_signs)
    rows = [{"measure": "reader", "name": "true signs", "epoch": 0,
             "reader_auc": roc_auc(test_signs["pni"].astype(int), reader.predict_proba(x_test)[:, 1])}]
    for epoch in range(1, epochs + 1):
        start, losses = time.perf_counter(), []
        head.train()
        for batch in np.array_split(rng.permutation(len(targets)), max(1, len(targets) // 8)):
            z = z_train[batch, rng.integers(0, views, len(batch))].float()
            loss = torch.nn.functional.mse_loss(head(z), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        schedule.step()
        head.eval()
        with torch.no_grad():
            predicted = torch.cat([head(z.float()) for z in z_test.split(32)]).numpy() * std + mean
        r = {sign: float(np.corrcoef(predicted[:, i], x_test[:, i])[0, 1]) for i, sign in enumerate(IMAGING_SIGNS)}
        auc = roc_auc(test_signs["pni"].astype(int), reader.predict_proba(predicted)[:, 1])
        rows.append({"measure": "reader", "name": "predicted signs", "epoch": epoch, "train_loss": float(np.mean(losses)),
                     "reader_auc": auc, **{f"r:{s}": v for s, v in r.items()}})
        print(f"epoch {epoch}/{epochs}: loss {np.mean(losses):.3f}, reader on predicted signs {auc:.3f}, r "
              + " ".join(f"{s}={v:.2f}" for s, v in r.items()) + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    return rows


def latent_region_means(cache, items: list[dict], rim: int, far: int) -> np.ndarray:
    """Per item: PattenNet's region pooling (:func:`neonet_ext.networks.region_means`) of the unaugmented view's
    latent, with the region fractions the cache holds for it: (N, 5 * C * L + 1)."""
    rows = []
    for entry in cache(items, num_views=1):
        cached = torch.load(entry["latent"][0], map_location="cpu", weights_only=True)
        rows.append(region_means(cached["mu"].float()[None], cached["regions"].float()[None], rim, far)[0].numpy())
    return np.array(rows)


def region_reader(cache, train: list[dict], test: list[dict], train_signs: pd.DataFrame, test_signs: pd.DataFrame,
                  rim: int, far: int, c: float) -> list[dict]:
    """Logistic PNI regression and ridge halo regression on :func:`latent_region_means`, scored on ``test``."""
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test = latent_region_means(cache, train, rim, far), latent_region_means(cache, test, rim, far)
    y_train, y_test = train_signs["pni"].astype(int), test_signs["pni"].astype(int)
    pni = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(x_train, y_train)
    size = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(x_train[:, -1:], y_train)
    halo = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12))).fit(x_train, train_signs["halo_strength"])
    return [{"measure": "regions", "name": "region means", "reader_auc": roc_auc(y_test, pni.predict_proba(x_test)[:, 1]),
             "size_only_auc": roc_auc(y_test, size.predict_proba(x_test[:, -1:])[:, 1]),
             "halo_spearman": spearmanr(halo.predict(x_test), test_signs["halo_strength"])[0]}]


def markdown(rows: list[dict]) -> str:
    features = [r for r in rows if r["measure"] == "feature"]
    readers = [r for r in rows if r["measure"] == "reader"]
    lines = ["| feature | true sign | Spearman on the patch | on its reconstruction | cases |", "| --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {r['name']} | {r['sign']} | {r['spearman_patch']:+.3f} | {r['spearman_decoded']:+.3f} | {r['cases']} |"
              for r in features]
    last = readers[-1]
    lines += ["", f"Sign reader on the held-out true signs: AUC {readers[0]['reader_auc']:.3f}; on the signs the head "
                  f"predicts after {last['epoch']} epochs: {last['reader_auc']:.3f} (best epoch "
                  f"{max(r['reader_auc'] for r in readers[1:]):.3f}).", "",
              "| sign | r (held-out, last epoch) |", "| --- | ---: |"]
    lines += [f"| {s} | {last[f'r:{s}']:.2f} |" for s in IMAGING_SIGNS]
    for r in (r for r in rows if r["measure"] == "regions"):
        lines += ["", f"Region means of the latent (tumour, rim, far liver) in a logistic regression: held-out AUC "
                      f"{r['reader_auc']:.3f} (tumour size alone {r['size_only_auc']:.3f}); the halo from them: "
                      f"Spearman {r['halo_spearman']:.3f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="training_size.py's output folder (its cohorts are reused)")
    parser.add_argument("--train_cases", type=int, default=1000, help="patients whose training split the head learns from")
    parser.add_argument("--heldout", type=int, default=144)
    parser.add_argument("--heldout_seed", type=int, default=DEFAULT_HELDOUT_SEED)
    parser.add_argument("--override", help="a config file layered on train.json (autoencoder, cache folder)")
    parser.add_argument("--features", type=int, nargs="+", help="the head's stage widths (default: the config's)")
    parser.add_argument("--strides", type=int, nargs="+", help="the head's stage strides (default: the config's)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--views", type=int, default=8, help="cached views per training patch")
    parser.add_argument("--rim", type=int, default=1, help="latent voxels of liver around the tumour read as its rim")
    parser.add_argument("--far", type=int, default=3, help="latent voxels from the tumour where the far liver starts")
    parser.add_argument("--C", type=float, default=0.01, help="inverse regularisation of the region logistic regression")
    args, extra = parser.parse_known_args(argv)
    try:
        overrides = parse_overrides(extra)
    except ValueError as e:
        parser.error(str(e))

    out = Path(args.out)
    train_file, train_signs = cohort_patches(out / "train", args.train_cases, 0)
    test_file, test_signs = cohort_patches(out / f"heldout{heldout_suffix(args.heldout_seed)}", args.heldout, args.heldout_seed)
    train_all = load_patch_datalist(train_file, required_keys=["patch", "pni"])[: args.train_cases]
    train, _ = split_cases(patches_with_tumour(train_all), 0.2, seed=0, stratify_by="pni")
    test = patches_with_tumour(load_patch_datalist(test_file, required_keys=["patch", "pni"]))

    pairs: dict[str, object] = {"network_def#out_channels": len(IMAGING_SIGNS), "network_def#dropout": 0.0,
                                "latent_views": max(args.views, 1)}
    if args.features:
        pairs |= {"network_def#features": args.features, "network_def#num_blocks": len(args.features)}
    if args.strides:
        pairs["network_def#strides"] = args.strides
    pairs |= overrides
    pairs["latent_cache#require_regions"] = True  # the region reader reads each entry's fractions
    config = neocls_config(args.override, out / "readability", pairs)
    cache = config.get_parsed_content("latent_cache")
    autoencoder = config.get_parsed_content("autoencoder_def")
    load_weights(autoencoder, config.get_parsed_content("autoencoder_path"), what="NeoGen autoencoder")
    autoencoder.eval()

    print(f"== hand-made features on {len(test)} held-out patches and their reconstructions", flush=True)
    rows = feature_survival(autoencoder, cache, test, test_signs)
    print(f"== the head regresses the signs of {len(train)} training patients for {args.epochs} epochs", flush=True)
    rows += sign_regression(config, cache, train, test, train_signs.loc[[i["case_id"] for i in train]],
                            test_signs.loc[[i["case_id"] for i in test]], args.epochs, args.learning_rate, args.views)

    print("== region means of the latent", flush=True)
    rows += region_reader(cache, train, test, train_signs.loc[[i["case_id"] for i in train]],
                          test_signs.loc[[i["case_id"] for i in test]], args.rim, args.far, args.C)

    target = out / "readability"
    target.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    write_csv(target / "results.csv", columns, [{k: r.get(k, "") for k in columns} for r in rows], float_format="{}")
    text = markdown(rows)
    atomic_write(target / "results.md", lambda tmp: tmp.write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
