#!/usr/bin/env bash
# Issue 13's GPU measurements in one prepared run: training speed of every preset at the paper's sizes
# (mixed precision as our trainer runs on CUDA, then float32), each beside the emulated release and the
# GPU's measured float32 matmul peak, then inference speed. Nothing else runs on the GPU meanwhile.
#
#   bash benchmarks/gpu_speed.sh                      # on the GPU machine; results into $OUT or benchmarks/results/gpu
#   DEVICE=cpu QUICK=1 bash benchmarks/gpu_speed.sh   # a smoke run of the same steps on CPU (seconds)
#
# Budget: one step per precision and model family, each with its own time limit (STEP_LIMIT seconds,
# default 80), so the whole script stays under about 8 minutes and what finished is kept when a step
# is cut short (each step writes its own table).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
OUT_DIR=${OUT:-benchmarks/results/gpu}
LIMIT=${STEP_LIMIT:-80}
mkdir -p "$OUT_DIR"
if [ -n "${QUICK:-}" ]; then
  TRAIN=(--quick --device "$DEVICE") INFER=(--quick --device "$DEVICE")
else
  TRAIN=(--device "$DEVICE" --size paper --seconds 2 --rounds 3) INFER=(--device "$DEVICE" --sizes paper --seconds 1)
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
  | tee "$OUT_DIR/device.txt"
status=0
run() {  # a name, then the command; its output goes to <name>.log beside the results
  local name=$1; shift
  echo "== $name: $*"
  timeout "$LIMIT" "$@" >"$OUT_DIR/$name.log" 2>&1
  local rc=$?
  tail -n 3 "$OUT_DIR/$name.log"
  [ $rc -eq 0 ] || { echo "!! $name exited $rc (124: cut at ${LIMIT}s)"; status=1; }
}
for family in grid reacher rotation; do
  case $family in grid|reacher) presets="$family/ours,$family/none,$family/full" ;; rotation) presets="rotation/ours,rotation/matmul,rotation/none" ;; esac
  run "train_amp_$family" "$PY" benchmarks/train_speed.py "${TRAIN[@]}" --presets "$presets" --amp --out "$OUT_DIR/train_amp_$family"
  run "train_fp32_$family" "$PY" benchmarks/train_speed.py "${TRAIN[@]}" --presets "$presets" --out "$OUT_DIR/train_fp32_$family"
done
run inference "$PY" benchmarks/inference_speed.py "${INFER[@]}" --out "$OUT_DIR/inference"
exit $status
