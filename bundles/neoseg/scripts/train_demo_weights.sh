#!/usr/bin/env bash
# Reproduce the shipped demo weights (models/model.pt): generate the synthetic training
# cohort, then train the default network (SegResNet) with train.json.
#   bash bundles/neoseg/scripts/train_demo_weights.sh [OUT_DIR] [extra monai.bundle overrides...]
# e.g. "--time_limit 540" to stop cleanly before a 10-minute machine limit; run it again
# and training resumes from OUT_DIR/run/checkpoints. Run from the repository root. Seeds: cohort 0 (training/validation); the held-out
# evaluation cohort uses seed 777, never used in training.
set -euo pipefail
out=${1:-output/neoseg_train}; shift || true
[[ -f "$out/cohort/dataset.json" ]] || python -m neonet_ext.data.synthetic --out "$out/cohort" --cases 96 --seed 0 --int16 --quiet
python -m monai.bundle run --config_file bundles/neoseg/configs/train.json \
    --dataset_dir "$out/cohort" --output_dir "$out/run" --ckpt_dir "$out/models" \
    --epochs 300 --val_interval 5 --num_workers 8 "$@"
# weights trained on a GPU would hold CUDA tensors: ship them loadable on any machine
python -m neonet_ext.zoo --to-cpu "$out/models/model.pt"
