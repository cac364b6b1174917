#!/usr/bin/env bash
# One GPU, a few minutes: SSL extraction throughput (WavLM-base-sized encoder, random
# weights, fp16 and fp32: clips/s and real-time factor) and one `similar` epoch at
# 1M ratings / 12k annotators / 150k clips x 768 (synthetic, benchmarks/scale/synth.py).
#
#   bash benchmarks/scale/gpu.sh                 # on the GPU machine; results in $OUT or ./gpu-results
#   DEVICE=cpu TINY=1 bash benchmarks/scale/gpu.sh   # the same steps at tiny sizes on a CPU (a check)
#
# Each result is one JSON line in $OUT/gpu_results.jsonl; nvidia-smi's view of the GPU
# goes to $OUT/nvidia-smi.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-./gpu-results}"
DEVICE="${DEVICE:-cuda}"
mkdir -p "$OUT"
RES="$OUT/gpu_results.jsonl"
: > "$RES"
PY="${PYTHON:-python}"
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
if ! "$PY" -c "import perser" 2>/dev/null; then
  "$PY" -m pip install -q -e ".[test]"
fi
(command -v nvidia-smi >/dev/null && nvidia-smi > "$OUT/nvidia-smi.txt") || echo "no nvidia-smi" > "$OUT/nvidia-smi.txt"
"$PY" -c "import torch, json; print(json.dumps({'what': 'env', 'torch': torch.__version__, 'cuda': torch.cuda.is_available(), 'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}))" | tee -a "$RES"

if [ -n "${TINY:-}" ]; then
  SSL=(--tiny --n 6 --threads 1)
  FIT=(--ratings 20000 --annotators 500 --clips 5000 --dim 64)
else
  SSL=(--n 400 --batch-size 16)
  FIT=(--ratings 1000000 --annotators 12000 --clips 150000 --dim 768)
fi

echo "== SSL extraction throughput"
"$PY" benchmarks/scale/ssl_throughput.py --device "$DEVICE" --precision fp16 fp32 "${SSL[@]}" --json "$RES" \
  ${TINY:+--precision fp32}

echo "== one similar epoch"
for prec in auto fp32; do
  "$PY" benchmarks/scale/bench.py one similar "${FIT[@]}" --device "$DEVICE" --precision "$prec" \
    --cache "${CACHE:-/tmp/perser-scale}" | grep '^RESULT ' | sed 's/^RESULT //' | tee -a "$RES"
done
echo "results: $RES"
