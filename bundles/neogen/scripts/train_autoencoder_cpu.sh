#!/usr/bin/env bash
# NeoGen's autoencoder on a 2-core CPU, in two phases, as the next weights are made. Run from the
# repository root:
#   bash bundles/neogen/scripts/train_autoencoder_cpu.sh PATCHES_JSON OUT_DIR
# PATCHES_JSON: TLCR patches of a large cohort, e.g. the 1000-case ground-truth patches that
#   `bundles/neocls/scripts/training_size.py --sizes 1000` writes to OUT/train/patches/patches.json.
# 1. 32x32x32 random crops of all three inputs, batch 8, learning rate 3e-4 on a cosine
#    (many cheap updates: the network is fully convolutional);
# 2. whole 64x64x32 crops, batch 4, learning rate 1e-5 on a cosine, from phase 1's last checkpoint
#    (its autoencoder's weights; a new optimiser, started near the rate where phase 1 ended):
#    GroupNorm's statistics span the whole input, so a network trained on small crops alone
#    drifts from the crop it encodes. The best validation PSNR of this phase is kept.
# Environment:
#   PHASE_EPOCHS="A B"   epochs of the two phases (default "7 2")
#   PHASE_UPDATES="A B"  updates per epoch (default "300 200")
#   PHASE_LEARNING_RATES="A B"  initial learning rates of the two cosines (default "0.0003 0.00001")
#   AUTOENCODER_ARGS     the network's overrides (default: 2x2x2 blocks folded into channels, one level of
#                        64 channels, 8 latent channels: a latent voxel per 2x2x2 block)
#   KL_WEIGHT            weight of the KL term (default 1e-8: at the config's 1e-6 the posterior's sigma stays near
#                        0.8 on this one-value-per-voxel latent, which then carries little of the crop's detail)
#   AMP=True|False       bfloat16 autocast (default: where this CPU runs bfloat16 natively; emulated it is slower)
# Both phases resume from their newest checkpoint when run again. Weights: OUT/models/model_autoencoder.pt.
set -euo pipefail
patches=${1:?usage: train_autoencoder_cpu.sh PATCHES_JSON OUT_DIR}
out=${2:?usage: train_autoencoder_cpu.sh PATCHES_JSON OUT_DIR}
read -r -a epochs <<< "${PHASE_EPOCHS:-7 2}"
read -r -a updates <<< "${PHASE_UPDATES:-300 200}"
read -r -a rates <<< "${PHASE_LEARNING_RATES:-0.0003 0.00001}"
read -r -a network <<< "${AUTOENCODER_ARGS:---autoencoder_def#block_size 2 --autoencoder_def#channels [64] --autoencoder_def#latent_channels 8}"
amp=${AMP:-$(python -c "from neonet_ext.engines import cpu_has_fast_bfloat16; print(cpu_has_fast_bfloat16())")}
config=bundles/neogen/configs/train_autoencoder.json
common=(--datalist_file "$patches" --val_fraction 0.05 --num_workers 0 --amp "$amp" --adversarial_start_epoch 1000
        --kl_weight "${KL_WEIGHT:-1e-8}"
        "${network[@]}")

echo "== phase 1: 32x32x32 crops $(date +%T)"
python -m monai.bundle run --config_file "$config" "${common[@]}" \
    --output_dir "$out/phase1" --ckpt_dir "$out/phase1/models" \
    --epochs "${epochs[0]}" --train#trainer#epoch_length "${updates[0]}" --val_interval 3 \
    --batch_size 8 --learning_rate "${rates[0]}" --train_crop_size "[32, 32, 32]"

last=$(python -c "from neonet_ext.engines import latest_checkpoint; print(latest_checkpoint('$out/phase1/checkpoints'))")

echo "== phase 2: whole crops $(date +%T)"
python -m monai.bundle run --config_file "$config" "${common[@]}" \
    --output_dir "$out/phase2" --ckpt_dir "$out/models" --pretrained_checkpoint "$last" \
    --epochs "${epochs[1]}" --train#trainer#epoch_length "${updates[1]}" --val_interval 1 \
    --batch_size 4 --learning_rate "${rates[1]}"
echo "== done $(date +%T): $out/models/model_autoencoder.pt"
