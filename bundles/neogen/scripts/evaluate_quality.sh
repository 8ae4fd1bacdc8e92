#!/usr/bin/env bash
# Measure what NeoGen's weights generate against real patches, as the docs' quality table was made.
# Run from the repository root:
#   bash bundles/neogen/scripts/evaluate_quality.sh [OUT_DIR] [NUM_SAMPLES]
# 1. the training patches: NeoSeg's TLCR patches of NeoGen's training cohort (96 cases, seed 0),
#    as train_demo_weights.sh cuts them (reused from TRAIN_DIR, default output/neogen_train);
# 2. held-out real patches: a cohort NeoGen never saw (48 cases, seed 1001), cut the same way;
# 3. NUM_SAMPLES (default 24) patches of each class from the training patches' masks of that
#    class (inference.json, DDIM 50 by default; SCHEDULER_CONFIG=path layers another scheduler);
# 4. neonet_ext.generative.quality for each class -> OUT/quality_class<c>.json, and a grid of
#    real and generated PNI+ crops -> OUT/grid_class1.png.
# NEOGEN_MODELS (default bundles/neogen/models) holds the three networks' weights.
set -euo pipefail
out=${1:-output/neogen_quality}
samples=${2:-24}
train_dir=${TRAIN_DIR:-output/neogen_train}
models=${NEOGEN_MODELS:-bundles/neogen/models}
configs="'bundles/neogen/configs/inference.json'"
[[ -n "${SCHEDULER_CONFIG:-}" ]] && configs+=",'${SCHEDULER_CONFIG}'"
bash bundles/neoseg/scripts/cohort_patches.sh "$train_dir" 96 0
bash bundles/neoseg/scripts/cohort_patches.sh "$out/heldout" 48 1001
for class in 1 0; do
    echo "== class $class: $samples patches $(date +%T)"
    [[ -f "$out/class$class/synthetic_patches.json" ]] || python -m monai.bundle run --config_file "[$configs]" \
        --datalist_file "$train_dir/patches/patches.json" --ckpt_dir "$models" --class_index "$class" \
        --num_samples "$samples" --seed 1 --output_dir "$out/class$class"
    grid=()
    [[ $class == 1 ]] && grid=(--grid "$out/grid_class1.png")
    python -m neonet_ext.generative.quality --synthetic "$out/class$class/synthetic_patches.json" \
        --real "$out/heldout/patches/patches.json" --train "$train_dir/patches/patches.json" \
        --json "$out/quality_class$class.json" "${grid[@]}"
done
