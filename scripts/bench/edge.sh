#!/usr/bin/env bash
# scripts/bench/edge.sh -- `make bench-edge`: minicdn-edge against nginx
# proxy_cache, Varnish (malloc storage) and Apache Traffic Server, all in front
# of the same origin (an nginx serving static objects, a 1 KiB generated body
# for any /gen/ URL, one 1 KiB file under every /rv/ URL with max-age=1, and
# /slow/ answering after 1 s via the echo module).
#
# Fairness: every server runs at the same time on its own port (an idle one
# costs nothing) and keeps its cache in RAM or on the same tmpfs (/dev/shm);
# each gets the settings its documentation recommends for a RAM-speed cache
# (nginx: open_file_cache, large output_buffers; Varnish: a thread pool per
# core; ATS: RAM cache, read-while-writer, open-read retries for collapsing).
# Cases run in ROUNDS interleaved rounds, the server order rotating each round,
# so all servers see about the same background load; medians are reported.
#
# Cases:
#   hit_1k hit_64k hit_1m  wrk on one cached URL
#   miss_1k                distinct URLs, each fetched once from the origin
#   revalidate_1k          50,000 objects with max-age=1, requested in turn: each
#                          request finds its object stale and revalidates (304)
#   purge_wave             wrk over 1,000 cached URLs while all 1,000 are purged
#                          one by one, once a second (each server's own purge:
#                          minicdn's control API, PURGE for Varnish and ATS;
#                          nginx has none that works, see purge_wave_case)
#   collapse               100 concurrent requests for one cold URL on the 1 s
#                          endpoint; origin_fetches counts what reached the origin
#   rss                    after 100,000 cached 1 KiB objects (once, not in rounds)
#   tls_hit_1k tls_hit_64k wrk over HTTPS (keep-alive) on one cached URL
#   tls_handshake          wrk over HTTPS with "Connection: close": a new connection
#                          and a full handshake per request (wrk never resumes)
#   tls_resume             openssl s_time -reuse (2 in parallel): resumed TLS 1.2
#                          handshakes (session ticket, ECDHE-ECDSA-AES128-GCM) per second,
#                          no request (s_time reads a TLS 1.3 ticket only with -www,
#                          and OpenSSL 3 drops a session whose server closed without
#                          close_notify; the edge sends it now, but the case keeps
#                          its TLS 1.2 form so its figures compare with earlier runs)
#   TLS cases run against the servers that terminate TLS here (minicdn-edge, nginx),
#   with the same ECDSA P-256 certificate, TLS 1.3 and TLS_AES_128_GCM_SHA256
#   (checked and printed before the rounds).
#   range_1m_of_64m        (not in the default CASES: ~75 s for 3 rounds) random 1 MiB
#                          ranges of a 64 MiB object (a fresh URL each round): cold
#                          (RANGE_N ranges, each server's cache empty for it) then
#                          warm (the same ranges again for DURATION s); reports rps
#                          of both and origin_per_client (origin body bytes per
#                          client body byte).  Peers: nginx with its slice module
#                          (slice 1m; proxy_cache_key \$uri\$slice_range), ATS with
#                          cache_range_requests (Debian's trafficserver has no
#                          slice plugin, so each distinct range is its own object);
#                          Varnish sits it out (no slicing at all).
# Server CPU time comes from /proc/PID/stat (utime+stime of the server's whole
# process tree), so r_per_cpu_s = requests / server CPU s.  wrk shares the two
# cores; its CPU share is printed as wrk_cpu_pct.
#
# Prints:  # round K NAME CASE rps=N p99_ms=X r_per_cpu_s=N ...   (every run)
#          NAME CASE rps=N p99_ms=X r_per_cpu_s=N ...             (medians)
#          ratio CASE/best=R CASE_cpu/best=C CASE_p99/best=P ... (minicdn-edge
#          against the best peer of each case by rps, named in best=CASE:PEER;
#          p99 ratio < 1 means lower latency than the best peer's), and
#          CASE_cpu/bestcpu=C CASE_p99/bestp99=P against the peer with the
#          most requests per CPU-second and the one with the lowest p99
#          (named as CASE_cpu:PEER and CASE_p99:PEER on the best line)
#
# Env: DURATION (s per wrk run, default 6), ROUNDS (default 3), CONNS (default 64),
#      ONLY (subset of: minicdn-edge nginx varnish ats), CASES (subset of the
#      case names above).  Everything runs on 127.0.0.1 on free ports; every
#      process is stopped by PID.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MINICDN_BIN:-$ROOT/build/bin}
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
ONLY=${ONLY:-"minicdn-edge nginx varnish ats"}
CASES=${CASES:-"hit_1k hit_64k hit_1m miss_1k revalidate_1k purge_wave collapse tls_hit_1k tls_hit_64k tls_handshake tls_resume rss"}
TLS_CASES="tls_hit_1k tls_hit_64k tls_handshake tls_resume"
RV_N=50000
RANGE_N=${RANGE_N:-200}
PW_N=1000
want() { [[ " $CASES " == *" $1 "* ]]; }
have() { [[ " $ONLY " == *" $1 "* ]]; }
SHM=/dev/shm
[ -d "$SHM" ] && [ -w "$SHM" ] || SHM=/tmp
D=$(mktemp -d "$SHM/minicdn-bench-edge.XXXXXX")
chmod 755 "$D"
PIDS=()
BG=()
cleanup() {
	for p in "${BG[@]}" "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${BG[@]}" "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[ -n "${KEEP:-}" ] && echo "bench: kept $D" >&2 || rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() {
	for _ in $(seq 150); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done
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
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print 0}'; }

