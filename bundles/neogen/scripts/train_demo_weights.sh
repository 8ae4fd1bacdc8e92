#!/usr/bin/env bash
# Train NeoGen's three stages on TLCR patches of the synthetic cohort, as the shipped demo
# weights were made. Run from the repository root:
#   bash bundles/neogen/scripts/train_demo_weights.sh [OUT_DIR] [SECONDS_PER_STAGE]
# 1. a synthetic cohort (96 cases, seed 0: NeoSeg's training cohort);
# 2. NeoSeg (shipped weights) cuts its TLCR patches -> OUT/patches/patches.json;
# 3. autoencoder, then diffusion UNet, then ControlNet, each stopped by --time_limit at the
#    end of the first epoch past SECONDS_PER_STAGE (default: no limit, the configs' epochs).
# Weights land in OUT/models; copy them to bundles/neogen/models to use them by default.
# Extra monai.bundle overrides can follow in NEOGEN_OVERRIDES (e.g. "--num_workers 8").
set -euo pipefail
out=${1:-output/neogen_train}
limit=${2:-}
configs=bundles/neogen/configs
extra=(${NEOGEN_OVERRIDES:-})
[[ -n "$limit" ]] && extra+=(--time_limit "$limit")
[[ -f "$out/cohort/dataset.json" ]] || python -m neonet_ext.data.synthetic --out "$out/cohort" --cases 96 --seed 0 --int16 --quiet
[[ -f "$out/patches/patches.json" ]] || python -m monai.bundle run --config_file bundles/neoseg/configs/inference.json \
    --datalist_file "$out/cohort/dataset.json" --datalist_key training --output_dir "$out/patches"
stages=("$configs/train_autoencoder.json" "$configs/train_diffusion.json" "$configs/train_controlnet.json")
names=(autoencoder diffusion controlnet)
for i in 0 1 2; do
    files=$(printf "'%s'," "${stages[@]:0:$((i + 1))}")
    echo "== stage $((i + 1)): ${names[$i]}"
    python -m monai.bundle run --config_file "[${files%,}]" --datalist_file "$out/patches/patches.json" \
        --output_dir "$out/runs/${names[$i]}" --ckpt_dir "$out/models" "${extra[@]}"
done
# weights trained on a GPU would hold CUDA tensors: ship them loadable on any machine
python -m neonet_ext.zoo --to-cpu "$out"/models/*.pt
