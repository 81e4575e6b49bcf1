#!/bin/bash
# scripts-bodies -- with scripts active, a request body is held whole only
# when a script's route matches the request (the script gets the whole body);
# every other body still goes to the origin as it arrives: a 50 MiB POST
# beside an active script keeps the edge's RSS far below 50 MiB.  A script
# that declines (returns nil) passes the held body on to the origin intact.
. "$(dirname "$0")/../../lib.sh"
t_init scripts-bodies
. "$(dirname "$0")/../scripts-push/common.sh"

sc_keys || { t_fail "keygen"; t_done; }
sc_origin
sc_edge edge-eu eu '};
limits = { max_body = "64M"; bodies_memory = "16M";'
E=${EDGE_URL[edge-eu]}
B=$T_DIR/b; mkdir -p "$B"
cat >"$B/api.lua" <<'EOL'
--[[minicdn
name = "api";
routes = ( { path = "/api/*"; } );
]]
function handle(req)
  if req.path == "/api/pass" then return nil end
  return { body = "len=" .. #(req.body or "") .. "\n" }
end
EOL
r=$(sc_push edge-eu "$(sc_sign "$B/api.lua" 1 >"$B/api.env"; echo "$B/api.env")")
t_eq "api script active" "200" "${r%% *}"
t_eq "a script answers GETs on its route" "len=0" "$(curl -s --max-time 5 "$E/api/x")"

PID=$(t_pid edge-eu)
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$PID/status; }
field() { curl -s "$O/__last?path=$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]))' "$2"; }
asan=0; grep -q __asan_init "$BIN/minicdn-edge" && asan=1
python3 -c 'import sys,random; r=random.Random(7); sys.stdout.buffer.write(r.randbytes(52428800))' >"$T_DIR/big"
want=$(sha256sum "$T_DIR/big" | cut -c1-64)

# 1. Off the script's routes: streamed, RSS bounded (peak sampled every 20 ms).
rss0=$(rss)
curl -s -o /dev/null -w '%{http_code}' --max-time 60 --data-binary @"$T_DIR/big" "$E/upload" >"$T_DIR/code" &
job=$! peak=0
while kill -0 "$job" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.02; done
wait "$job"
hwm=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$PID/status); [ "$hwm" -gt "$peak" ] && peak=$hwm
t_eq "50 MiB POST beside an active script answered" "200" "$(cat "$T_DIR/code")"
t_eq "byte-identical at the origin (sha256)" "$want" "$(field /upload body_sha256)"
lim=$((rss0 + 24 + asan * 8))
echo "scripts-bodies: RSS ${rss0} MiB before, peak ${peak} MiB during the 50 MiB POST"
t_check "streamed, not held (peak ${peak} MiB < ${lim})" test "$peak" -lt "$lim"

# 2. On a script's route the script sees the whole body.
head -c 300000 "$T_DIR/big" >"$T_DIR/small"
t_eq "the script got the whole body" "len=300000" \
	"$(curl -s --max-time 10 --data-binary @"$T_DIR/small" "$E/api/echo")"
t_eq "chunked, the same" "len=300000" \
	"$(curl -s --max-time 10 -H 'Transfer-Encoding: chunked' --data-binary @"$T_DIR/small" "$E/api/echo")"

# 3. A script that declines: the held body goes on to the origin intact.
t_eq "declined: answered by the origin" "200" \
	"$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --data-binary @"$T_DIR/small" "$E/api/pass")"
t_eq "declined: the origin got the whole body" "$(sha256sum "$T_DIR/small" | cut -c1-64)" \
	"$(field /api/pass body_sha256)"

# 4. A body over max_body on a script's route is still refused before it is read.
t_eq "over max_body on a script route: 413" "413" \
	"$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Length: 70000000' -H 'Expect: 100-continue' -X POST "$E/api/echo")"
t_scan_log edge-eu
t_done
