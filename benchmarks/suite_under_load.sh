#!/usr/bin/env bash
# The test suite under CPU load (issue 15): run `make test` RUNS times in a row (default 2) while
# BUSY processes (default 2) each burn one core, as a loaded CI machine would. Exits non-zero when any
# run fails. Not part of CI (it takes RUNS x the suite's time, about twice as long under load).
#   bash benchmarks/suite_under_load.sh            # RUNS=2 BUSY=2
set -uo pipefail
RUNS="${RUNS:-2}"
BUSY="${BUSY:-2}"
pids=()
for _ in $(seq "$BUSY"); do
  python3 -c "while True: pass" &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
echo "busy-loop processes: ${pids[*]} on $(nproc) cores"
status=0
for i in $(seq "$RUNS"); do
  start=$(date +%s)
  log="${LOGDIR:-/tmp}/suite-under-load-$i.log"
  make test >"$log" 2>&1
  rc=$?
  echo "run $i: exit $rc in $(( $(date +%s) - start )) s; $(grep -E '^=+ .*(passed|failed).* =+$' "$log" | tail -1)"
  [ "$rc" -eq 0 ] || status=1
done
exit "$status"
