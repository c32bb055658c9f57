#!/usr/bin/env bash
# The runtime's tests against the sanitizer build (src-main/runtime/Makefile, `make sanitize`):
# vos-init with AddressSanitizer (LeakSanitizer included) and UndefinedBehaviorSanitizer, the
# blob and libvos.so with trapping UBSan, the tests' C tools with ASan and UBSan.
#   scripts/test-sanitize.sh [vitest arguments (default: test/runtime)]
# Every sanitizer report is written to a log directory (log_path) rather than to a terminal the
# tests read; any report fails the run, and is printed at its end.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
out="$PWD/out/runtime-asan"
make -s -C src-main/runtime sanitize SANITIZE_OUT="$out"
logs=$(mktemp -d /tmp/vos-sanitize-XXXXXX)
export VOS_RUNTIME_DIR="$out" VOS_TEST_SANITIZE=1
# No allocation over 1 GiB (what the damaged-image tests otherwise check with an address-space
# limit, which ASan's shadow memory rules out).
export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1:abort_on_error=0:exitcode=86:max_allocation_size_mb=1024"
export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1:exitcode=87"
if [ $# -eq 0 ]; then set -- test/runtime; fi
status=0
node node_modules/vitest/vitest.mjs run "$@" || status=$?
if [ -n "$(ls -A "$logs")" ]; then
	echo "sanitizer reports ($logs):"
	for f in "$logs"/*; do echo "== $f"; cat "$f"; done
	status=1
else
	rmdir "$logs"
fi
echo "test:sanitize took $(($(date +%s) - start)) s"
exit $status
