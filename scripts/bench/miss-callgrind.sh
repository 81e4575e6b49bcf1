#!/usr/bin/env bash
# scripts/bench/miss-callgrind.sh -- user-space instructions per 1 KiB miss in
# minicdn-edge, repeatably: the edge runs under valgrind --tool=callgrind in
# front of an nginx origin that answers any /gen/ URL with 1 KiB (as
# bench-edge's miss_1k); curl warms it up with WARM misses, the counters are
# zeroed, curl sends N more misses (distinct URLs, CONNS in parallel), and the
# dump is divided by the misses the origin logged in between.
#
# Prints:  miss_ir total_ir=N misses=M ir_per_miss=R   and the top functions
#          (inclusive-free "self" cost, all threads) to compare before/after.
# MODE=native runs the edge without valgrind and prints instead
#          miss_native misses=M cpu_us_per_miss=C ctxsw_per_miss=X (voluntary +
#          involuntary switches of all the edge's threads; CPU time depends on
#          the machine's load, the switches much less);
# MODE=strace runs it under strace -f -c: miss_syscalls misses=M per_miss=S
#          and the table of calls.
# Env: N (default 3000), WARM (default 300), CONNS (default 64), TOP (default 25),
#      MODE (callgrind | native | strace), KEEP=1 keeps the work folder
#      (callgrind.out.* for callgrind_annotate).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MINICDN_BIN:-$ROOT/build/bin}
N=${N:-3000}
WARM=${WARM:-300}
CONNS=${CONNS:-64}
TOP=${TOP:-25}
MODE=${MODE:-callgrind}
case $MODE in
callgrind) command -v valgrind >/dev/null || { echo "miss-callgrind: needs valgrind" >&2; exit 1; } ;;
strace) command -v strace >/dev/null || { echo "miss-callgrind: needs strace" >&2; exit 1; } ;;
native) ;;
*) echo "miss-callgrind: MODE is callgrind, native or strace" >&2; exit 1 ;;
esac
D=$(mktemp -d /tmp/minicdn-miss-cg.XXXXXX)
chmod 755 "$D"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[ -n "${KEEP:-}" ] && echo "miss-callgrind: kept $D" >&2 || rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() {
	for _ in $(seq 600); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done
	echo "miss-callgrind: $1 did not come up" >&2
	return 1
}

OP=$(free_port)
EP=$(free_port)
mkdir -p "$D/origin" "$D/cache"
GEN=$(head -c 1024 /dev/zero | tr '\0' 'g')
cat >"$D/origin/nginx.conf" <<EOC
worker_processes 1;
daemon off;
pid $D/origin/nginx.pid;
error_log $D/origin/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $D/origin/tmp;
  log_format u '\$request_uri';
  server {
    listen 127.0.0.1:$OP;
    location /gen/ {
      access_log $D/origin/gen.log u;
      default_type text/plain; add_header Cache-Control "public, max-age=3600"; return 200 "$GEN";
    }
  }
}
EOC
nginx -c "$D/origin/nginx.conf" -e "$D/origin/error.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$OP/gen/up" || exit 1

cat >"$D/edge.conf" <<EOC
name = "cg-edge"; region = "eu"; listen = "127.0.0.1:$EP";
origin = "http://127.0.0.1:$OP";
control_secret = "cg"; log_level = "warn"; threads = 2;
cache = { path = "$D/cache"; map_size = "1G"; max_object_size = "16M"; };
upstream = { max_connections = 64; };
limits = { max_connections_per_client = 1024; };
EOC
case $MODE in
callgrind) valgrind --tool=callgrind --callgrind-out-file="$D/callgrind.out" \
	"$BIN/minicdn-edge" -c "$D/edge.conf" 2>"$D/edge.log" & ;;
native) "$BIN/minicdn-edge" -c "$D/edge.conf" 2>"$D/edge.log" & ;;
strace) "$BIN/minicdn-edge" -c "$D/edge.conf" 2>"$D/edge.log" & ;;
esac
EPID=$!
PIDS+=($EPID)
wait_http "http://127.0.0.1:$EP/healthz" || { cat "$D/edge.log" >&2; exit 1; }

# COUNT distinct URLs under PREFIX, CONNS at a time over keep-alive
# connections (curl's parallel mode; wrk cannot stop after a count).
misses() { # PREFIX COUNT
	curl -s --no-progress-meter -Z --parallel-max "$CONNS" "http://127.0.0.1:$EP/gen/$1-[1-$2]" >/dev/null
	sleep 2 # let the last stores commit before counting
}
logged() { wc -l <"$D/origin/gen.log"; }

# utime+stime (ticks) and context switches of every thread of the edge.
cpu_ticks() { cat /proc/"$EPID"/task/*/stat 2>/dev/null | awk '{t += $14 + $15} END {print t + 0}'; }
sys_ticks() { cat /proc/"$EPID"/task/*/stat 2>/dev/null | awk '{t += $15} END {print t + 0}'; }
ctxsw() { cat /proc/"$EPID"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {t += $2} END {print t + 0}'; }

misses warm "$WARM"
case $MODE in
native)
	c0=$(cpu_ticks); k0=$(sys_ticks); s0=$(ctxsw); n0=$(logged)
	misses run "$N"
	c1=$(cpu_ticks); k1=$(sys_ticks); s1=$(ctxsw); n1=$(logged)
	m=$((n1 - n0)); [ "$m" -gt 0 ] || m=1
	# the 2 s settling sleep is idle time: no CPU, few switches
	echo "miss_native misses=$m cpu_us_per_miss=$(( (c1 - c0) * 1000000 / $(getconf CLK_TCK) / m ))" \
		"sys_us_per_miss=$(( (k1 - k0) * 1000000 / $(getconf CLK_TCK) / m ))" \
		"ctxsw_per_miss=$(awk -v a="$s0" -v b="$s1" -v m="$m" 'BEGIN {printf "%.2f", (b - a) / m}')"
	exit 0 ;;
strace)
	if [ -n "${STRACE_LOG:-}" ]; then
		strace -f -tt -o "$STRACE_LOG" -p "$EPID" 2>/dev/null &
	else
		strace -f -c -o "$D/strace.out" -p "$EPID" 2>/dev/null &
	fi
	SPID=$!
	sleep 1
	n0=$(logged)
	misses run "$N"
	n1=$(logged)
	kill -INT "$SPID"; wait "$SPID" 2>/dev/null
	m=$((n1 - n0)); [ "$m" -gt 0 ] || m=1
	calls=$(awk '$NF == "total" {print $(NF-2)}' "$D/strace.out")
	echo "miss_syscalls misses=$m per_miss=$(awk -v c="${calls:-0}" -v m="$m" 'BEGIN {printf "%.1f", c / m}')"
	head -n $((TOP + 2)) "$D/strace.out"
	exit 0 ;;
esac
callgrind_control -z "$EPID" >/dev/null 2>&1
n0=$(logged)
misses run "$N"
n1=$(logged)
callgrind_control -d "$EPID" >/dev/null 2>&1
sleep 1
out=$(ls -t "$D"/callgrind.out* | grep -v '\.out$' | head -1)
[ -n "$out" ] || out="$D/callgrind.out"
m=$((n1 - n0))
total=$(callgrind_annotate --inclusive=no "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "miss_ir total_ir=${total:-0} misses=$m ir_per_miss=$(( ${total:-0} / (m > 0 ? m : 1) ))"
callgrind_annotate --inclusive=no "$out" 2>/dev/null | awk -v top="$TOP" '
	/^-+$/ { sep++ ; next } sep >= 3 && NF && k < top { print; k++ }'
