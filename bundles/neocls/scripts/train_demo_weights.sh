#!/usr/bin/env bash
# Train PattenNet as the shipped weights were made. Run from the repository root:
#   bash bundles/neocls/scripts/train_demo_weights.sh [OUT_DIR] [RATIO] [EXTRA monai.bundle overrides...]
# 1. scripts/training_size.py at one size: the 1000-case synthetic training cohort (seed 0) with its
#    ground-truth TLCR patches, the held-out cohorts of 144 (seed 2001) and 500 (seed 2002) patients;
# 2. with RATIO above 0 (default 0), RATIO x (n_neg - n_pos) NeoGen PNI+ patches generated from the masks of
#    the training split's PNI+ patients (NEOGEN_MODELS, default bundles/neogen/models);
# 3. train.json for 16 epochs on cached latents (learning rate 3e-4, the config's other defaults), the last
#    epoch's weights scored on both held-out cohorts (OUT_DIR/results.md) and written to OUT_DIR/model.pt.
# Copy OUT_DIR/model.pt to bundles/neocls/models to ship it, and fit the input gate's latent reference
# for it (scripts/fit_latent_reference.py, NeoCls docs).
set -euo pipefail
out=${1:-output/neocls_train}
ratio=${2:-0}
shift $(( $# < 2 ? $# : 2 ))
python bundles/neocls/scripts/training_size.py --out "$out" --sizes 1000 --heldout 144 500 --heldout_seed 2001 2002 \
    --epochs 16 --learning_rate 3e-4 --synthetic_ratio "$ratio" --neogen_models "${NEOGEN_MODELS:-bundles/neogen/models}" \
    -- --num_workers 0 "$@"
# the scored weights are the last epoch's; on a GPU they would hold CUDA tensors: saved loadable on any machine
python - "$out" <<'EOF'
import sys
from pathlib import Path

import torch

from neonet_ext.engines import latest_checkpoint
from neonet_ext.utils.io import atomic_write

out = Path(sys.argv[1])
state = torch.load(latest_checkpoint(str(out / "n1000" / "runs" / "checkpoints")), map_location="cpu", weights_only=True)
atomic_write(out / "model.pt", lambda tmp: torch.save(state["model"], tmp))
print(f"== {out / 'model.pt'}")
EOF
