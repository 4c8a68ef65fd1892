#!/usr/bin/env bash
# Is reading H.264 natively worth it? The synthetic benchmark written as H.264 with B-frames (x264 defaults, GOP 12),
# its MPEG-4 re-encode by `cvkd reencode` (cvkd's defaults but the benchmark's size), the CoViAR teacher recipe
# trained on each for several seeds, and the comparison with paired intervals.
#
# Run: benchmarks/native_vs_reencoded.sh [OUT (default /tmp/cvkd-native)] [SEEDS (default 3)]
# Everything runs under `nice -n 19`. Re-running skips what exists (videos, finished runs).
set -euo pipefail
OUT=${1:-/tmp/cvkd-native}
SEEDS=${2:-3}
CVKD="nice -n 19 ${CVKD_PYTHON:-.venv/bin/python} -m cvkd"
mkdir -p "$OUT"

$CVKD synth "$OUT/h264" --codec h264 --classes 8 --videos-per-class 36 --val-per-class 4 --test-per-class 16 \
    --workers 2 --quiet
start=$(date +%s%N)
$CVKD reencode "$OUT/h264/videos" --out "$OUT/mpeg4/videos" --size 112x112 --workers 1
end=$(date +%s%N)
echo "re-encode wall time, 1 worker: $(( (end - start) / 1000000 )) ms (including the command's start-up)"
cp "$OUT/h264/classes.txt" "$OUT/h264/train.csv" "$OUT/h264/val.csv" "$OUT/h264/test.csv" "$OUT/mpeg4/"

for seed in $(seq 0 $((SEEDS - 1))); do
  for data in h264 mpeg4; do
    name="teacher_${data}_seed${seed}"
    if [ -f "$OUT/runs/$name/summary.json" ]; then continue; fi
    $CVKD train src/cvkd/recipes/synthetic/teachers.yaml data.root="$OUT/$data" output_dir="$OUT/runs" \
        name="$name" seed="$seed" optim.epochs=6 'optim.lr_steps=[4]' --no-progress
  done
done
$CVKD compare "$OUT"/runs/teacher_mpeg4_seed* "$OUT"/runs/teacher_h264_seed* --teacher "$OUT/runs/teacher_h264_seed0" \
    --no-latency --no-progress --out "$OUT/compare"
