#!/usr/bin/env bash
# A long run of the image reader's libFuzzer target (src-main/runtime/fuzz/image-reader.c).
#   scripts/fuzz-image.sh [SECONDS (default 600)] [more libFuzzer options...]
# Needs clang and its fuzzer runtime (Debian: clang, libclang-rt-14-dev). The corpus grows in
# out/fuzz/corpus (not in the tree), starting from the committed seeds; a crash is written to
# out/fuzz/ as crash-*: commit it under test/runtime/fuzz/regressions/ with the fix, where
# test/runtime/fuzz-image.test.ts runs it on every test run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
out="$PWD/out/fuzz"
make -s -C src-main/runtime fuzz OUT="$out"
mkdir -p "$out/corpus"
cd "$out"
exec ./fuzz-image-reader -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=1048576 -timeout=10 \
	-artifact_prefix="$out/" "$@" corpus ../../src-main/runtime/fuzz/seeds ../../test/runtime/fuzz/regressions
