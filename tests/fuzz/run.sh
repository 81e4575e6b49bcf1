#!/bin/bash
# tests/fuzz/run.sh -- builds the libFuzzer target for the DNS query handler
# (clang, -fsanitize=fuzzer,address,undefined) and runs it for a bounded time.
#   tests/fuzz/run.sh            short run (25 s), as part of `make test`
#   tests/fuzz/run.sh SECONDS    longer run, e.g. `tests/fuzz/run.sh 600`
# Prints PASS:/FAIL: lines.
#
# Inputs worth keeping live in the source tree and are replayed first, every
# run (so `make test` fails for as long as one of them still crashes):
#   tests/fuzz/crashes/fuzz_query/  every crash, leak, timeout or OOM input a run
#                                   finds is written here (commit it with the fix)
#   tests/fuzz/corpus/fuzz_query/   other inputs to keep; also seeds for the fuzzer
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECS=${1:-25}
TARGET=fuzz_query
OUT=build/fuzz
KEEP_CRASHES=tests/fuzz/crashes/$TARGET
KEEP_CORPUS=tests/fuzz/corpus/$TARGET
mkdir -p "$OUT" "$KEEP_CRASHES" "$KEEP_CORPUS"
fail() { echo "FAIL: fuzz: $*"; exit 1; }
command -v clang >/dev/null || fail "clang not installed"
PKG="libconfig libmaxminddb libsystemd"
SRC="tests/fuzz/fuzz_query.c dns/query.c dns/rcode.c dns/snap.c dns/zone.c dns/geo.c dns/trie.c dns/edges.c dns/conf.c
     dns/counters.c common/log.c common/xmalloc.c common/buf.c common/addr.c common/cfg.c common/daemon.c common/secret.c"
# shellcheck disable=SC2086
if ! clang -std=c11 -D_GNU_SOURCE -g -O1 -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	$(pkg-config --cflags $PKG) -o "$OUT/fuzz_query" $SRC $(pkg-config --libs $PKG) -lldns -lm -lpthread \
	>"$OUT/build.log" 2>&1; then
	cat "$OUT/build.log"; fail "the fuzz target does not build"
fi
echo "PASS: fuzz: target builds with clang -fsanitize=fuzzer,address,undefined"

# Replay of the kept inputs, one process each so a crash names its input.
replayed=0 bad=()
for f in "$KEEP_CRASHES"/* "$KEEP_CORPUS"/*; do
	[ -f "$f" ] || continue
	replayed=$((replayed + 1))
	if ! "$OUT/$TARGET" -runs=1 -timeout=5 -rss_limit_mb=2048 "$f" >"$OUT/replay.log" 2>&1; then
		bad+=("$f")
		grep -E 'ERROR|SUMMARY|runtime error' "$OUT/replay.log" | head -5 | sed 's/^/    /'
	fi
done
if [ ${#bad[@]} -gt 0 ]; then
	echo "FAIL: fuzz: ${#bad[@]} of $replayed kept inputs still crash: ${bad[*]}"
else
	echo "PASS: fuzz: $replayed kept inputs ($KEEP_CRASHES, $KEEP_CORPUS) replayed with no crash, leak or UB report"
fi
# New coverage found by this run goes to a temp directory: what is worth
# keeping is copied into $KEEP_CORPUS by hand.  The kept corpus starts with a
# few real queries (plain, EDNS, ECS v4/v6, the first byte's transport and
# family bits), one file each, named for what they ask.
CORPUS=$(mktemp -d /tmp/minicdn-fuzz-corpus.XXXXXX)
trap 'rm -rf "$CORPUS"' EXIT
LOG="$OUT/fuzz.log"
before=$(ls -A "$KEEP_CRASHES")
"$OUT/$TARGET" -max_total_time="$SECS" -timeout=5 -rss_limit_mb=2048 -max_len=4096 \
	-artifact_prefix="$KEEP_CRASHES/" -print_final_stats=1 "$CORPUS" "$KEEP_CORPUS" >"$LOG" 2>&1
RC=$?
RUNS=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$LOG" | tail -1)
if [ $RC -ne 0 ]; then
	grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==' "$LOG" | head -20
	new=$(comm -13 <(echo "$before") <(ls -A "$KEEP_CRASHES") | sed "s|^|$KEEP_CRASHES/|" | xargs)
	fail "crash or sanitizer report after ${RUNS:-?} runs; input kept as ${new:-?} (commit it: every run replays it)"
fi
[ "${RUNS:-0}" -gt 1000 ] || fail "only ${RUNS:-0} executions in ${SECS}s"
echo "PASS: fuzz: query handler ran $RUNS inputs in ${SECS}s with no crash, leak or UB report"
[ ${#bad[@]} -eq 0 ]