# ---------- origin ----------
OP=$(free_port)
mkdir -p "$D/www/obj" "$D/www/rvdata" "$D/www/bigdata" "$D/origin"
want range_1m_of_64m && head -c $((64 << 20)) /dev/urandom >"$D/www/bigdata/64m"
head -c 1024 /dev/urandom >"$D/www/obj/1k"
head -c 65536 /dev/urandom >"$D/www/obj/64k"
head -c 1048576 /dev/urandom >"$D/www/obj/1m"
head -c 1024 /dev/urandom >"$D/www/rvdata/1k"
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
  log_format st '\$status \$request_uri';
  log_format bb '\$request_uri \$status \$body_bytes_sent';
  server {
    listen 127.0.0.1:$OP;
    root $D/www;
    location /obj/ { add_header Cache-Control "public, max-age=3600"; }
    location /gen/ { default_type text/plain; add_header Cache-Control "public, max-age=3600"; return 200 "$GEN"; }
    location /pw/ {
      access_log $D/origin/pw.log st;
      default_type text/plain; add_header Cache-Control "public, max-age=3600"; return 200 "$GEN";
    }
    location /rv/ {
      access_log $D/origin/rv.log st;
      default_type application/octet-stream;
      add_header Cache-Control "public, max-age=1";
      rewrite ^ /rvdata/1k break;
    }
    location /big/ {
      access_log $D/origin/big.log bb;
      add_header Cache-Control "public, max-age=3600";
      rewrite ^ /bigdata/64m break;
    }
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

# One ECDSA P-256 certificate (and its CA) for every TLS server.
mkdir -p "$D/pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout "$D/pki/ca.key" \
	-out "$D/pki/ca.pem" -subj /CN=bench-ca 2>/dev/null &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/pki/key.pem" \
	-subj /CN=bench.test -out "$D/pki/csr" 2>/dev/null &&
printf 'subjectAltName=DNS:bench.test,IP:127.0.0.1\n' >"$D/pki/ext" &&
openssl x509 -req -in "$D/pki/csr" -CA "$D/pki/ca.pem" -CAkey "$D/pki/ca.key" -set_serial 1 -days 2 \
	-extfile "$D/pki/ext" -out "$D/pki/leaf.pem" 2>/dev/null &&
cat "$D/pki/leaf.pem" "$D/pki/ca.pem" >"$D/pki/chain.pem" || { echo "bench: openssl failed" >&2; exit 1; }
cat >"$D/close.lua" <<'EOL'
-- A new connection (and TLS handshake) for every request.
wrk.headers["Connection"] = "close"
EOL

# wrk scripts: distinct URLs (miss), a cycle over N URLs (revalidate, purge
# wave, warm-up), and a fill of 100,000 objects that stops itself.
cat >"$D/miss.lua" <<'EOL'
local prefix = os.getenv("BENCH_PREFIX") or "m"
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/gen/" .. prefix .. "-" .. n)
end
EOL
cat >"$D/cycle.lua" <<'EOL'
-- Requests PATH/0 .. PATH/(N-1) in turn; with STOP set, stops after N responses.
local path = os.getenv("BENCH_PATH")
local n_urls = tonumber(os.getenv("BENCH_N"))
local stop = os.getenv("BENCH_STOP") == "1"
local n, done = 0, 0
request = function()
  local i = n % n_urls
  n = n + 1
  return wrk.format("GET", path .. i)
end
response = function(status, headers, body)
  done = done + 1
  if stop and done >= n_urls then wrk.thread:stop() end
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
cat >"$D/ranges.lua" <<'EOL'
-- Requests BENCH_PATH with the 1 MiB ranges whose first bytes are listed in
-- BENCH_OFFS (one a line), in turn.
local path = os.getenv("BENCH_PATH")
local offs = {}
for l in io.lines(os.getenv("BENCH_OFFS")) do offs[#offs + 1] = tonumber(l) end
local i = 0
request = function()
  i = i % #offs + 1
  return wrk.format("GET", path, { Range = "bytes=" .. offs[i] .. "-" .. (offs[i] + 1048575) })
end
EOL
# ranges.py PORT PATH OFFS: each listed 1 MiB range once, 16 at a time (wrk
# cannot stop after a count); prints rps, p99 ms, and how many were a full
# 206.
cat >"$D/ranges.py" <<'PY'
import http.client, sys, threading, time
port, path, offs = sys.argv[1], sys.argv[2], [int(l) for l in open(sys.argv[3])]
todo, lat, ok, lock = list(offs), [], [0], threading.Lock()
def worker():
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    while True:
        with lock:
            if not todo: return
            o = todo.pop()
        t = time.time()
        try:
            c.request("GET", path, headers={"Range": "bytes=%d-%d" % (o, o + 1048575)})
            r = c.getresponse(); b = r.read()
            good = r.status == 206 and len(b) == 1048576
        except Exception:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60); good = False
        with lock:
            lat.append(time.time() - t); ok[0] += good
t0 = time.time()
ts = [threading.Thread(target=worker) for _ in range(16)]
for t in ts: t.start()
for t in ts: t.join()
lat.sort()
print(int(len(offs) / (time.time() - t0)), "%.0f" % (lat[int(len(lat) * 0.99) - 1] * 1000), ok[0])
PY
# purge.py PORT KIND PATH N: purges PATH0..PATH(N-1) once a second over one
# keep-alive connection until killed; counts purges the server acknowledged.
cat >"$D/purge.py" <<'PY'
import http.client, json, sys, time, signal
port, kind, path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
waves, ok, bad = 0, 0, 0
def report(*_):
    print(waves, ok, bad, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, report)
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
while True:
    t0 = time.time()
    for i in range(n):
        if kind == "minicdn-edge":
            body = json.dumps({"url": "http://127.0.0.1:%s%s%d" % (port, path, i)})
            c.request("POST", "/.minicdn/purge", body, {"Authorization": "Bearer bench",
                                                        "Content-Type": "application/json"})
        else:
            c.request("PURGE", "%s%d" % (path, i))
        r = c.getresponse(); r.read()
        # 404 means "not cached right now": a request has not refilled it yet.
        if r.status in (200, 201, 204, 404): ok += 1
        else: bad += 1
    waves += 1
    time.sleep(max(0.0, 1.0 - (time.time() - t0)))
PY

declare -A R_RPS R_CPU R_P99 R_EXTRA FETCH RSS SRV_PID SRV_PORT SRV_TPORT
# run_wrk NAME CASE ROUND [script] [extra-cmd] -> stores one round's figures
run_wrk() {
	local name=$1 case=$2 round=$3 url=$4 script=${5:-} extra=${6:-}
	local pid=${SRV_PID[$name]} c0 c1 out
	c0=$(cpu_ticks "$pid")
	local args=(-t1 -c"$CONNS" -d"${DURATION}s" --latency)
	[ -n "$script" ] && args+=(-s "$script")
	out=$( { /usr/bin/time -f 'WRKCPU %U %S %e' wrk "${args[@]}" "$url"; } 2>&1 )
	c1=$(cpu_ticks "$pid")
	local rps p99 reqs wcpu errs cpu_s rpc
	rps=$(awk '/^Requests\/sec:/ {printf "%d", $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; printf "%.2f", v}' <<<"$out")
	wcpu=$(awk '/^WRKCPU/ {printf "%d", ($2 + $3) * 100 / $4}' <<<"$out")
	errs=$(awk '/Non-2xx|Socket errors/' <<<"$out" | tr -s ' ' | tr '\n' ';')
	cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.3f", (b - a) / hz}')
	rpc=$(awk -v r="${reqs:-0}" -v c="$cpu_s" 'BEGIN {if (c > 0) printf "%d", r / c; else print 0}')
	R_RPS[$name/$case]+=" ${rps:-0}"
	R_CPU[$name/$case]+=" $rpc"
	R_P99[$name/$case]+=" ${p99:-0}"
	echo "# round $round $name $case rps=${rps:-0} p99_ms=${p99:-0} r_per_cpu_s=$rpc wrk_cpu_pct=${wcpu:-0}${extra:+ $extra}${errs:+ errors=\"$errs\"}"
}

collapse_case() {
	local name=$1 round=$2
	local port=${SRV_PORT[$name]} pid=${SRV_PID[$name]}
	local before after path=/slow/$name-$round-$RANDOM
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
	local okn rps p99 cpu_s rpc
	read -r okn rps p99 <"$D/collapse.out"
	cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.3f", (b - a) / hz}')
	rpc=$(awk -v c="$cpu_s" 'BEGIN {if (c > 0) printf "%d", 100 / c; else print 0}')
	printf '# round %s %s collapse rps=%d p99_ms=%.0f r_per_cpu_s=%s origin_fetches=%d ok=%d/100\n' \
		"$round" "$name" "${rps%.*}" "$p99" "$rpc" $((after - before)) "$okn"
	R_RPS[$name/collapse]+=" ${rps%.*}"
	R_CPU[$name/collapse]+=" $rpc"
	R_P99[$name/collapse]+=" $(printf '%.0f' "$p99")"
	FETCH[$name]+=" $((after - before))"
}

# revalidate_1k: warm RV_N objects, let them go stale, then cycle over them;
# the origin's log says how many of the server's requests were revalidations.
revalidate_case() {
	local name=$1 round=$2 u=http://127.0.0.1:${SRV_PORT[$1]}
	local path=/rv/$name/
	if [ -z "${RV_WARM[$name]:-}" ]; then
		BENCH_PATH=$path BENCH_N=$RV_N BENCH_STOP=1 wrk -t1 -c"$CONNS" -d60s -s "$D/cycle.lua" "$u" >/dev/null 2>&1
		RV_WARM[$name]=1
		sleep 1.2
	fi
	local l0 l1 n200 n304
	l0=$(wc -l <"$D/origin/rv.log")
	BENCH_PATH=$path BENCH_N=$RV_N run_wrk "$name" revalidate_1k "$round" "$u" "$D/cycle.lua" >"$D/rv.line"
	l1=$(wc -l <"$D/origin/rv.log")
	n304=$(sed -n "$((l0 + 1)),${l1}p" "$D/origin/rv.log" | grep -c "^304 $path")
	n200=$(sed -n "$((l0 + 1)),${l1}p" "$D/origin/rv.log" | grep -c "^200 $path")
	echo "$(cat "$D/rv.line") origin_304=$n304 origin_200=$n200"
	R_EXTRA[$name/revalidate_1k]+=" $n304"
}
declare -A RV_WARM

purge_wave_case() {
	local name=$1 round=$2 u=http://127.0.0.1:${SRV_PORT[$1]}
	if [ "$name" = nginx ]; then
		# Open-source nginx has no purge, and Debian 12's ngx_cache_purge 2.3
		# crashes nginx 1.22's workers on every purge (a known incompatibility
		# with nginx >= 1.11.6), so nginx sits this case out.
		[ "$round" = 1 ] && echo "# nginx purge_wave: skipped (no working purge in Debian's nginx)"
		return
	fi
	local path=/pw/$name/
	BENCH_PATH=$path BENCH_N=$PW_N BENCH_STOP=1 wrk -t1 -c"$CONNS" -d30s -s "$D/cycle.lua" "$u" >/dev/null 2>&1
	local l0 l1
	l0=$(wc -l <"$D/origin/pw.log")
	python3 "$D/purge.py" "${SRV_PORT[$name]}" "$name" "$path" "$PW_N" >"$D/purge.out" 2>"$D/purge.err" &
	local ppid=$!
	BG+=($ppid)
	BENCH_PATH=$path BENCH_N=$PW_N run_wrk "$name" purge_wave "$round" "$u" "$D/cycle.lua" >"$D/pw.line"
	kill -TERM "$ppid"; wait "$ppid" 2>/dev/null
	l1=$(wc -l <"$D/origin/pw.log")
	local waves ok bad
	read -r waves ok bad <"$D/purge.out"
	[ -s "$D/purge.err" ] && { echo "# $name purge errors:"; tail -3 "$D/purge.err"; }
	echo "$(cat "$D/pw.line") waves=${waves:-0} purges_ok=${ok:-0} purges_failed=${bad:-0} origin_fetches=$((l1 - l0))"
}

# Origin body bytes sent for one URL (the origin's big.log).
big_bytes() { awk -v u="$1" '$1 == u {b += $3} END {printf "%d", b}' "$D/origin/big.log" 2>/dev/null; }

range_case() {
	local name=$1 round=$2 u=http://127.0.0.1:${SRV_PORT[$1]}
	if [ "$name" = varnish ]; then
		[ "$round" = 1 ] && echo "# varnish range_1m_of_64m: skipped (no slicing)"
		return
	fi
	local path=/big/$name-$round/64m b0 b1 rps p99 okn
	# the same pseudo-random ranges for every server of a round
	[ -s "$D/offs-$round" ] || python3 -c "import random,sys; r=random.Random($round)
for _ in range($RANGE_N): print(r.randrange(0, (64 << 20) - 1048576))" >"$D/offs-$round"
	# cold: every range once, the cache empty for this URL
	b0=$(big_bytes "$path")
	read -r rps p99 okn < <(python3 "$D/ranges.py" "${SRV_PORT[$name]}" "$path" "$D/offs-$round")
	b1=$(big_bytes "$path")
	local opc
	opc=$(awk -v o=$((b1 - b0)) -v n="$RANGE_N" 'BEGIN {printf "%.2f", o / (n * 1048576)}')
	echo "# round $round $name range_1m_of_64m cold rps=${rps:-0} p99_ms=${p99:-0} origin_per_client=$opc origin_mb=$(((b1 - b0) >> 20)) ok=${okn:-0}/$RANGE_N"
	R_RPS[$name/range_cold]+=" ${rps:-0}"
	R_EXTRA[$name/range_cold]+=" $opc"
	# warm: the same ranges for DURATION s
	b0=$(big_bytes "$path")
	# 16 connections, as cold: 64 queue 1 MiB bodies past wrk's 2 s timeout
	CONNS=16 BENCH_PATH=$path BENCH_OFFS=$D/offs-$round \
		run_wrk "$name" range_1m_of_64m "$round" "$u" "$D/ranges.lua" >"$D/range.line"
	b1=$(big_bytes "$path")
	echo "$(cat "$D/range.line") warm_origin_mb=$(((b1 - b0) >> 20))"
	R_EXTRA[$name/range_warm_mb]+=" $(((b1 - b0) >> 20))"
}

run_case() { # name case round
	local name=$1 case=$2 round=$3 u=http://127.0.0.1:${SRV_PORT[$1]}
	case $case in
	hit_1k|hit_64k|hit_1m)
		local o=${case#hit_}
		curl -s -o /dev/null "$u/obj/$o"; curl -s -o /dev/null "$u/obj/$o"
		run_wrk "$name" "$case" "$round" "$u/obj/$o" ;;
	miss_1k) BENCH_PREFIX=$name-$round run_wrk "$name" miss_1k "$round" "$u/" "$D/miss.lua" ;;
	revalidate_1k) revalidate_case "$name" "$round" ;;
	purge_wave) purge_wave_case "$name" "$round" ;;
	collapse) collapse_case "$name" "$round" ;;
	tls_*) tls_case "$name" "$case" "$round" ;;
	range_1m_of_64m) range_case "$name" "$round" ;;
	esac
}

