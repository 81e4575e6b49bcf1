#!/bin/bash
# scripts/bench/dns.sh -- `make bench-dns`: dnsperf against minicdn-dns, gdnsd
# (geoip plugin, nets map) and Knot (geoip module, subnet mode), all serving the
# same 100k-prefix map (scripts/gen-map) and the same three edges, one after the
# other, each with and without an ECS option in the queries.
#
# Per server and mix: maximum throughput (dnsperf, 1 thread, BENCH_SECS s), the
# server's own CPU time from /proc/PID/stat (utime+stime) and so queries per
# server CPU-second, and p99 latency at a fixed 20k qps (dnsperf -v per-query
# latencies).  Prints
#   NAME MIX qps=N p99_ms=X q_per_cpu_s=N
# and last `ratio gdnsd=R knot=R` (minicdn-dns's q_per_cpu_s over each peer's,
# worst mix).  Also reports load time and memory of a 1M-prefix map.
# Every server is started and stopped by PID; work files live in a temp dir.
# Fairness: the same UDP thread count for all (BENCH_WORKERS, default 1), the
# same map, edges and TTL; rate limiting is off everywhere (gdnsd has none,
# Knot's RRL is the rrl module, not loaded here; minicdn-dns has none); Knot
# gets `edns-client-subnet: on` so that, like the others, it parses ECS and
# echoes it with a scope (checked with kdig before measuring).
# BENCH_SECS (default 5) sets the length of each throughput run, BENCH_ROUNDS
# (default 3) how many interleaved rounds are run; medians are reported;
# BENCH_SAMPLES=FILE appends every round's figures to FILE.  BENCH_RATE=N
# runs the throughput/CPU measurement at a fixed N queries/s instead of flat
# out: every server then sees the same arrival pattern (flat out, a server's
# batches depend on how much CPU it leaves dnsperf, which moves q_per_cpu_s).
#
# BENCH_CALLGRIND=1 measures instead, repeatably, the user-space instructions
# per query of every server: each runs under valgrind --tool=callgrind, the
# counters are zeroed once it answers, dnsperf replays BENCH_CG_QUERIES
# (default 5000) queries per mix with one in flight (-q 1, so every
# recvmmsg/recvmsg returns one query: the same pattern for all), and the dump
# gives `NAME MIX ir_per_query=N` (all threads; kernel work is not counted).
set -u
CG=${BENCH_CALLGRIND:-0}
CGQ=${BENCH_CG_QUERIES:-5000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MINICDN_BIN:-$ROOT/build/bin}
SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
# UDP threads for every server alike.  dnsperf takes one of the machine's two
# cores, so one server thread is the efficient setting for all three; try
# BENCH_WORKERS=2 to see the cost of cross-core wake-ups.
WORKERS=${BENCH_WORKERS:-1}
RATE=${BENCH_RATE:-}
# BENCH_PIN=1 pins dnsperf to CPU 0 and every server (all its threads) to
# CPU 1, the same for all three, so the scheduler does not move them around
# between runs (less noise; off by default since other load on the machine
# then cannot be dodged).
PIN=${BENCH_PIN:-0}
PIN_CLIENT=""
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then PIN_CLIENT="taskset -c 0"; else PIN=0; fi
pin_server() { [ "$PIN" = 1 ] && taskset -a -p -c 1 "$1" >/dev/null; return 0; }
W=$(mktemp -d /tmp/minicdn-bench-dns.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT
VG=()
if [ "$CG" = 1 ]; then
	command -v valgrind >/dev/null || { echo "BENCH_CALLGRIND=1 needs valgrind"; exit 1; }
	VG=(valgrind --tool=callgrind)
fi
trap 'exit 130' INT TERM
free_port() { # free for both UDP and TCP on 127.0.0.1
	python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randint(20000, 59999)
    try:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", p))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
        t.close(); u.close(); print(p); break
    except OSError:
        pass
PY
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

"$ROOT/scripts/gen-map" -n 100000 --v6 0 > "$W/map.txt"
# ECS subnet: a /24 from the map, so the ECS mix exercises a real match.
ECSNET=$(awk '$1 ~ /\/24$/ {print $1; exit}' "$W/map.txt")
ECSHEX=$(python3 -c "import ipaddress,sys;n=ipaddress.ip_network(sys.argv[1]);print('0001%02x00' % n.prefixlen + n.network_address.packed[:3].hex())" "$ECSNET")
for i in $(seq 1000); do echo "www.cdn.test A"; done > "$W/queries"

declare -A QCPU

# measure NAME PID PORT MIX(plain|ecs): one throughput run + one p99 run; appends
# "qps q_per_cpu_s p99_ms" to $W/res.NAME.MIX
measure() {
	local name=$1 pid=$2 port=$3 mix=$4 ecs=() t0 t1 out done_q qps qcpu p99 n
	[ "$mix" = ecs ] && ecs=(-E "8:$ECSHEX")
	$PIN_CLIENT dnsperf -s 127.0.0.1 -p "$port" -d "$W/queries" -l 1 -e "${ecs[@]}" >/dev/null 2>&1 # warm-up
	t0=$(cpu_ticks "$pid")
	out=$($PIN_CLIENT dnsperf -s 127.0.0.1 -p "$port" -d "$W/queries" -l "$SECS" -c 8 -T 1 -q 500 ${RATE:+-Q "$RATE"} -e "${ecs[@]}" 2>&1)
	t1=$(cpu_ticks "$pid")
	done_q=$(sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p' <<<"$out")
	qps=$(sed -n 's/.*Queries per second: *\([0-9]*\).*/\1/p' <<<"$out")
	local cpu=$(( t1 - t0 )); [ $cpu -lt 1 ] && cpu=1
	qcpu=$(( ${done_q:-0} * TCK / cpu ))
	# p99 at a fixed 20k qps, from dnsperf's per-query latencies.  They go to
	# a file and are sorted afterwards: a pipe to awk would put a third busy
	# process on the two cores during the measurement.
	$PIN_CLIENT dnsperf -s 127.0.0.1 -p "$port" -d "$W/queries" -l 3 -Q 20000 -e -v "${ecs[@]}" > "$W/lat.raw" 2>/dev/null
	awk '$1 == ">" {print $NF}' "$W/lat.raw" | sort -g > "$W/lat"
	n=$(wc -l < "$W/lat")
	p99=$(awk -v n="$n" 'NR == int(n * 0.99) + 1 {printf "%.3f", $1 * 1000; exit}' "$W/lat")
	echo "${qps:-0} $qcpu ${p99:-nan}" >> "$W/res.$name.$mix"
	[ -n "${BENCH_SAMPLES:-}" ] && echo "$name $mix qps=${qps:-0} q_per_cpu_s=$qcpu p99_ms=${p99:-nan}" >> "$BENCH_SAMPLES"
	return 0
}

# median of column $2 in file $1
median() { awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

wait_udp() { for _ in $(seq $([ "$CG" = 1 ] && echo 600 || echo 100)); do dig +time=1 +tries=1 @127.0.0.1 -p "$1" www.cdn.test >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# ---------------- minicdn-dns ----------------
P=$(free_port); SP=$(free_port)
cat > "$W/cdn.test.zone" <<Z
\$ORIGIN cdn.test.
@ 300 IN SOA ns1 hostmaster 1 3600 600 86400 60
@ 300 IN NS ns1
ns1 300 IN A 127.0.0.1
Z
cat > "$W/dns.conf" <<C
listen = [ "127.0.0.1:$P" ];
stats_listen = "127.0.0.1:$SP";
workers = $WORKERS;
log_level = "warn";
ttl = 20;
zones = ( { name = "cdn.test."; file = "cdn.test.zone"; } );
dynamic = [ "www.cdn.test." ];
map = "map.txt";
default_region = "eu";
regions = ( { name = "eu"; lat = 50.1; lon = 8.7; }, { name = "us"; lat = 39.0; lon = -77.5; },
            { name = "ap"; lat = 1.35; lon = 103.8; } );
edges = ( { name = "edge-eu"; region = "eu"; address = "127.0.0.11"; },
          { name = "edge-us"; region = "us"; address = "127.0.0.12"; },
          { name = "edge-ap"; region = "ap"; address = "127.0.0.13"; } );
C
"${VG[@]}" ${VG:+--callgrind-out-file="$W/cg.minicdn-dns"} "$BIN/minicdn-dns" -c "$W/dns.conf" 2>"$W/minicdn.log" & PID=$!; PIDS+=($PID)
wait_udp "$P" || { echo "minicdn-dns did not start"; cat "$W/minicdn.log"; exit 1; }
SERVERS=("minicdn-dns $PID $P")

# ---------------- gdnsd ----------------
if command -v gdnsd >/dev/null; then
	G=$W/gdnsd; mkdir -p "$G/zones" "$G/geoip"
	P=$(free_port)
	awk '{print $1, "=>", $2}' "$W/map.txt" > "$G/geoip/nets.txt"
	cat > "$G/config" <<C
options => { listen => [ 127.0.0.1:$P ], udp_threads => $WORKERS, tcp_threads => 1 }
plugins => {
  geoip => {
    maps => { m => { datacenters => [ eu, us, ap ], nets => nets.txt } }
    resources => { www => { map => m, dcmap => { eu => 127.0.0.11, us => 127.0.0.12, ap => 127.0.0.13 } } }
  }
}
C
	cat > "$G/zones/cdn.test" <<Z
@ 300 SOA ns1 hostmaster 1 3600 600 86400 60
@ 300 NS ns1
ns1 300 A 127.0.0.1
www 20 DYNA geoip!www
Z
	"${VG[@]}" ${VG:+--callgrind-out-file="$W/cg.gdnsd"} gdnsd -c "$G" start >"$W/gdnsd.log" 2>&1 & PID=$!; PIDS+=($PID)
	if wait_udp "$P"; then
		SERVERS+=("gdnsd $PID $P")
	else
		echo "gdnsd did not start:"; tail -5 "$W/gdnsd.log"
	fi
fi

# ---------------- Knot ----------------
if command -v knotd >/dev/null; then
	K=$W/knot; mkdir -p "$K/db" "$K/run"
	P=$(free_port)
	awk 'BEGIN {print "www.cdn.test:"} {a = $2 == "eu" ? "127.0.0.11" : $2 == "us" ? "127.0.0.12" : "127.0.0.13";
	     print "  - net: " $1; print "    A: " a}' "$W/map.txt" > "$K/geo.conf"
	cat > "$K/knot.conf" <<C
server:
    rundir: "$K/run"
    listen: 127.0.0.1@$P
    udp-workers: $WORKERS
    tcp-workers: 1
    background-workers: 1
    edns-client-subnet: on
database:
    storage: "$K/db"
mod-geoip:
  - id: geo
    config-file: "$K/geo.conf"
    ttl: 20
    mode: subnet
template:
  - id: default
    storage: "$K"
zone:
  - domain: cdn.test
    file: "$K/cdn.test.zone"
    module: mod-geoip/geo
log:
  - target: stderr
    any: warning
C
	cat > "$K/cdn.test.zone" <<Z
\$ORIGIN cdn.test.
@ 300 IN SOA ns1 hostmaster 1 3600 600 86400 60
@ 300 IN NS ns1
ns1 300 IN A 127.0.0.1
www 20 IN A 127.0.0.11
Z
	"${VG[@]}" ${VG:+--callgrind-out-file="$W/cg.knot"} knotd -c "$K/knot.conf" >"$W/knot.log" 2>&1 & PID=$!; PIDS+=($PID)
	if wait_udp "$P"; then
		SERVERS+=("knot $PID $P")
	else
		echo "knotd did not start:"; tail -5 "$W/knot.log"
	fi
fi

# ---------------- measurements ----------------
for srv in "${SERVERS[@]}"; do
	set -- $srv
	pin_server "$2"
	kdig +time=2 +retry=0 -p "$3" @127.0.0.1 +subnet="$ECSNET" www.cdn.test 2>&1 | grep -q 'CLIENT-SUBNET: [0-9./]*/[1-9]' ||
		echo "warning: $1 does not echo ECS with a scope; its ecs mix is not comparable"
done
if [ "$CG" = 1 ]; then
	for srv in "${SERVERS[@]}"; do
		set -- $srv
		for mix in plain ecs; do
			ecs=(); [ "$mix" = ecs ] && ecs=(-E "8:$ECSHEX")
			callgrind_control -z "$2" >/dev/null 2>&1
			out=$(dnsperf -s 127.0.0.1 -p "$3" -d "$W/queries" -n $(( (CGQ + 999) / 1000 )) -c 1 -q 1 -t 5 -e "${ecs[@]}" 2>&1)
			callgrind_control -d "$2" >/dev/null 2>&1
			sleep 0.5
			f=$(ls -t "$W/cg.$1".* 2>/dev/null | head -1)
			ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$f" 2>/dev/null)
			nq=$(sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p' <<<"$out")
			lost=$(sed -n 's/.*Queries lost: *\([0-9]*\).*/\1/p' <<<"$out")
			echo "$1 $mix ir_per_query=$(awk -v i="${ir:-0}" -v q="${nq:-0}" 'BEGIN {printf "%.0f", q ? i / q : 0}') queries=${nq:-0} lost=${lost:-?}"
		done
	done
	exit 0
fi

# The servers all run, idle, while one is measured.  Runs are interleaved over
# BENCH_ROUNDS rounds and the median is reported, so a burst of unrelated load
# on the machine hits one sample rather than one server.
for round in $(seq "$ROUNDS"); do
	for srv in "${SERVERS[@]}"; do
		set -- $srv
		for mix in plain ecs; do measure "$1" "$2" "$3" "$mix"; done
	done
done
for srv in "${SERVERS[@]}"; do
	set -- $srv
	for mix in plain ecs; do
		f=$W/res.$1.$mix
		QCPU[$1.$mix]=$(median "$f" 2)
		echo "$1 $mix qps=$(median "$f" 1) p99_ms=$(median "$f" 3) q_per_cpu_s=${QCPU[$1.$mix]}"
	done
done
for srv in "${SERVERS[@]}"; do set -- $srv; kill "$2"; wait "$2" 2>/dev/null; done

# ---------------- 1M-prefix map: load time and memory ----------------
"$ROOT/scripts/gen-map" -n 1000000 --seed 2 > "$W/map.txt"
OUT=$( { /usr/bin/time -f 'wall_s=%e max_rss_kb=%M' "$BIN/minicdn-dns" -t -c "$W/dns.conf"; } 2>&1 )
echo "minicdn-dns 1M-prefix map: $(grep -o 'wall_s=.*' <<<"$OUT") ($(grep -o '[0-9]* map prefixes' <<<"$OUT"))"

ratio() { # peer
	local worst=""
	for mix in plain ecs; do
		local m=${QCPU[minicdn-dns.$mix]:-0} p=${QCPU[$1.$mix]:-0}
		[ "$p" -gt 0 ] || continue
		local r; r=$(awk -v m="$m" -v p="$p" 'BEGIN {printf "%.2f", m / p}')
		if [ -z "$worst" ] || awk -v a="$r" -v b="$worst" 'BEGIN {exit !(a < b)}'; then worst=$r; fi
	done
	echo "${worst:-nan}"
}
echo "ratio gdnsd=$(ratio gdnsd) knot=$(ratio knot)"
