#!/usr/bin/env bash
# A synthetic cohort and the TLCR patches NeoSeg's shipped weights cut from it: what NeoGen and
# NeoCls train and are evaluated on. Run from the repository root; a step whose output exists is
# skipped, so a second call reuses the first's work:
#   bash bundles/neoseg/scripts/cohort_patches.sh DIR CASES SEED [neonet_ext.data.synthetic options...]
# -> DIR/cohort/dataset.json and DIR/patches/patches.json
set -euo pipefail
(( $# >= 3 )) || { echo "usage: $0 DIR CASES SEED [neonet_ext.data.synthetic options...]" >&2; exit 2; }
dir=$1 cases=$2 seed=$3
shift 3
[[ -f "$dir/cohort/dataset.json" ]] || python -m neonet_ext.data.synthetic --out "$dir/cohort" \
    --cases "$cases" --seed "$seed" --int16 --quiet "$@"
[[ -f "$dir/patches/patches.json" ]] || python -m monai.bundle run --config_file bundles/neoseg/configs/inference.json \
    --datalist_file "$dir/cohort/dataset.json" --datalist_key training --output_dir "$dir/patches"