# TLS cases: only servers with an HTTPS port here.
tls_case() {
	local name=$1 case=$2 round=$3 tp=${SRV_TPORT[$1]:-}
	[ -n "$tp" ] || return 0
	local u=https://127.0.0.1:$tp
	curl -sk -o /dev/null "$u/obj/1k"; curl -sk -o /dev/null "$u/obj/64k"
	case $case in
	tls_hit_1k) run_wrk "$name" "$case" "$round" "$u/obj/1k" ;;
	tls_hit_64k) run_wrk "$name" "$case" "$round" "$u/obj/64k" ;;
	tls_handshake) run_wrk "$name" "$case" "$round" "$u/obj/1k" "$D/close.lua" ;;
	tls_resume) resume_case "$name" "$round" "$tp" ;;
	esac
}

# Two openssl s_time -reuse clients for DURATION s: resumed handshakes/s.
resume_case() {
	local name=$1 round=$2 tp=$3 pid=${SRV_PID[$1]} c0 c1 i
	c0=$(cpu_ticks "$pid")
	for i in 1 2; do
		openssl s_time -connect "127.0.0.1:$tp" -reuse -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 \
			-time "$DURATION" >"$D/stime.$i" 2>&1 &
		BG+=($!)
	done
	wait "${BG[@]: -2}" 2>/dev/null
	c1=$(cpu_ticks "$pid")
	local conns secs rps cpu_s rpc
	conns=$(awk '/connections in [0-9.]+s/ {n += $1} END {print n + 0}' "$D/stime.1" "$D/stime.2")
	secs=$(awk '/connections in [0-9]+ real seconds/ {if ($5 > s) s = $5} END {print s + 0}' "$D/stime.1" "$D/stime.2")
	rps=$(awk -v n="$conns" -v s="$secs" -v d="$DURATION" 'BEGIN {printf "%d", n / (s > 0 ? s : d)}')
	cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.3f", (b - a) / hz}')
	rpc=$(awk -v r="$conns" -v c="$cpu_s" 'BEGIN {if (c > 0) printf "%d", r / c; else print 0}')
	R_RPS[$name/tls_resume]+=" $rps"
	R_CPU[$name/tls_resume]+=" $rpc"
	R_P99[$name/tls_resume]+=" 0"
	local reused
	reused=$(cat "$D/stime.1" "$D/stime.2" | tr -cd r | wc -c)
	echo "# round $round $name tls_resume rps=$rps p99_ms=- r_per_cpu_s=$rpc connections=$conns reused=$reused"
}

