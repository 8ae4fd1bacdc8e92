#!/usr/bin/env bash
# Train PattenNet as the shipped demo weights were made. Run from the repository root:
#   bash bundles/neocls/scripts/train_demo_weights.sh [OUT_DIR] [RATIO] [EXTRA monai.bundle overrides...]
# 1. the synthetic cohort (96 cases, seed 0) and NeoSeg's TLCR patches of it, as NeoGen's
#    script makes them (reused when OUT_DIR/cohort and OUT_DIR/patches exist);
# 2. the training split that train.json will use (same val_fraction and seed), and NeoGen's
#    synthetic PNI+ patches generated from the masks of that split's PNI+ cases only;
# 3. PattenNet on the real patches plus RATIO (default 1.0) x (n_neg - n_pos) synthetic ones.
# NEOGEN_MODELS (default bundles/neogen/models) holds NeoGen's autoencoder, diffusion UNet and
# ControlNet. Weights land in OUT_DIR/models; copy model.pt to bundles/neocls/models to ship it.
set -euo pipefail
out=${1:-output/neocls_train}
ratio=${2:-1.0}
shift $(( $# < 2 ? $# : 2 ))
neogen_models=${NEOGEN_MODELS:-bundles/neogen/models}
val_fraction=0.2
seed=0
bash bundles/neoseg/scripts/cohort_patches.sh "$out" 96 0

# the training split's PNI+ patches (NeoGen keeps case ids, so each synthetic patch names its source case)
needed=$(python - "$out" "$ratio" "$val_fraction" "$seed" <<'EOF'
import json, sys
from pathlib import Path
from neonet_ext.data import load_patch_datalist, patches_with_tumour, stratified_split, synthetic_needed
out, ratio, val_fraction, seed = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
real = load_patch_datalist(out / "patches" / "patches.json", required_keys=["patch", "pni"])
train, _ = stratified_split(patches_with_tumour(real), val_fraction, seed=seed)
train_ids = {item["case_id"] for item in train}
positives = [item for item in real if item["case_id"] in train_ids and item["pni"] == 1]
(out / "train_positives.json").write_text(json.dumps({"testing": positives}, indent=2))
n_neg, n_pos = sum(i["pni"] == 0 for i in train), len(positives)
print(synthetic_needed(n_neg, n_pos, ratio))
EOF
)
echo "== training split needs $needed synthetic PNI+ patches at ratio $ratio"
synthetic=()
if (( needed > 0 )); then
    [[ -f "$out/synthetic/synthetic_patches.json" ]] || python -m monai.bundle run \
        --config_file bundles/neogen/configs/inference.json --datalist_file "$out/train_positives.json" \
        --ckpt_dir "$neogen_models" --num_samples "$needed" --output_dir "$out/synthetic"
    synthetic=(--synthetic_datalist_file "$out/synthetic/synthetic_patches.json")
fi
python -m monai.bundle run --config_file bundles/neocls/configs/train.json \
    --datalist_file "$out/patches/patches.json" "${synthetic[@]}" --synthetic_ratio "$ratio" \
    --val_fraction "$val_fraction" --seed "$seed" --autoencoder_path "$neogen_models/model_autoencoder.pt" \
    --output_dir "$out/runs" --ckpt_dir "$out/models" --resume False "$@"
# weights trained on a GPU would hold CUDA tensors: ship them loadable on any machine
python -m neonet_ext.zoo --to-cpu "$out/models/model.pt"
