#!/usr/bin/env bash
# One time-boxed training round of tools/configs/wide.toml on a lent GPU (the `device`
# tool: about 15 minutes of device time in all, one command at most 10 minutes), from the
# committed compact checkpoint. Every phase stops on wall time, never on a step count:
#   1. stage 1 at the config's lr for S1_HIGH minutes, then at LOW_LR for S1_LOW minutes;
#   2. optionally (S2 > 0) stage 2 from phase 1's end: only g_s trains, so the bitstream
#      stays phase 1's.
# Under OUT it leaves the compact checkpoints (fp16, no optimiser moments), split into
# parts under 15 MiB (the tool returns files of at most 16 MiB; `cat NAME.pt.part_* >
# NAME.pt` joins them), and the logs.
#
#   OUT=/tmp/out CORPUS=data/corpus_gpu bash tools/gpu_round.sh
#
# The corpus travels as the JPEG copy (python -m tools.prepare_corpus --compact DIR
# --compact-mb N, sized so that the tree, the wheels and it fit the tool's 64 MiB), the
# packages the GPU image lacks as wheels in an ignored .whl/ (tools/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:?set OUT to the folder for the results}
CORPUS=${CORPUS:-data/corpus_gpu}
INIT=${INIT:-checkpoints/wide.pt}
RUNS=${RUNS:-runs/gpu}
S1_HIGH=${S1_HIGH:-5}
S1_LOW=${S1_LOW:-2.5}
LOW_LR=${LOW_LR:-1e-5}
S2=${S2:-0}
CONFIG=${CONFIG:-tools/configs/wide.toml}
GPU_SETTINGS=(--set crop=256 --set batch=16 --set sampler_workers=12 --set stage1_steps=100000000
  --set log_every=100 --set checkpoint_every=1000)
mkdir -p "$RUNS" "$OUT"

train() {  # train MINUTES ARGS...: a hard timeout backs up --max-minutes
  local minutes=$1; shift
  timeout "$(awk "BEGIN {print int($minutes * 60 + 120)}")" \
    "$PYTHON" -m tools.train --config "$CONFIG" --corpus "$CORPUS" --max-minutes "$minutes" "${GPU_SETTINGS[@]}" "$@"
}

pack() {  # pack NAME: RUNS/NAME/checkpoint.pt -> OUT/NAME.pt.part_* (compact, fp16)
  if [[ ! -f "$RUNS/$1/checkpoint.pt" ]]; then echo "$1: no checkpoint"; return; fi
  "$PYTHON" -c 'import sys; from tools.training import compact_checkpoint as c; print(sys.argv[3], "step", c(sys.argv[1], sys.argv[2]))' \
    "$RUNS/$1/checkpoint.pt" "/tmp/$1.pt" "$1"
  split -b 15m "/tmp/$1.pt" "$OUT/$1.pt.part_"
}

echo "== stage 1 from $INIT ($(date +%T))"
train "$S1_HIGH" --run "$RUNS/stage1" --init-from "$INIT" >"$RUNS/stage1_high.log" 2>&1
train "$S1_LOW" --run "$RUNS/stage1" --set lr="$LOW_LR" >"$RUNS/stage1_low.log" 2>&1
tail -n 2 "$RUNS/stage1_low.log"
pack stage1

if awk "BEGIN {exit !($S2 > 0)}"; then
  echo "== stage 2 ($(date +%T))"
  step=$("$PYTHON" -c 'import sys, torch; print(torch.load(sys.argv[1], weights_only=False)["step"])' "$RUNS/stage1/checkpoint.pt")
  train "$S2" --run "$RUNS/stage2" --init-from "$RUNS/stage1/checkpoint.pt" --set stage1_steps="$step" \
    --set region_workers=4 >"$RUNS/stage2.log" 2>&1
  tail -n 1 "$RUNS/stage2.log"
  pack stage2
fi

echo "== done after ${SECONDS}s"
tar czf "$OUT/logs.tgz" "$RUNS"/*.log "$RUNS"/*/log.jsonl
ls -l "$OUT"
