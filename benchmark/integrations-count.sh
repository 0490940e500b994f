#!/usr/bin/env bash
# Instructions per chat.completions.create call, bare `openai` SDK vs tollgate/openai over an
# in-process guard, non-streaming and streaming, counted by valgrind's callgrind in the steady
# state: each variant runs WARM calls uncounted (the JIT settles), then CALLS counted. A count
# of instructions does not move with the machine's load, as wall-clock time does.
#   benchmark/integrations-count.sh            # WARM=1500 CALLS=600 (about 4 minutes a variant)
#   WARM=300 CALLS=100 benchmark/integrations-count.sh
# Needs valgrind (callgrind_control) and a release build of the addon.
set -euo pipefail
cd "$(dirname "$0")/.."
WARM=${WARM:-1500}
CALLS=${CALLS:-600}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

count() { # variant stream → instructions counted
  local out="$tmp/$1.$2" fifo="$tmp/$1.$2.fifo"
  mkfifo "$fifo"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.cg" \
    node benchmark/integrations.js --count "$1" "$2" "$WARM" "$CALLS" >"$fifo" 2>"$out.err" &
  local pid=$!
  while read -r line; do
    if [ "$line" = ready ]; then
      callgrind_control -i on "$pid" >/dev/null 2>&1
      kill -USR2 "$pid"
    fi
  done <"$fifo"
  wait "$pid"
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out.err"
}

echo "tollgate/openai, instructions per call (callgrind; $WARM calls of warm-up, then $CALLS counted)"
for stream in 0 1; do
  kind=$([ "$stream" = 1 ] && echo streaming || echo non-streaming)
  bare=$(count bare "$stream")
  guarded=$(count memory "$stream")
  node -e '
    const [bare, guarded, calls, kind] = [Number(process.argv[1]), Number(process.argv[2]), Number(process.argv[3]), process.argv[4]]
    const k = (x) => Math.round(x / calls / 1000).toLocaleString("en-US") + "K"
    console.log(`   ${kind.padEnd(14)} bare ${k(bare)}   guarded (in-process) ${k(guarded)}   +${k(guarded - bare)} = +${((guarded / bare - 1) * 100).toFixed(1)}%`)
  ' "$bare" "$guarded" "$CALLS" "$kind"
done
