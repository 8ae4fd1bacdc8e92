#!/usr/bin/env bash
# Fine-tune the shipped NeoSeg weights on a CPU (the recipe of the CPU fine-tune in docs/README.md):
# a synthetic cohort of seed 0 (COHORT_CASES, default 1000, one permuted block, int16) is generated, and its
# first CASES cases (default 420; 5 % of them validate) train train.json from models/model.pt at a lower
# learning rate. Resumable: run the same command again after an interruption and training goes on
# from OUT_DIR/run/checkpoints (a time limit stops it cleanly at the end of an epoch).
#   bash bundles/neoseg/scripts/finetune_cpu.sh [OUT_DIR] [extra monai.bundle overrides...]
# e.g. "--time_limit 8400". Run from the repository root; the held-out seeds (777, 1001, 1002) are never used here.
set -euo pipefail
out=${1:-output/neoseg_finetune}; shift || true
cohort_cases=${COHORT_CASES:-1000}
cases=${CASES:-420}
cohort="$out/cohort"
[[ -f "$cohort/dataset.json" ]] || python -m neonet_ext.data.synthetic --out "$cohort" --cases "$cohort_cases" --seed 0 \
    --block-size "$cohort_cases" --int16 --quiet
python - "$cohort" "$cases" <<'PY'
import json, sys
from pathlib import Path
from neonet_ext.utils.io import atomic_write
cohort, cases = Path(sys.argv[1]), int(sys.argv[2])
dataset = json.loads((cohort / "dataset.json").read_text())
dataset["training"] = dataset["training"][:cases]
dataset["numTraining"] = cases
text = json.dumps(dataset, indent=1)
atomic_write(cohort / f"dataset_first{cases}.json", lambda tmp: tmp.write_text(text))
PY
python -m monai.bundle run --config_file bundles/neoseg/configs/train.json \
    --dataset_dir "$cohort" --datalist_file "$cohort/dataset_first$cases.json" --val_fraction 0.05 \
    --output_dir "$out/run" --ckpt_dir "$out/models" --pretrained_checkpoint bundles/neoseg/models/model.pt \
    --learning_rate 1e-4 --epochs 24 --val_interval 2 --num_workers 2 "$@"
