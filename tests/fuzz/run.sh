#!/bin/bash
# tests/fuzz/run.sh -- builds the libFuzzer target for the DNS query handler
# (clang, -fsanitize=fuzzer,address,undefined) and runs it for a bounded time.
#   tests/fuzz/run.sh            short run (25 s), as part of `make test`
#   tests/fuzz/run.sh SECONDS    longer run, e.g. `tests/fuzz/run.sh 600`
# Prints PASS:/FAIL: lines.  Crash inputs are kept in build/fuzz/crashes/.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECS=${1:-25}
OUT=build/fuzz
mkdir -p "$OUT/crashes"
fail() { echo "FAIL: fuzz: $*"; exit 1; }
command -v clang >/dev/null || fail "clang not installed"
PKG="libconfig libmaxminddb"
SRC="tests/fuzz/fuzz_query.c dns/query.c dns/rcode.c dns/snap.c dns/zone.c dns/geo.c dns/trie.c dns/edges.c dns/conf.c
     dns/counters.c common/log.c common/xmalloc.c common/buf.c common/addr.c common/cfg.c common/daemon.c"
# shellcheck disable=SC2086
if ! clang -std=c11 -D_GNU_SOURCE -g -O1 -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	$(pkg-config --cflags $PKG) -o "$OUT/fuzz_query" $SRC $(pkg-config --libs $PKG) -lldns -lm -lpthread \
	>"$OUT/build.log" 2>&1; then
	cat "$OUT/build.log"; fail "the fuzz target does not build"
fi
echo "PASS: fuzz: target builds with clang -fsanitize=fuzzer,address,undefined"
# Seed corpus: a few real queries (plain, EDNS, ECS v4/v6, TCP selector bits).
CORPUS=$(mktemp -d /tmp/minicdn-fuzz-corpus.XXXXXX)
trap 'rm -rf "$CORPUS"' EXIT
python3 - "$CORPUS" <<'PY'
import os, struct, sys
d = sys.argv[1]
def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".") if l) + b"\0"
def q(n, t, opt=b"", sel=0, qid=0x1234):
    ar = 1 if opt else 0
    return bytes([sel]) + struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, ar) + name(n) + struct.pack(">HH", t, 1) + opt
def optrr(opts=b"", ver=0):
    return b"\0" + struct.pack(">HHBBHH", 41, 1232, 0, ver, 0, len(opts)) + opts
ecs4 = struct.pack(">HHHBB", 8, 7, 1, 24, 0) + bytes([10, 1, 2])
ecs6 = struct.pack(">HHHBB", 8, 10, 2, 48, 0) + bytes([0x20, 1, 0xd, 0xb8, 0, 1])
seeds = [q("www.cdn.test", 1), q("www.cdn.test", 28, optrr(ecs4), 1), q("x.cdn.test", 1, optrr(ecs6), 4),
         q("c1.cdn.test", 1, optrr()), q("loop1.cdn.test", 1), q("a.b.sub.cdn.test", 1, sel=2),
         q("cdn.test", 15, optrr(), 8), q("big.cdn.test", 16, sel=8), q("big.cdn.test", 16, optrr(), 4),
         q("foo.w.cdn.test", 255, optrr(ver=1)), q("nope.example", 1), q("cdn.test", 6, optrr(ecs4 + ecs4))]
for i, s in enumerate(seeds):
    open(os.path.join(d, "seed%02d" % i), "wb").write(s)
PY
LOG="$OUT/fuzz.log"
"$OUT/fuzz_query" -max_total_time="$SECS" -timeout=5 -rss_limit_mb=2048 -max_len=4096 \
	-artifact_prefix="$OUT/crashes/" -print_final_stats=1 "$CORPUS" >"$LOG" 2>&1
RC=$?
RUNS=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$LOG" | tail -1)
if [ $RC -ne 0 ]; then
	grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==' "$LOG" | head -20
	fail "crash or sanitizer report after ${RUNS:-?} runs (input in $OUT/crashes/)"
fi
[ "${RUNS:-0}" -gt 1000 ] || fail "only ${RUNS:-0} executions in ${SECS}s"
echo "PASS: fuzz: query handler ran $RUNS inputs in ${SECS}s with no crash, leak or UB report"