rss_case() {
	local name=$1 pid=${SRV_PID[$1]} u=http://127.0.0.1:${SRV_PORT[$1]}
	local reqs kb anon extra=""
	BENCH_PREFIX=$name-fill wrk -t1 -c"$CONNS" -d120s -s "$D/fill.lua" "$u/" >"$D/fill.out" 2>&1
	sleep 1
	reqs=$(awk '/requests in/ {print $1}' "$D/fill.out")
	kb=$(rss_kb "$pid"); anon=$(rss_kb "$pid" RssAnon)
	RSS[$name]=$((kb / 1024))
	[ "$name" = minicdn-edge ] && extra=" lmdb_file_mb=$(( $(du -k "$D/edge-cache/data.mdb" | cut -f1) / 1024 ))"
	echo "$name rss rss_mb=$((kb / 1024)) anon_mb=$((anon / 1024)) fill_requests=${reqs:-0}$extra"
}

# ---------- the servers ----------
SERVERS=()
start_edge() {
	local p tp; p=$(free_port); tp=$(free_port)
	# Every client of the bench is 127.0.0.1: wrk's 64 connections plus the
	# purge wave's own would pass the default per-client cap (64).
	cat >"$D/edge.conf" <<EOC
name = "bench-edge"; region = "eu"; listen = "127.0.0.1:$p"; https_listen = "127.0.0.1:$tp";
sites = ( { name = "bench"; hosts = ["bench.test"]; origin = "http://127.0.0.1:$OP";
            cert = "$D/pki/chain.pem"; key = "$D/pki/key.pem"; } );
default_site = "bench";
control_secret = "bench"; log_level = "warn"; threads = 2;
cache = { path = "$D/edge-cache"; map_size = "2G"; max_object_size = "16M"; };
upstream = { max_connections = 64; };
limits = { max_connections_per_client = 1024; };
EOC
	"$BIN/minicdn-edge" -c "$D/edge.conf" 2>"$D/edge.log" &
	SRV_PID[minicdn-edge]=$!; SRV_PORT[minicdn-edge]=$p; SRV_TPORT[minicdn-edge]=$tp; PIDS+=($!)
	wait_http "http://127.0.0.1:$p/healthz" && SERVERS+=(minicdn-edge)
}

