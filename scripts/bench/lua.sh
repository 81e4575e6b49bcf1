#!/bin/bash
# scripts/bench/lua.sh -- `make bench-lua`: the same small script on minicdn-edge
# and on nginx + libnginx-mod-http-lua (OpenResty's module, LuaJIT), one after
# the other in the same run.  The logic: read a header and a query parameter,
# build a small JSON body.  wrk shares the two cores with the server, so the
# server's own CPU time is measured too (utime+stime from /proc, all its
# processes) and reported as requests per server CPU-second.
#
# Both servers run at the same time (an idle one costs nothing) and wrk
# alternates between them, ROUNDS times: on a shared, noisy machine each pair
# of runs sees about the same background load, and the medians are reported.
#
# Prints:  # round K NAME rps=N p99_ms=X r_per_cpu_s=N     (every run)
#          NAME rps=N p99_ms=X r_per_cpu_s=N               (medians over the rounds)
#          ratio nginx-lua=R r_per_cpu_s_ratio=C           (R = minicdn-edge rps / nginx-lua rps,
#                                                          C = the same for r_per_cpu_s; of the medians)
# Env: DURATION (s per run, default 5), ROUNDS (default 5), CONNS (default 64),
#      THREADS (edge workers and nginx worker processes, default 2), MINICDN_BIN (default build/bin).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MINICDN_BIN:-$ROOT/build/bin}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
T=$(mktemp -d /tmp/minicdn-bench-lua.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { # pids... -> utime+stime ticks summed
	local t=0 p
	for p in "$@"; do
		[ -r /proc/$p/stat ] || continue
		t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat)))
	done
	echo $t
}
wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; return 1; }

# run ROUND NAME URL PIDS... : wrk, then print the line and record the figures
run() {
	local round=$1 name=$2 url=$3; shift 3
	local hz; hz=$(getconf CLK_TCK)
	local c0; c0=$(cpu_ticks "$@")
	wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H 'X-Name: ada' "$url" >"$T/$name.wrk" 2>&1
	local c1; c1=$(cpu_ticks "$@")
	local total rps p99 non2xx
	total=$(awk '/requests in/ {print $1}' "$T/$name.wrk")
	rps=$(awk '/^Requests\/sec/ {printf "%d", $2}' "$T/$name.wrk")
	p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; printf "%.2f", v}' "$T/$name.wrk")
	non2xx=$(awk '/Non-2xx/ {print $NF}' "$T/$name.wrk")
	local cpu_s; cpu_s=$(python3 -c "print(max(($c1 - $c0) / $hz, 0.01))")
	local rpc; rpc=$(python3 -c "print(int(${total:-0} / $cpu_s))")
	echo "# round $round $name rps=${rps:-0} p99_ms=${p99:-0} r_per_cpu_s=$rpc cpu_s=$cpu_s${non2xx:+ non2xx=$non2xx}"
	echo "$name ${rps:-0} ${p99:-0} $rpc" >>"$T/results"
}
warm() { wrk -t2 -c"$CONNS" -d2s -H 'X-Name: ada' "$1" >/dev/null 2>&1; } # compiles, fills caches

for t in wrk nginx curl python3; do command -v $t >/dev/null || { echo "bench-lua: $t is missing (scripts/install-deps.sh --bench)"; exit 1; }; done
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || { echo "bench-lua: libnginx-mod-http-lua is missing"; exit 1; }

# ---------------- minicdn-edge ----------------
EP=$(free_port); OP=$(free_port)
"$BIN/bundle-sign" keygen "$T/o.pub" "$T/o.key" || exit 1
cat >"$T/bench.lua" <<'EOL'
--[[minicdn
name = "bench";
routes = ( { path = "/bench"; method = "GET"; } );
]]
local fmt = string.format
function handle(req)
  local name = req.headers["x-name"] or "anon"
  local id = req.args.id or ""
  return { headers = { ["Content-Type"] = "application/json" },
           body = fmt('{"hello":"%s","id":"%s","edge":"%s"}\n', name:upper(), id, req.edge_name) }
