#!/usr/bin/env bash
# Train NeoGen's three stages on TLCR patches of the synthetic cohort, as the shipped demo
# weights were made. Run from the repository root:
#   bash bundles/neogen/scripts/train_demo_weights.sh [OUT_DIR] [SECONDS_PER_STAGE]
# 1. a synthetic cohort (96 cases, seed 0: NeoSeg's training cohort);
# 2. NeoSeg (shipped weights) cuts its TLCR patches -> OUT/patches/patches.json;
# 3. autoencoder, then diffusion UNet, then ControlNet, each stopped by --time_limit at the
#    end of the first epoch past SECONDS_PER_STAGE (default: no limit).
# Environment:
#   EPOCHS="A D C"      epochs of the three stages (default: the configs' own, sized for a GPU);
#                       the cosine learning-rate schedules span them
#   SCHEDULER=rflow     train the diffusion UNet and ControlNet with rectified flow
#                       (layers configs/schedulers/rflow.json on stages 2 and 3)
#   AUTOENCODER=FILE    reuse a trained autoencoder (copied to OUT/models) and skip stage 1
#   NEOGEN_OVERRIDES    extra monai.bundle overrides for every stage (e.g. "--num_workers 8")
# Weights land in OUT/models; copy them to bundles/neogen/models to use them by default.
set -euo pipefail
out=${1:-output/neogen_train}
limit=${2:-}
configs=bundles/neogen/configs
extra=(${NEOGEN_OVERRIDES:-})
[[ -n "$limit" ]] && extra+=(--time_limit "$limit")
read -r -a epochs <<< "${EPOCHS:-}"
[[ ${#epochs[@]} -eq 0 || ${#epochs[@]} -eq 3 ]] || { echo "EPOCHS needs three numbers (autoencoder, diffusion, ControlNet), got '${EPOCHS}'" >&2; exit 2; }
scheduler=()
case "${SCHEDULER:-ddpm}" in
    ddpm) ;;
    rflow) scheduler=("$configs/schedulers/rflow.json") ;;
    *) echo "SCHEDULER must be ddpm or rflow, got '${SCHEDULER}'" >&2; exit 2 ;;
esac
bash bundles/neoseg/scripts/cohort_patches.sh "$out" 96 0
first=0
if [[ -n "${AUTOENCODER:-}" ]]; then
    mkdir -p "$out/models" && cp "$AUTOENCODER" "$out/models/model_autoencoder.pt"
    first=1
fi
stages=("$configs/train_autoencoder.json" "$configs/train_diffusion.json" "$configs/train_controlnet.json")
names=(autoencoder diffusion controlnet)
for ((i = first; i < 3; i++)); do
    layers=("${stages[@]:0:$((i + 1))}")
    (( i > 0 )) && layers+=("${scheduler[@]}")
    files=$(printf "'%s'," "${layers[@]}")
    stage_args=()
    [[ ${#epochs[@]} -eq 3 ]] && stage_args=(--epochs "${epochs[$i]}")
    echo "== stage $((i + 1)): ${names[$i]} $(date +%T)"
    python -m monai.bundle run --config_file "[${files%,}]" --datalist_file "$out/patches/patches.json" \
        --output_dir "$out/runs/${names[$i]}" --ckpt_dir "$out/models" "${stage_args[@]}" "${extra[@]}"
done
# weights trained on a GPU would hold CUDA tensors: ship them loadable on any machine
python -m neonet_ext.zoo --to-cpu "$out"/models/*.pt