start_nginx() {
	local p tp; p=$(free_port); tp=$(free_port)
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
  output_buffers 2 1m;
  open_file_cache max=200000 inactive=60s;
  open_file_cache_valid 60s;
  keepalive_requests 1000000;
  client_body_temp_path $D/ngx/tmp;
  proxy_temp_path $D/ngx/ptmp;
  proxy_cache_path $D/ngx/cache levels=1:2 keys_zone=z:256m max_size=4g inactive=1h use_temp_path=off;
  upstream o { server 127.0.0.1:$OP; keepalive 64; }
  server {
    listen 127.0.0.1:$p reuseport;
    # The edge's TLS: same certificate, TLS 1.2/1.3, ECDHE + AEAD, server
    # order, TLS 1.3 with AES-128-GCM first (GnuTLS's choice), tickets.
    listen 127.0.0.1:$tp ssl reuseport;
    ssl_certificate $D/pki/chain.pem;
    ssl_certificate_key $D/pki/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    ssl_prefer_server_ciphers on;
    ssl_session_tickets on;
    ssl_session_cache shared:TLS:16m;
    location / {
      proxy_pass http://o;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache z;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
      proxy_cache_revalidate on;
      proxy_buffers 64 16k;
    }
    location /big/ {
      slice 1m;
      proxy_pass http://o;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache z;
      proxy_cache_key \$uri\$slice_range;
      proxy_set_header Range \$slice_range;
      proxy_cache_valid 200 206 1h;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
      proxy_buffers 64 16k;
    }
  }
}
EOC
	nginx -c "$D/ngx/nginx.conf" -e "$D/ngx/error.log" &
	SRV_PID[nginx]=$!; SRV_PORT[nginx]=$p; SRV_TPORT[nginx]=$tp; PIDS+=($!)
	wait_http "http://127.0.0.1:$p/obj/1k" && SERVERS+=(nginx)
}

