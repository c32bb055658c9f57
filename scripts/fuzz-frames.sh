#!/usr/bin/env bash
# A long run of the frame decoders' fuzzer (test/helpers/frame-fuzz.ts, test/unit/frame-fuzz.test.ts):
# the local API's frames and the link's frames, mutated from test/unit/fuzz-seeds.
#   scripts/fuzz-frames.sh [SECONDS PER TARGET AND SEED (default 300)] [SEED (default: a random one)]
# Each target runs with the suite's fixed seed and with SEED. A finding names the seed and the
# input, and writes the input to /tmp/vos-fuzz-*/regress-*.hex: commit it under
# test/unit/fuzz-seeds/TARGET/ with the fix, where the suite runs it every time.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
export FUZZ_MS=$((seconds * 1000))
if [ -n "${2:-}" ]; then export FUZZ_SEED="$2"; fi
exec node node_modules/vitest/vitest.mjs run test/unit/frame-fuzz.test.ts -t 'survives mutated seeds|kept regression'
