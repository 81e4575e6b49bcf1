#!/usr/bin/env bash
# scripts/bench/edge.sh -- `make bench-edge`: minicdn-edge vs nginx proxy_cache
# vs Varnish (malloc storage), one after the other, in front of the same origin
# (an nginx serving static objects, a 1 KiB generated body for any /gen/ URL,
# and /slow/ answering after 1 s via the echo module).
#
# Cases: hit_1k, hit_64k, hit_1m (wrk on one cached URL), miss (distinct URLs),
# collapse (100 concurrent requests for one cold URL on the 1 s endpoint:
# origin_fetches counts what reached the origin), rss (after 100,000 cached
# 1 KiB objects).  Server CPU time comes from /proc/PID/stat (utime+stime of
# the server's whole process tree), so r_per_cpu_s = requests / server CPU s.
# wrk shares the two cores; its CPU share is printed as wrk_cpu_pct.
#
# Env: DURATION (s per wrk run, default 8), CONNS (default 50), ONLY (space-
# separated subset of: minicdn-edge nginx varnish), CASES (space-separated
# subset of: hit_1k hit_64k hit_1m miss collapse rss).  Everything runs on
# 127.0.0.1 on free ports; every process is stopped by PID.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MINICDN_BIN:-$ROOT/build/bin}
DURATION=${DURATION:-8}
CONNS=${CONNS:-50}
ONLY=${ONLY:-"minicdn-edge nginx varnish"}
CASES=${CASES:-"hit_1k hit_64k hit_1m miss collapse rss"}
want() { [[ " $CASES " == *" $1 "* ]]; }
D=$(mktemp -d /tmp/minicdn-bench-edge.XXXXXX)
chmod 755 "$D"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() {
	for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done
	echo "bench: $1 did not come up" >&2
	return 1
}
# utime+stime ticks of a process and all its descendants.
tree_pids() {
	local p=$1
	echo "$p"
	for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do tree_pids "$c"; done
}
cpu_ticks() {
	local t=0 p
	for p in $(tree_pids "$1"); do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
rss_kb() { # $2: VmRSS (default) or RssAnon (private memory, without mapped files)
	local t=0 p
	for p in $(tree_pids "$1"); do
		t=$((t + $(awk -v k="^${2:-VmRSS}:" '$0 ~ k {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
HZ=$(getconf CLK_TCK)

# ---------- origin ----------
OP=$(free_port)
mkdir -p "$D/www/obj" "$D/origin"
head -c 1024 /dev/urandom >"$D/www/obj/1k"
head -c 65536 /dev/urandom >"$D/www/obj/64k"
head -c 1048576 /dev/urandom >"$D/www/obj/1m"
GEN=$(head -c 1024 /dev/zero | tr '\0' 'g')
cat >"$D/origin/nginx.conf" <<EOC
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
user root;
worker_processes 1;
daemon off;
pid $D/origin/nginx.pid;
error_log $D/origin/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile off;
  keepalive_requests 1000000;
  client_body_temp_path $D/origin/tmp;
  server {
    listen 127.0.0.1:$OP;
    root $D/www;
    location /obj/ { add_header Cache-Control "public, max-age=3600"; }
    location /gen/ { default_type text/plain; add_header Cache-Control "public, max-age=3600"; return 200 "$GEN"; }
    location /slow/ {
      access_log $D/origin/slow.log;
      default_type text/plain;
      add_header Cache-Control "public, max-age=3600";
      echo_sleep 1;
      echo "slow";
    }
  }
}
EOC
nginx -c "$D/origin/nginx.conf" -e "$D/origin/error.log" &
PIDS+=($!)
wait_http "http://127.0.0.1:$OP/obj/1k" || exit 1

cat >"$D/miss.lua" <<'EOL'
local prefix = os.getenv("BENCH_PREFIX") or "m"
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/gen/" .. prefix .. "-" .. n)
end
EOL
cat >"$D/fill.lua" <<'EOL'
-- 100,000 distinct 1 KiB objects, then stop (one wrk thread).
local prefix = os.getenv("BENCH_PREFIX") or "f"
local n, done = 0, 0
request = function()
  n = n + 1
  return wrk.format("GET", "/gen/" .. prefix .. "-" .. n)
end
response = function(status, headers, body)
  done = done + 1
  if done >= 100000 then wrk.thread:stop() end
end
EOL

# run_wrk NAME CASE PID URL [script] -> prints the result line
RES=()
declare -A RPS CPU
run_wrk() {
	local name=$1 case=$2 pid=$3 url=$4 script=${5:-}
	local c0 c1 w0 out
	c0=$(cpu_ticks "$pid")
	local args=(-t1 -c"$CONNS" -d"${DURATION}s" --latency)
	[ -n "$script" ] && args+=(-s "$script")
	out=$( { /usr/bin/time -f 'WRKCPU %U %S %e' wrk "${args[@]}" "$url"; } 2>&1 )
	c1=$(cpu_ticks "$pid")
	local rps p99 reqs wcpu
	rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.2f", v}' <<<"$out")
	wcpu=$(awk '/^WRKCPU/ {printf "%d", ($2 + $3) * 100 / $4}' <<<"$out")
	local errs
	errs=$(awk '/Non-2xx|Socket errors/' <<<"$out" | tr -s ' ' | tr '\n' ';')
	local cpu_s rpc
	cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.3f", (b - a) / hz}')
	rpc=$(awk -v r="${reqs:-0}" -v c="$cpu_s" 'BEGIN {if (c > 0) printf "%d", r / c; else print 0}')
	RPS[$name/$case]=${rps:-0}
	CPU[$name/$case]=$rpc
	echo "$name $case rps=${rps:-0} p99_ms=${p99:-0} r_per_cpu_s=$rpc wrk_cpu_pct=${wcpu:-0}${errs:+ errors=\"$errs\"}"
}

collapse_case() {
	local name=$1 port=$2 pid=$3
	local before after path=/slow/$name-$RANDOM
	before=$(grep -c "$path" "$D/origin/slow.log" 2>/dev/null); before=${before:-0}
	local c0 c1
	c0=$(cpu_ticks "$pid")
	python3 - "$port" "$path" <<'PY' >"$D/collapse.out"
import sys, threading, time, urllib.request
port, path = sys.argv[1], sys.argv[2]
lat, ok = [], [0]
def one():
    t = time.time()
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s%s" % (port, path), timeout=10) as r:
            if r.status == 200 and r.read().startswith(b"slow"):
                ok[0] += 1
    except Exception:
        pass
    lat.append(time.time() - t)
ts = [threading.Thread(target=one) for _ in range(100)]
t0 = time.time()
for t in ts: t.start()
for t in ts: t.join()
lat.sort()
print(ok[0], len(lat) / (time.time() - t0), lat[int(len(lat) * 0.99) - 1] * 1000)
PY
	c1=$(cpu_ticks "$pid")
	after=$(grep -c "$path" "$D/origin/slow.log" 2>/dev/null); after=${after:-0}
	local okn rps p99
	read -r okn rps p99 <"$D/collapse.out"
	local cpu_s rpc
	cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.3f", (b - a) / hz}')
	rpc=$(awk -v c="$cpu_s" 'BEGIN {if (c > 0) printf "%d", 100 / c; else print 0}')
	printf '%s collapse rps=%d p99_ms=%.0f r_per_cpu_s=%s origin_fetches=%d ok=%d/100\n' "$name" "${rps%.*}" "$p99" "$rpc" $((after - before)) "$okn"
	FETCH[$name]=$((after - before))
}
declare -A FETCH RSS

bench_server() { # name port pid
	local name=$1 port=$2 pid=$3
	local u=http://127.0.0.1:$port
	for o in 1k 64k 1m; do
		want "hit_$o" || continue
		curl -s -o /dev/null "$u/obj/$o"; curl -s -o /dev/null "$u/obj/$o"
		run_wrk "$name" "hit_$o" "$pid" "$u/obj/$o"
	done
	want miss && BENCH_PREFIX=$name run_wrk "$name" miss "$pid" "$u/" "$D/miss.lua"
	want collapse && collapse_case "$name" "$port" "$pid"
	want rss || return 0
	local r0 reqs
	BENCH_PREFIX=$name-fill wrk -t1 -c"$CONNS" -d120s -s "$D/fill.lua" "$u/" >"$D/fill.out" 2>&1
	sleep 1
	reqs=$(awk '/requests in/ {print $1}' "$D/fill.out")
	local kb anon; kb=$(rss_kb "$pid"); anon=$(rss_kb "$pid" RssAnon)
	RSS[$name]=$((kb / 1024))
	local extra=""
	[ "$name" = minicdn-edge ] && extra=" lmdb_file_mb=$(( $(du -k "$D/edge-cache/data.mdb" | cut -f1) / 1024 ))"
	echo "$name rss rss_mb=$((kb / 1024)) anon_mb=$((anon / 1024)) fill_requests=${reqs:-0}$extra"
}

# ---------- minicdn-edge ----------
if [[ " $ONLY " == *" minicdn-edge "* ]]; then
	EP=$(free_port)
	cat >"$D/edge.conf" <<EOC
name = "bench-edge"; region = "eu"; listen = "127.0.0.1:$EP"; origin = "http://127.0.0.1:$OP";
control_secret = "bench"; log_level = "warn"; threads = 2;
cache = { path = "$D/edge-cache"; map_size = "2G"; max_object_size = "16M"; };
upstream = { max_connections = 64; };
EOC
	"$BIN/minicdn-edge" -c "$D/edge.conf" 2>"$D/edge.log" &
	EPID=$!
	PIDS+=($EPID)
	wait_http "http://127.0.0.1:$EP/healthz" && bench_server minicdn-edge "$EP" "$EPID"
	kill -TERM "$EPID"; wait "$EPID" 2>/dev/null
fi

# ---------- nginx proxy_cache ----------
if [[ " $ONLY " == *" nginx "* ]]; then
	NP=$(free_port)
	mkdir -p "$D/ngx"
	cat >"$D/ngx/nginx.conf" <<EOC
user root;
worker_processes 2;
daemon off;
pid $D/ngx/nginx.pid;
error_log $D/ngx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile off;
  keepalive_requests 1000000;
  client_body_temp_path $D/ngx/tmp;
  proxy_temp_path $D/ngx/ptmp;
  proxy_cache_path $D/ngx/cache levels=1:2 keys_zone=z:256m max_size=4g inactive=1h use_temp_path=off;
  upstream o { server 127.0.0.1:$OP; keepalive 64; }
  server {
    listen 127.0.0.1:$NP reuseport;
    location / {
      proxy_pass http://o;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache z;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
      proxy_buffers 64 16k;
    }
  }
}
EOC
	nginx -c "$D/ngx/nginx.conf" -e "$D/ngx/error.log" &
	NPID=$!
	PIDS+=($NPID)
	wait_http "http://127.0.0.1:$NP/obj/1k" && bench_server nginx "$NP" "$NPID"
	kill -TERM "$NPID"; wait "$NPID" 2>/dev/null
fi

# ---------- Varnish ----------
if [[ " $ONLY " == *" varnish "* ]]; then
	VP=$(free_port)
	mkdir -p "$D/varnish"
	chmod 755 "$D/varnish"
	varnishd -F -a "127.0.0.1:$VP" -b "127.0.0.1:$OP" -s malloc,2G -n "$D/varnish" \
		-p thread_pool_min=50 -p default_grace=0 >"$D/varnish.log" 2>&1 &
	VPID=$!
	PIDS+=($VPID)
	wait_http "http://127.0.0.1:$VP/obj/1k" && bench_server varnish "$VP" "$VPID"
	kill -TERM "$VPID"; wait "$VPID" 2>/dev/null
fi

# ---------- ratios: minicdn-edge against each peer ----------
line="ratio"
for peer in nginx varnish; do
	for c in hit_1k hit_64k hit_1m miss; do
		a=${RPS[minicdn-edge/$c]:-0}; b=${RPS[$peer/$c]:-0}
		[ "$b" -gt 0 ] 2>/dev/null && line+=" $c/$peer=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')"
		a=${CPU[minicdn-edge/$c]:-0}; b=${CPU[$peer/$c]:-0}
		[ "$b" -gt 0 ] 2>/dev/null && line+=" ${c}_cpu/$peer=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')"
	done
	a=${RSS[minicdn-edge]:-0}; b=${RSS[$peer]:-0}
	[ "$b" -gt 0 ] 2>/dev/null && line+=" rss/$peer=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')"
done
echo "$line"
