#!/usr/bin/env bash
# Reproduces models/nn4_small2_lfw.safetensors (see models/MODEL_CARD.md): NN4-small2 trained from
# scratch with batch-all triplet loss on LFW's View 1 training people, evaluated on View 1's test pairs
# (disjoint people), then written as F16 with its operating point and alignment template.
#   bash scripts/train_default_model.sh [LFW_DIR] [WORK_DIR]
# LFW_DIR holds images_deepfunneled/ and the View 1 files (default ../shared/data/lfw). Takes about
# 111 minutes with both cores of the 2-core project machine (1.17 s per step) when nothing else runs.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

lfw="${1:-$root/../shared/data/lfw}"
work="${2:-$build_dir/train_default_model}"
[[ -f "$lfw/peopleDevTrain.txt" && -d "$lfw/images_deepfunneled" ]] || {
  echo "train_default_model: no LFW (images_deepfunneled/ + peopleDevTrain.txt) under '$lfw'" >&2
  exit 3
}
configure
cmake --build "$build_dir" --target facenet_tool -j 2
facenet="$build_dir/tools/facenet/facenet"
mkdir -p "$work"

# Deep-funneled LFW is already aligned: the centred 128x128 of each 250x250 photo holds the face.
OMP_NUM_THREADS=2 "$facenet" train --data "$lfw/images_deepfunneled" --people "$lfw/peopleDevTrain.txt" --crop 128 \
  --out "$work/nn4_small2_lfw_f32.safetensors" --steps 5700 --batch-people 24 --batch-images 4 --extra-negatives 32 \
  --mining batch-all --optimizer adam --lr 1e-3 --schedule cosine --warmup 50 --seed 1 --threads 2 --workers 1 \
  --checkpoint "$work" --checkpoint-every 50 --eval-pairs "$lfw/pairsDevTest.txt" --eval-images "$lfw/images_deepfunneled" \
  --eval-every 500

# Where MTCNN puts the five landmarks inside those 128x128 crops (medians over deep-funneled LFW, unit
# coordinates): the pipeline warps detected faces onto it, so it sees faces as the network was trained.
template="0.3456 0.4102 0.6743 0.4028 0.5074 0.5991 0.3695 0.7642 0.6630 0.7606"
"$facenet" convert "$work/nn4_small2_lfw_f32.safetensors" "$work/with_template.safetensors" \
  --metadata "align_template=$template"
# The operating point: the 10-fold LFW threshold of the pipeline itself (MTCNN + template warp), as a
# Euclidean distance (eval-lfw reports squared L2).
squared=$("$facenet" eval-lfw --weights "$work/with_template.safetensors" --images "$lfw/images_deepfunneled" \
  --pairs "$lfw/pairsDevTest.txt" --json | tee "$work/eval_pipeline.json" | sed -n 's/.*"threshold": *\([0-9.e+-]*\).*/\1/p')
threshold=$(awk -v t="$squared" 'BEGIN { printf "%.4f", sqrt(t) }')
"$facenet" convert "$work/with_template.safetensors" "$root/models/nn4_small2_lfw.safetensors" --dtype F16 \
  --metadata "threshold=$threshold" --metadata "source=scripts/train_default_model.sh (LFW View 1 training people)"
echo "wrote $root/models/nn4_small2_lfw.safetensors (threshold $threshold); pipeline metrics in $work/eval_pipeline.json"
