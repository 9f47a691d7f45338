#!/usr/bin/env bash
# Every GPU check of the open issues in ONE run, for a session that is lent a device machine
# (about 15 device minutes in all). Run it as the device tool's single command, e.g.
#   make install >/dev/null && bash benchmarks/gpu_checks.sh        (timeout_s ~540)
# Results land in $OUT (or ./gpu-results): one JSON per check plus the log; nothing else is written.
set -uo pipefail
OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
PY="${PY:-.venv/bin/python}"
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
run() { local name="$1"; shift; log "$name"; timeout "${LIMIT:-150}" "$@" >>"$OUT/log.txt" 2>&1; echo "   rc=$?" | tee -a "$OUT/log.txt"; }

nvidia-smi --query-gpu=name,memory.total --format=csv >>"$OUT/log.txt" 2>&1
# 1. issue 11: finetune.py's step vs BasicSR's loop (SwinIR, RRDBNet), same crop/batch/GPU, with and without compile
run "train vs basicsr (quick, + torch.compile)" "$PY" benchmarks/train.py --device cuda --quick --compile --out "$OUT/train-vs-basicsr.json"
# 2. issue 11: SwinIR re-measured after the move to scaled_dot_product_attention (was 133 GiB at 256 px, batch 8)
LIMIT=120 run "sweep swinir/nafnet 256 px" "$PY" benchmarks/train.py --sweep --models swinir nafnet --sizes 256 --out "$OUT/sweep.json"
# 3. CUDA-only tests (diffusers edit backend on GPU; tiled eval autocast paths)
LIMIT=120 run "CUDA tests" "$PY" -m pytest -q -p no:cacheprovider tests/backends/test_backend_diffusers.py tests/training/test_training_inference.py
# 4. issue 13: metrics on CUDA tensors (SSIM/PSNR values equal to CPU; speed)
LIMIT=60 run "metrics on cuda" "$PY" -c "
import torch, json; from ggt_datasets.metrics import psnr, ssim
x = torch.rand(4, 3, 512, 512); y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
c = {k: float(f(x, y, crop_border=4, test_y_channel=True).mean()) for k, f in (('psnr', psnr), ('ssim', ssim))}
g = {k: float(f(x.cuda(), y.cuda(), crop_border=4, test_y_channel=True).mean()) for k, f in (('psnr', psnr), ('ssim', ssim))}
print(json.dumps({'cpu': c, 'cuda': g})); open('$OUT/metrics-cuda.json', 'w').write(json.dumps({'cpu': c, 'cuda': g}))"
log "done"
