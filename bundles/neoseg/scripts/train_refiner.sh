#!/usr/bin/env bash
# Train the tumour refiner (models/refiner.pt) on a CPU, as the shipped one was made (docs/README.md, "Tumour refiner"):
# a synthetic cohort (CASES, default 300, of seed SEED, default 3, int16: neither NeoSeg's training seed 0 nor a
# held-out seed) is generated; the shipped NeoSeg weights segment it and save their class probabilities on each
# input grid (inference.json + refiner_data.json; a re-run keeps the cases done); then train.json + train_refiner.json
# trains the refiner on them (10 % validate). Resumable: run the same command again and every step goes on.
#   bash bundles/neoseg/scripts/train_refiner.sh [OUT_DIR] [extra overrides of the training run...]
# e.g. "--time_limit 3000". Run from the repository root; the best weights land in OUT_DIR/models/refiner.pt.
set -euo pipefail
out=${1:-output/neoseg_refiner}; shift || true
cases=${CASES:-300}
seed=${SEED:-3}
cohort="$out/cohort"
[[ -f "$cohort/dataset.json" ]] || python -m neonet_ext.data.synthetic --out "$cohort" --cases "$cases" --seed "$seed" \
    --int16 --quiet
python -m monai.bundle run --config_file "['bundles/neoseg/configs/inference.json','bundles/neoseg/configs/refiner_data.json']" \
    --datalist_file "$cohort/dataset.json" --datalist_key training --dataset_dir "$cohort" \
    --output_dir "$out/probabilities"
python -m monai.bundle run --config_file "['bundles/neoseg/configs/train.json','bundles/neoseg/configs/train_refiner.json']" \
    --probabilities_dir "$out/probabilities" --output_dir "$out/run" --ckpt_dir "$out/models" "$@"
