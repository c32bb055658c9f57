/**
 * The native runtime's libFuzzer targets (src-main/runtime/fuzz/, `make fuzz`): whether clang can
 * build them here, and running one over a set of inputs or for a few seconds from its seeds.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Why a libFuzzer target cannot be built here, or null: clang with its fuzzer runtime is needed. */
export function fuzzerMissing(): string | null {
  const dir = mkdtempSync('/tmp/vos-fuzz-probe-');
  try {
    const src = join(dir, 'probe.c');
    writeFileSync(src, 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n');
    const r = spawnSync('clang', ['-fsanitize=fuzzer,address,undefined', '-o', join(dir, 'probe'), src], { encoding: 'utf8' });
    if (r.error) return `clang is not installed (${r.error.message})`;
    if (r.status !== 0) return `clang cannot build a libFuzzer target (install its runtime, e.g. libclang-rt-14-dev): ${r.stderr.trim().split('\n').pop()}`;
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface FuzzRun {
  status: number | null;
  stderr: string;
}

/** Runs the fuzzer once over each input (files): a crash, leak or abort fails it. */
export function runInputs(fuzzer: string, cwd: string, inputs: string[]): FuzzRun {
  const r = spawnSync(fuzzer, ['-rss_limit_mb=1024', ...inputs], { encoding: 'utf8', cwd, timeout: 120_000 });
  return { status: r.status, stderr: r.stderr };
}

/** Fuzzes for `seconds` from the seed directories, in a fresh corpus; a finding is written to cwd. */
export function runFor(fuzzer: string, cwd: string, seconds: number, seeds: string[]): FuzzRun {
  const corpus = join(cwd, `corpus-${Date.now()}`);
  mkdirSync(corpus);
  const r = spawnSync(
    fuzzer,
    [`-max_total_time=${seconds}`, '-rss_limit_mb=1024', '-max_len=65536', '-timeout=10', `-artifact_prefix=${cwd}/`, corpus, ...seeds],
    { encoding: 'utf8', cwd, timeout: 120_000 },
  );
  return { status: r.status, stderr: r.stderr };
}