start_varnish() {
	local p; p=$(free_port)
	mkdir -p "$D/varnish"
	chmod 755 "$D/varnish"
	# Purge by URL; objects with a short TTL are kept an hour past it so a stale
	# one is revalidated with a conditional fetch (Varnish's "keep").
	cat >"$D/varnish.vcl" <<EOV
vcl 4.1;
backend o { .host = "127.0.0.1"; .port = "$OP"; }
acl purgers { "127.0.0.1"; }
sub vcl_recv {
  if (req.method == "PURGE") {
    if (!client.ip ~ purgers) { return (synth(405)); }
    return (purge);
  }
}
sub vcl_backend_response { set beresp.keep = 1h; }
EOV
	varnishd -F -a "127.0.0.1:$p" -f "$D/varnish.vcl" -s malloc,2G -n "$D/varnish" \
		-p thread_pools=2 -p thread_pool_min=200 -p thread_pool_max=2000 -p default_grace=0 \
		>"$D/varnish.log" 2>&1 &
	SRV_PID[varnish]=$!; SRV_PORT[varnish]=$p; PIDS+=($!)
	wait_http "http://127.0.0.1:$p/obj/1k" && SERVERS+=(varnish)
}

start_ats() {
	local p A=$D/ats; p=$(free_port)
	mkdir -p "$A/etc" "$A/cache" "$A/run" "$A/log"
	local f
	for f in cache.config hosting.config parent.config plugin.config socks.config splitdns.config \
		ssl_multicert.config sni.yaml strategies.yaml volume.config logging.yaml; do
		[ -e "/etc/trafficserver/$f" ] && cp "/etc/trafficserver/$f" "$A/etc/"
	done
	cat >"$A/runroot.yaml" <<EOY
prefix: $A
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: $A/etc
datadir: $A/cache
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $A
runtimedir: $A/run
logdir: $A/log
cachedir: $A/cache
EOY
	# A reverse-proxy cache: RAM cache in front of a cache file on tmpfs,
	# read-while-writer and open-read retries (ATS's documented way to send one
	# request to the origin for a crowd), no logging, no Via.
	cat >"$A/etc/records.config" <<EOR
CONFIG proxy.config.http.server_ports STRING $p
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.http.cache.http INT 1
CONFIG proxy.config.cache.ram_cache.size INT 1073741824
CONFIG proxy.config.cache.ram_cache_cutoff INT 4194304
CONFIG proxy.config.cache.enable_read_while_writer INT 1
CONFIG proxy.config.http.background_fill_active_timeout INT 0
CONFIG proxy.config.http.background_fill_completed_threshold FLOAT 0.0
CONFIG proxy.config.http.cache.max_open_read_retries INT 200
CONFIG proxy.config.http.cache.open_read_retry_time INT 10
CONFIG proxy.config.http.server_session_sharing.match STRING both
CONFIG proxy.config.http.keep_alive_no_activity_timeout_in INT 120
CONFIG proxy.config.net.connections_throttle INT 10000
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.diags.debug.enabled INT 0
CONFIG proxy.config.http.insert_response_via_str INT 0
CONFIG proxy.config.http.insert_request_via_str INT 0
EOR
	# Ranges of /big/ cached per range (cache_range_requests; Debian ships no
	# slice plugin), everything else as before.
	{
		echo "map http://127.0.0.1:$p/big/ http://127.0.0.1:$OP/big/ @plugin=cache_range_requests.so"
		echo "map http://127.0.0.1:$p/ http://127.0.0.1:$OP/"
	} >"$A/etc/remap.config"
	echo "$A/cache 2G" >"$A/etc/storage.config"
	cat >"$A/etc/ip_allow.yaml" <<EOY
ip_allow:
  - apply: in
    ip_addrs: 127.0.0.1
    action: allow
    methods: ALL
  - apply: out
    ip_addrs: 127.0.0.1
    action: allow
    methods: ALL
EOY
	traffic_server --run-root="$A/runroot.yaml" >"$A/ts.out" 2>&1 &
	SRV_PID[ats]=$!; SRV_PORT[ats]=$p; PIDS+=($!)
	wait_http "http://127.0.0.1:$p/obj/1k" && SERVERS+=(ats)
}

