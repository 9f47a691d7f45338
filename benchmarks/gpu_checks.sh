#!/usr/bin/env bash
# Every device check of the open issues in ONE run, for a session that is lent a device machine
# (about 15 device minutes in all; one command of at most 10 minutes). Run it from a clean checkout:
#   PY=python3 bash benchmarks/gpu_checks.sh            (timeout_s ~560; MUT_S = seconds per module)
# The device image lacks some packages: make the wheels first with benchmarks/device_wheels.sh.
# Two lanes side by side:
#   CPU lane (issue 15): benchmarks/mutation.py on every money/data module at once, each module with
#     its share of the cores and a sample of its mutants (--max-mutants), stopped after MUT_S seconds.
#   GPU lane (issue 11 follow-ups): the CUDA-only tests, metrics on CUDA tensors, finetune.py's step
#     vs BasicSR's loop (--quick --compile) and the SwinIR/NAFNet 256 px sweep.
# Results land in $OUT (or ./gpu-results): log.txt, mutation.json/.md, one JSON per GPU check, and
# mutation-logs.tar.gz; nothing else is written outside /tmp.
set -uo pipefail
OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
PY="${PY:-.venv/bin/python}"
MUT_S="${MUT_S:-400}"
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
run() { local name="$1"; shift; log "$name"; timeout "${LIMIT:-150}" "$@" >>"$OUT/log.txt" 2>&1; echo "   rc=$? ($name)" | tee -a "$OUT/log.txt"; }

nvidia-smi --query-gpu=name,memory.total --format=csv >>"$OUT/log.txt" 2>&1
nproc >>"$OUT/log.txt"

# CPU lane: module:jobs:max_mutants (jobs sum to about the core count; heavier tests get more jobs)
MUT_PLAN="${MUT_PLAN:-runner:3:150 build:2:150 gates:2:200 pipeline:2:150 ledger:1:120 raw:1:120 hub:1:120 atomic:1:126 pairstore:1:120 transforms:1:150 mixing:1:150}"
mkdir -p /tmp/mut
for item in $MUT_PLAN; do
  IFS=: read -r mod jobs n <<<"$item"
  (timeout $((MUT_S + 90)) "$PY" benchmarks/mutation.py --modules "$mod" --jobs "$jobs" --max-mutants "$n" \
     --module-timeout "$MUT_S" --nice 0 --workdir "/tmp/mut/$mod" --out "/tmp/mut/report-$mod" \
     >"/tmp/mut/$mod.log" 2>&1; echo "rc=$?" >>"/tmp/mut/$mod.log") &
done

# GPU lane
(
  run "CUDA tests" "$PY" -m pytest -q -p no:cacheprovider tests/backends/test_backend_diffusers.py \
      tests/training/test_training_inference.py
  LIMIT=60 run "metrics on cuda" "$PY" -c "
import torch, json; from ggt_datasets.metrics import psnr, ssim
x = torch.rand(4, 3, 512, 512); y = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
c = {k: float(f(x, y, crop_border=4, test_y_channel=True).mean()) for k, f in (('psnr', psnr), ('ssim', ssim))}
g = {k: float(f(x.cuda(), y.cuda(), crop_border=4, test_y_channel=True).mean()) for k, f in (('psnr', psnr), ('ssim', ssim))}
print(json.dumps({'cpu': c, 'cuda': g})); open('$OUT/metrics-cuda.json', 'w').write(json.dumps({'cpu': c, 'cuda': g}))"
  LIMIT=200 run "train vs basicsr (quick, + torch.compile)" "$PY" benchmarks/train.py --device cuda --quick --compile \
      --out "$OUT/train-vs-basicsr.json"
  LIMIT=100 run "sweep swinir/nafnet 256 px" "$PY" benchmarks/train.py --sweep --models swinir nafnet --sizes 256 \
      --out "$OUT/sweep.json"
) &
wait

# one table over the modules
"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out, rows, survivors = Path(sys.argv[1]), [], []
for report in sorted(Path("/tmp/mut").glob("report-*/survivors.json")):
    data = json.loads(report.read_text())
    rows += data["summary"]
    survivors += data["survivors"]
(out / "mutation.json").write_text(json.dumps({"summary": rows, "survivors": survivors}, indent=1, ensure_ascii=False))
md = ["| module | sampled mutants checked | killed | survived | no tests | timeout | kill rate | s/mutant |",
      "|---|---|---|---|---|---|---|---|"]
for r in rows:
    rate = "-" if r["kill_rate"] is None else f"{100 * r['kill_rate']:.1f}%"
    per = "-" if r["s_per_mutant"] is None else f"{r['s_per_mutant']:.1f}"
    md.append(f"| {r['module']} | {r['mutants']} | {r['killed']} | {r['survived']} | {r['no tests']} | {r['timeout']} "
              f"| {rate} | {per} |" + (f" error: {r['error'][:200]}" if r.get("error") else ""))
md += ["", "## Survivors", ""] + [f"- `{s['file']}:{s['line']}` {s['status']}: `{s['change'][:300]}` ({s['mutant']})"
                                  for s in survivors]
(out / "mutation.md").write_text("\n".join(md) + "\n")
print("\n".join(md[: len(rows) + 2]))
EOF
tail -n 3 /tmp/mut/*.log >>"$OUT/log.txt"
tar -czf "$OUT/mutation-logs.tar.gz" -C /tmp/mut $(cd /tmp/mut && ls *.log report-*/survivors.md 2>/dev/null)
log "done"
