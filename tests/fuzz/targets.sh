#!/bin/bash
# tests/fuzz/targets.sh -- libFuzzer targets for the HTTP side (beside the DNS
# one in run.sh): request-head checks, Cache-Control / CDN-Cache-Control,
# Range, cache keys, HTTP dates, Vary matching, the origin's path resolution,
# the origin client's HTTP/1.1 response parser.
#   tests/fuzz/targets.sh             each target 5 s (as part of `make test`)
#   tests/fuzz/targets.sh SECONDS     each target SECONDS (`make fuzz`: 60)
#   FUZZ_TARGETS="fuzz_range" ...     only these
# Every source of common/, edge/ (but main.c) and origin/ (but main.c) is
# built once with clang -fsanitize=fuzzer-no-link,address,undefined, so a
# target keeps building when modules move between files.
# Kept inputs: tests/fuzz/corpus/<target>/ (seeds, replayed first) and
# tests/fuzz/crashes/<target>/ (what a run found; replayed first, every run,
# so a crash fails `make test` until fixed).  Prints PASS:/FAIL: lines and
# one "fuzz: <target> runs=N" line per target.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECS=${1:-5}
OUT=build/fuzz
TARGETS=${FUZZ_TARGETS:-fuzz_reqcheck fuzz_cachecontrol fuzz_range fuzz_cachekey fuzz_httpdate fuzz_vary fuzz_files fuzz_h1resp}
fails=0
fail() { echo "FAIL: fuzz: $*"; fails=$((fails + 1)); }
command -v clang >/dev/null || { fail "clang not installed"; exit 1; }
PKGS="libmicrohttpd lmdb lua5.4 libcurl libsodium libconfig jansson zlib"
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -I. -fsanitize=address,undefined -fno-sanitize-recover=undefined
        -fsanitize=fuzzer-no-link $(pkg-config --cflags $PKGS)"
mkdir -p "$OUT/obj"
# One archive of the modules (rebuilt only when a source is newer).
SRCS=$(ls common/*.c edge/*.c edge/*/*.c origin/*.c | grep -v -e '^edge/main.c$' -e '^origin/main.c$')
objs=()
for s in $SRCS; do
	o=$OUT/obj/${s//\//_}.o
	objs+=("$o")
	if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ -n "$(find $(dirname "$s") common -name '*.h' -newer "$o" 2>/dev/null | head -1)" ]; then
		# shellcheck disable=SC2086
		clang $CFLAGS -c -o "$o" "$s" 2>>"$OUT/targets-build.log" || { fail "$s does not build with clang"; exit 1; }
	fi
done
rm -f "$OUT/libmods.a"
ar rcs "$OUT/libmods.a" "${objs[@]}"
for t in $TARGETS; do
	CR=tests/fuzz/crashes/$t CO=tests/fuzz/corpus/$t
	mkdir -p "$CR" "$CO"
	# shellcheck disable=SC2086
	if ! clang $CFLAGS -fsanitize=fuzzer -o "$OUT/$t" "tests/fuzz/$t.c" "$OUT/libmods.a" \
		$(pkg-config --libs $PKGS) -lm -ldl -lpthread >"$OUT/$t.build.log" 2>&1; then
		head -20 "$OUT/$t.build.log"; fail "$t does not build"; continue
	fi
	bad=0
	for f in "$CR"/* "$CO"/*; do
		[ -f "$f" ] || continue
		"$OUT/$t" -runs=1 -timeout=5 "$f" >"$OUT/$t.replay.log" 2>&1 || { bad=$((bad + 1)); fail "$t: kept input $f crashes"; }
	done
	CORPUS=$(mktemp -d /tmp/minicdn-fuzz-$t.XXXXXX)
	"$OUT/$t" -max_total_time="$SECS" -timeout=5 -rss_limit_mb=2048 -max_len=2048 \
		-artifact_prefix="$CR/" -print_final_stats=1 "$CORPUS" "$CO" >"$OUT/$t.log" 2>&1
	rc=$?
	rm -rf "$CORPUS"
	runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$OUT/$t.log" | tail -1)
	echo "fuzz: $t runs=${runs:-0} seconds=$SECS"
	if [ $rc -ne 0 ]; then
		grep -E 'ERROR|SUMMARY|runtime error|deadly signal' "$OUT/$t.log" | head -8 | sed 's/^/    /'
		fail "$t: crash or sanitizer report after ${runs:-?} runs (input kept in $CR/: commit it with the fix)"
	elif [ "${runs:-0}" -lt 1000 ]; then
		fail "$t: only ${runs:-0} executions in ${SECS}s"
	else
		echo "PASS: fuzz: $t ran $runs inputs in ${SECS}s, $bad kept inputs failing"
	fi
done
[ $fails -eq 0 ]
