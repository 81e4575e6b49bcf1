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
# BENCH_SECS (default 5) sets the length of each throughput run, BENCH_ROUNDS
# (default 3) how many interleaved rounds are run; medians are reported.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MINICDN_BIN:-$ROOT/build/bin}
SECS=${BENCH_SECS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
# UDP threads for every server alike.  dnsperf takes one of the machine's two
# cores, so one server thread is the efficient setting for all three; try
# BENCH_WORKERS=2 to see the cost of cross-core wake-ups.
WORKERS=${BENCH_WORKERS:-1}
W=$(mktemp -d /tmp/minicdn-bench-dns.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$W"; }
trap cleanup EXIT
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
	dnsperf -s 127.0.0.1 -p "$port" -d "$W/queries" -l 1 -e "${ecs[@]}" >/dev/null 2>&1 # warm-up
	t0=$(cpu_ticks "$pid")
	out=$(dnsperf -s 127.0.0.1 -p "$port" -d "$W/queries" -l "$SECS" -c 8 -T 1 -q 500 -e "${ecs[@]}" 2>&1)
	t1=$(cpu_ticks "$pid")
	done_q=$(sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p' <<<"$out")
	qps=$(sed -n 's/.*Queries per second: *\([0-9]*\).*/\1/p' <<<"$out")
	local cpu=$(( t1 - t0 )); [ $cpu -lt 1 ] && cpu=1
	qcpu=$(( ${done_q:-0} * TCK / cpu ))
	# p99 at a fixed 20k qps, from dnsperf's per-query latencies
	dnsperf -s 127.0.0.1 -p "$port" -d "$W/queries" -l 3 -Q 20000 -e -v "${ecs[@]}" 2>/dev/null |
		awk '$1 == ">" {print $NF}' | sort -g > "$W/lat"
	n=$(wc -l < "$W/lat")
	p99=$(awk -v n="$n" 'NR == int(n * 0.99) + 1 {printf "%.3f", $1 * 1000; exit}' "$W/lat")
	echo "${qps:-0} $qcpu ${p99:-nan}" >> "$W/res.$name.$mix"
}

# median of column $2 in file $1
median() { awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

wait_udp() { for _ in $(seq 100); do dig +time=1 +tries=1 @127.0.0.1 -p "$1" www.cdn.test >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

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
"$BIN/minicdn-dns" -c "$W/dns.conf" 2>"$W/minicdn.log" & PID=$!; PIDS+=($PID)
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
	gdnsd -c "$G" start >"$W/gdnsd.log" 2>&1 & PID=$!; PIDS+=($PID)
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
	knotd -c "$K/knot.conf" >"$W/knot.log" 2>&1 & PID=$!; PIDS+=($PID)
	if wait_udp "$P"; then
		SERVERS+=("knot $PID $P")
	else
		echo "knotd did not start:"; tail -5 "$W/knot.log"
	fi
fi

# ---------------- measurements ----------------
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
