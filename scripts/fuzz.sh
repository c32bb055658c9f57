#!/usr/bin/env bash
# A long run of every fuzzer, one after the other, SECONDS each:
#   scripts/fuzz.sh [SECONDS (default 600)] [TARGET...]
# Targets: image-reader, restore-plan (the native runtime's libFuzzer targets, src-main/runtime/
# fuzz/; need clang and its fuzzer runtime, Debian: clang, libclang-rt-14-dev) and frames (the
# local API's and the link's frame decoders, scripts/fuzz-frames.sh). Default: all of them.
# The libFuzzer corpora grow in out/fuzz/corpus-TARGET (not in the tree), from the committed
# seeds; a finding is written to out/fuzz/ as crash-*, leak-*, timeout-* or oom-*: commit it
# with the fix under test/runtime/fuzz/regressions/ (image-reader) or plan-regressions/
# (restore-plan), where test/runtime/fuzz-*.test.ts runs it on every test run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(image-reader restore-plan frames); fi
root="$PWD"
out="$root/out/fuzz"
seeds="$root/src-main/runtime/fuzz"
regressions="$root/test/runtime/fuzz"
status=0
for t in "${targets[@]}"; do
	echo "== $t: $seconds s"
	case "$t" in
	image-reader) dirs=("$seeds/seeds" "$regressions/regressions") ;;
	restore-plan) dirs=("$seeds/seeds" "$seeds/plan-seeds" "$regressions/plan-regressions") ;;
	frames)
		scripts/fuzz-frames.sh "$seconds" || status=1
		continue
		;;
	*) echo "unknown target $t" >&2; exit 2 ;;
	esac
	make -s -C src-main/runtime OUT="$out" "$out/fuzz-$t"
	mkdir -p "$out/corpus-$t"
	existing=()
	for d in "${dirs[@]}"; do if [ -d "$d" ]; then existing+=("$d"); fi; done
	(cd "$out" && "./fuzz-$t" -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=1048576 -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$out/" "corpus-$t" "${existing[@]}") || status=1
done
exit $status
