"""Where a PattenNet checkpoint's spatial attention looks on TLCR patches with known labels, beside its AUC.

    python bundles/neocls/scripts/attention_share.py --patches output/neocls_train/heldout_2002/patches/patches.json \
        --checkpoint bundles/neocls/models/model.pt --out output/attention_share_2002
    # a checkpoint of another head: the same overrides as its training, e.g.
    python bundles/neocls/scripts/attention_share.py ... -- --network_def#pooling regions

For every patch with a tumour: the PNI probability, and the share of the attention map's mass within the tumour and
a 10 mm rim (``neonet_ext.metrics.attention_share``) for the map the chain's report shows (the blocks' spatial gates
averaged, as :class:`neonet_ext.engines.PNIPredictor` shows it) and for the last block's gate alone, next to the share of the
patch that region takes (what an even map scores); and the last gate's mean value in the tumour, in the liver
beyond the rim and outside the liver beyond the rim (where TLCR's patch is zero). The tumour and liver masks are the
patch's channels (TLCR zeroes them outside the tumour and outside liver + tumour), the spacing the patch file's.

Writes ``OUT/attention_share.csv`` (a row per patch) and ``OUT/summary.json`` (ROC AUC and the mean shares, with
their ratios to the region's share), and prints the summary; extra arguments after ``--`` override
``configs/inference.json`` (and the files layered on it with ``--config_file``) as on the ``monai.bundle run``
command line (``--key value``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from monai.bundle import ConfigParser
from monai.transforms import LoadImage

from neonet_ext.data import load_patch_datalist, patches_with_tumour
from neonet_ext.engines.pni import average_attention_maps
from neonet_ext.metrics import attention_share
from neonet_ext.networks.nets.pattennet import upsample_attention_map
from neonet_ext.roc import roc_auc
from neonet_ext.utils.bundle import parse_overrides
from neonet_ext.utils.io import atomic_write
from neonet_ext.utils.tables import write_csv

BUNDLE = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", required=True, help="patch datalist (patch, pni; items without a tumour skipped)")
    parser.add_argument("--checkpoint", default=str(BUNDLE / "models" / "model.pt"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--config_file", nargs="+", default=[str(BUNDLE / "configs" / "inference.json")],
                        help="inference.json and any override files layered on it (those the checkpoint trained with)")
    parser.add_argument("--rim_mm", type=float, default=10.0)
    args, extra = parser.parse_known_args(argv)
    try:
        overrides = parse_overrides(extra)
    except ValueError as e:
        parser.error(str(e))
    config = ConfigParser()
    config.read_config(args.config_file)
    config.update({"checkpoint": args.checkpoint, "device": "$torch.device('cpu')",
                   **overrides})
    network = config.get_parsed_content("network").eval()
    items = patches_with_tumour(load_patch_datalist(args.patches, required_keys=["patch", "pni"]))
    if not items:
        raise SystemExit(f"{args.patches}: no patch with a tumour to score")
    load = LoadImage(image_only=True, ensure_channel_first=True)
    rows = []
    for i, item in enumerate(items, 1):
        patch = load(item["patch"])
        spacing = patch.pixdim.tolist()
        x = patch.as_tensor().float().unsqueeze(0)
        with torch.no_grad():  # one pass gives the probability and every block's gate
            logits, maps = network.forward_with_attention(x)
        probability = float(torch.softmax(logits.float(), dim=1)[0, 1])
        shown = average_attention_maps(maps, x.shape[2:])
        last = upsample_attention_map(maps[-1], x.shape[2:])[0, 0]
        tumour, tissue = patch[-1].numpy() != 0, patch[0].numpy() != 0
        shown_share, region_share = attention_share(shown[0].numpy(), tumour, spacing, args.rim_mm)
        last_share, _ = attention_share(last.numpy(), tumour, spacing, args.rim_mm)
        beyond_rim = distance_transform_edt(~tumour, sampling=spacing) > args.rim_mm
        gate = last.numpy()
        rows.append({"case_id": item.get("case_id", Path(item["patch"]).stem), "pni": int(item["pni"]),
                     "pni_probability": probability, "attention_in_tumour_rim": shown_share,
                     "last_gate_in_tumour_rim": last_share, "tumour_rim_share": region_share,
                     "last_gate_tumour": float(gate[tumour].mean()),
                     "last_gate_liver_beyond_rim": float(gate[tissue & beyond_rim].mean()),
                     "last_gate_outside_liver": float(gate[~tissue & beyond_rim].mean())})
        if i % max(1, len(items) // 10) == 0 or i == len(items):
            print(f"  {i}/{len(items)} patches", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "attention_share.csv", list(rows[0]), rows)
    mean = {key: float(np.mean([r[key] for r in rows])) for key in
            ("attention_in_tumour_rim", "last_gate_in_tumour_rim", "tumour_rim_share", "last_gate_tumour",
             "last_gate_liver_beyond_rim", "last_gate_outside_liver")}
    summary = {"patches": len(rows), "checkpoint": args.checkpoint, "overrides": overrides,
               "roc_auc": roc_auc(np.array([r["pni"] for r in rows]), np.array([r["pni_probability"] for r in rows])),
               **{f"{key}_mean": value for key, value in mean.items()},
               "attention_over_region_share": mean["attention_in_tumour_rim"] / mean["tumour_rim_share"],
               "last_gate_over_region_share": mean["last_gate_in_tumour_rim"] / mean["tumour_rim_share"]}
    atomic_write(out / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