end
EOL
cat >"$T/edge.conf" <<EOC
name = "edge-bench";
region = "eu";
listen = "127.0.0.1:$EP";
origin = "http://127.0.0.1:$OP";
control_secret = "bench";
log_level = "warn";
threads = $THREADS;
cache = { path = "$T/cache"; map_size = "64M"; };
scripts = { pubkey = "$T/o.pub"; path = "$T/scripts"; };
EOC
"$BIN/minicdn-edge" -c "$T/edge.conf" 2>"$T/edge.log" &
EPID=$!; PIDS+=($EPID)
wait_http "http://127.0.0.1:$EP/healthz" || { echo "bench-lua: edge did not start"; cat "$T/edge.log"; exit 1; }
"$BIN/bundle-sign" sign "$T/o.key" "$T/bench.lua" 1 >"$T/bench.env"
st=$(curl -s -o /dev/null -w '%{http_code}' --data-binary "@$T/bench.env" "http://127.0.0.1:$EP/.minicdn/scripts")
[ "$st" = 200 ] || { echo "bench-lua: push failed ($st)"; exit 1; }
echo "# minicdn-edge body: $(curl -s -H 'X-Name: ada' "http://127.0.0.1:$EP/bench?id=42")"

# ---------------- nginx + Lua ----------------
NP=$(free_port)
mkdir -p "$T/ngx"
cat >"$T/ngx/nginx.conf" <<EOC
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
$( [ "$(id -u)" = 0 ] && echo "user root root;" )
worker_processes $THREADS;
daemon off;
pid $T/ngx/nginx.pid;
error_log $T/ngx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $T/ngx/body; proxy_temp_path $T/ngx/proxy;
  fastcgi_temp_path $T/ngx/fcgi; uwsgi_temp_path $T/ngx/uwsgi; scgi_temp_path $T/ngx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NP;
    location = /bench {
      default_type application/json;
      content_by_lua_block {
        local name = ngx.var.http_x_name or "anon"
        local id = ngx.var.arg_id or ""
        ngx.print(string.format('{"hello":"%s","id":"%s","edge":"%s"}\n', name:upper(), id, "edge-bench"))
      }
    }
  }
}
EOC
nginx -p "$T/ngx" -c "$T/ngx/nginx.conf" 2>"$T/ngx/stderr" &
NPID=$!; PIDS+=($NPID)
wait_http "http://127.0.0.1:$NP/bench" || { echo "bench-lua: nginx did not start"; cat "$T/ngx/stderr" "$T/ngx/error.log"; exit 1; }
echo "# nginx-lua body:    $(curl -s -H 'X-Name: ada' "http://127.0.0.1:$NP/bench?id=42")"
NGX_PIDS="$NPID $(pgrep -P $NPID | tr '\n' ' ')"

EURL="http://127.0.0.1:$EP/bench?id=42"; NURL="http://127.0.0.1:$NP/bench?id=42"
warm "$EURL"; warm "$NURL"
for r in $(seq "$ROUNDS"); do
	run "$r" minicdn-edge "$EURL" $EPID
	run "$r" nginx-lua "$NURL" $NGX_PIDS
done
kill $EPID $NPID; wait $EPID $NPID 2>/dev/null

python3 - "$T/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p99, rpc = line.split()
    rows.setdefault(name, []).append((int(rps), float(p99), int(rpc)))
med = {}
for name in ("minicdn-edge", "nginx-lua"):
    r = rows.get(name, [(0, 0.0, 0)])
    med[name] = (int(statistics.median(x[0] for x in r)), statistics.median(x[1] for x in r),
                 int(statistics.median(x[2] for x in r)))
    print("%s rps=%d p99_ms=%.2f r_per_cpu_s=%d" % ((name,) + med[name]))
e, n = med["minicdn-edge"], med["nginx-lua"]
pairs = zip(rows.get("minicdn-edge", []), rows.get("nginx-lua", []))
per_round = " ".join("%.2f" % (a[2] / max(b[2], 1)) for a, b in pairs)
print("# r_per_cpu_s ratio per round: %s" % per_round)
print("ratio nginx-lua=%.2f r_per_cpu_s_ratio=%.2f" % (e[0] / max(n[0], 1), e[2] / max(n[2], 1)))
PY
