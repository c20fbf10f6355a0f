#!/bin/sh
# tests/fuzz/run.sh BINARY NAME: runs one libFuzzer target (a VA_FUZZ=ON build) for
# FUZZ_SECONDS (default 60) on a scratch copy of tests/fuzz/corpus/NAME and
# tests/fuzz/regressions/NAME, so the repository's corpus is never written; the
# scratch directory is build/fuzz/run/NAME (next to the binary's build tree).
# Prints one line with the executions and their rate. A crash, a leak, a hang
# (-timeout), an out-of-memory or a sanitizer report exits non-zero and names the
# input that did it: copy it into tests/fuzz/regressions/NAME/ with the fix.
set -eu

bin=$1
name=$2
here=$(cd "$(dirname "$0")" && pwd)
secs=${FUZZ_SECONDS:-60}
work=${FUZZ_WORK:-$(cd "$(dirname "$bin")" && pwd)/run}/$name

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
for d in "$here/corpus/$name" "$here/regressions/$name"; do
    # dot files (.gitkeep) are not inputs
    [ -d "$d" ] && find "$d" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$work/corpus/" \;
done
seeds=$(find "$work/corpus" -type f | wc -l)
dict=""
[ -f "$here/$name.dict" ] && dict="-dict=$here/$name.dict"

# Leaks are findings; a report aborts so that libFuzzer keeps the input.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
# shellcheck disable=SC2086
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" $dict "$work/corpus" >"$work/fuzz.log" 2>&1 || status=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzz.log")
grown=$(find "$work/corpus" -type f | wc -l)
line="fuzz_$name: ${execs:-?} runs in ${secs} s (${rate:-?}/s), corpus $seeds -> $grown inputs"
if [ "$status" != 0 ]; then
    tail -n 80 "$work/fuzz.log"
    line="$line: FAILED (exit $status), log $work/fuzz.log"
    for a in "$work"/artifacts/*; do
        [ -f "$a" ] && line="$line, input $a"
    done
    echo "$line" | tee "$work/summary"
    exit 1
fi
echo "$line" | tee "$work/summary"