have minicdn-edge && start_edge
have nginx && start_nginx
have varnish && start_varnish
have ats && start_ats
echo "# servers: ${SERVERS[*]}; cache files on $SHM; $ROUNDS rounds of ${DURATION}s, $CONNS connections"
for s in "${SERVERS[@]}"; do
	[ -n "${SRV_TPORT[$s]:-}" ] || continue
	neg=$(openssl s_client -connect "127.0.0.1:${SRV_TPORT[$s]}" -servername bench.test </dev/null 2>/dev/null |
		awk '/^New, / {v=$2; sub(/,$/,"",v); c=$NF} /Server Temp Key/ {k=$4 $5} /Peer signature type/ {t=$4}
		     END {print v, c, k, t}')
	echo "# tls $s: $neg"
done

# ---------- interleaved rounds ----------
NS=${#SERVERS[@]}
for r in $(seq "$ROUNDS"); do
	for c in hit_1k hit_64k hit_1m miss_1k revalidate_1k purge_wave collapse range_1m_of_64m $TLS_CASES; do
		want "$c" || continue
		for i in $(seq 0 $((NS - 1))); do
			run_case "${SERVERS[$(((i + r - 1) % NS))]}" "$c" "$r"
		done
	done
done

# ---------- medians ----------
for c in hit_1k hit_64k hit_1m miss_1k revalidate_1k purge_wave collapse range_1m_of_64m $TLS_CASES; do
	want "$c" || continue
	for s in "${SERVERS[@]}"; do
		[ -n "${R_RPS[$s/$c]:-}" ] || continue
		extra=""
		[ "$c" = range_1m_of_64m ] && extra=" cold_rps=$(median <<<"${R_RPS[$s/range_cold]}") cold_origin_per_client=$(median <<<"${R_EXTRA[$s/range_cold]}") warm_origin_mb=$(median <<<"${R_EXTRA[$s/range_warm_mb]}")"
		[ "$c" = collapse ] && extra=" origin_fetches=$(median <<<"${FETCH[$s]}")"
		[ "$c" = revalidate_1k ] && extra=" origin_304=$(median <<<"${R_EXTRA[$s/$c]}")"
		echo "$s $c rps=$(median <<<"${R_RPS[$s/$c]}") p99_ms=$(median <<<"${R_P99[$s/$c]}") r_per_cpu_s=$(median <<<"${R_CPU[$s/$c]}")$extra"
	done
done
if want rss; then
	for s in "${SERVERS[@]}"; do rss_case "$s"; done
fi

# ---------- ratios: minicdn-edge against the best peer of each case ----------
line="ratio"
bestl="best"
for c in hit_1k hit_64k hit_1m miss_1k revalidate_1k purge_wave range_1m_of_64m; do
	want "$c" || continue
	a=$(median <<<"${R_RPS[minicdn-edge/$c]:-}")
	ac=$(median <<<"${R_CPU[minicdn-edge/$c]:-}")
	ap=$(median <<<"${R_P99[minicdn-edge/$c]:-}")
	best="" b=0
	for s in "${SERVERS[@]}"; do
		[ "$s" = minicdn-edge ] && continue
		v=$(median <<<"${R_RPS[$s/$c]:-}")
		if awk -v v="$v" -v b="$b" 'BEGIN {exit !(v > b)}'; then b=$v; best=$s; fi
	done
	[ -z "$best" ] && continue
	bc=$(median <<<"${R_CPU[$best/$c]}")
	bp=$(median <<<"${R_P99[$best/$c]}")
	# The strictest peer on each axis too: the most requests per CPU-second
	# and the lowest p99 of any peer (not necessarily the one with most rps).
	cbest="" cb=0 pbest="" pb=0
	for s in "${SERVERS[@]}"; do
		[ "$s" = minicdn-edge ] && continue
		v=$(median <<<"${R_CPU[$s/$c]:-}")
		if awk -v v="$v" -v b="$cb" 'BEGIN {exit !(v > b)}'; then cb=$v; cbest=$s; fi
		v=$(median <<<"${R_P99[$s/$c]:-}")
		if awk -v v="$v" -v b="$pb" -v n="$pbest" 'BEGIN {exit !(v > 0 && (n == "" || v < b))}'; then
			pb=$v; pbest=$s
		fi
	done
	line+=" $c/best=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
	line+=" ${c}_cpu/best=$(awk -v a="$ac" -v b="$bc" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
	line+=" ${c}_p99/best=$(awk -v a="$ap" -v b="$bp" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
	line+=" ${c}_cpu/bestcpu=$(awk -v a="$ac" -v b="$cb" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
	line+=" ${c}_p99/bestp99=$(awk -v a="$ap" -v b="$pb" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
	bestl+=" $c:$best ${c}_cpu:$cbest ${c}_p99:$pbest"
done
if want rss; then
	for s in varnish nginx ats; do
		a=${RSS[minicdn-edge]:-0}; b=${RSS[$s]:-0}
		[ "$b" -gt 0 ] 2>/dev/null && line+=" rss/$s=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')"
	done
fi
# TLS: against nginx, the one peer terminating TLS here (rps and per server CPU s).
for c in $TLS_CASES; do
	want "$c" || continue
	a=$(median <<<"${R_RPS[minicdn-edge/$c]:-}"); b=$(median <<<"${R_RPS[nginx/$c]:-}")
	ac=$(median <<<"${R_CPU[minicdn-edge/$c]:-}"); bc=$(median <<<"${R_CPU[nginx/$c]:-}")
	awk -v b="$b" 'BEGIN {exit !(b > 0)}' || continue
	line+=" $c/nginx=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')"
	line+=" ${c}_cpu/nginx=$(awk -v a="$ac" -v b="$bc" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
done
echo "$line"
echo "$bestl"
