#!/bin/bash
# scripts-memory -- the size-class attack: each request fills the Lua heap
# with objects of another size (every small-block class, medium blocks,
# large ones) and drops them.  Each request stays under scripts.memory, so
# none fails; the process's RSS must still come back near its baseline once
# the burst is over, and stay under a bound during it.
. "$(dirname "$0")/../../lib.sh"
t_init scripts-memory
. "$(dirname "$0")/../scripts-push/common.sh"

sc_keys || { t_fail "keygen"; t_done; }
sc_origin
EDGE_THREADS=2 sc_edge edge-eu eu 'memory = "32M"; instructions = 200000; time = "10s";'
E=${EDGE_URL[edge-eu]}
B=$T_DIR/b; mkdir -p "$B"
cat >"$B/fill.lua" <<'EOL'
--[[minicdn
name = "fill";
routes = ( { path = "/fill"; } );
]]
-- Strings of `size` bytes (a Lua string is a 24-byte header, the text and
-- its NUL) up to about `total` bytes, all dropped when the request ends.
function handle(req)
  local size = tonumber(req.args.size)
  local total = tonumber(req.args.total or "16000000")
  local pad = string.rep("x", size - 24 - 1 - 10)
  local t = {}
  for i = 1, total // (size + 16) do t[i] = pad .. string.format("%010d", i) end
  return { body = "filled " .. #t .. "\n" }
end
EOL
r=$(sc_push edge-eu "$(sc_sign "$B/fill.lua" 1 >"$B/fill.env"; echo "$B/fill.env")"); t_eq "fill script active" "200" "${r%% *}"
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$(t_pid edge-eu)/status; }
# Warm both worker states with a small request each, then take the baseline.
for i in 1 2 3 4; do curl -s -o /dev/null "$E/fill?size=64&total=100000"; done
sleep 1
base=$(rss)
fails=0
# RSS sampled every 20 ms during the burst (bounded: 6000 samples at most).
EPID=$(t_pid edge-eu)
( for _ in $(seq 6000); do awk '/VmRSS/ {print int($2/1024)}' /proc/$EPID/status 2>/dev/null || break; sleep 0.02; done ) >"$T_DIR/rss.txt" &
SAMPLER=$!
# Every small class (16..256 bytes), medium sizes and large ones, twice each,
# two at a time (both worker threads).
sizes="48 64 80 96 112 128 144 160 176 192 208 224 240 256 320 600 1200 3000 9000 40000 200000 1500000"
for s in $sizes $sizes; do
	pids=""
	for j in 1 2; do
		curl -s -o "$T_DIR/o.$j" -w '%{http_code}\n' --max-time 30 "$E/fill?size=$s" >"$T_DIR/c.$j" &
		pids="$pids $!"
	done
	wait $pids
	for j in 1 2; do grep -q '^200$' "$T_DIR/c.$j" || { fails=$((fails + 1)); echo "size $s: $(cat "$T_DIR/c.$j") $(cat "$T_DIR/o.$j")"; }; done
done
kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null
max=$(sort -n "$T_DIR/rss.txt" | tail -1)
t_eq "every filling request answered 200 (each stays under scripts.memory)" 0 "$fails"
sleep 3
after=$(rss)
echo "scripts-memory: baseline=${base} MiB peak=${max} MiB after-idle=${after} MiB"
# Two worker states of 32 MiB each, with the allocators' overhead.  The
# sanitizer's allocator keeps freed memory (quarantine) and ignores
# malloc_trim: RSS says nothing about ours there.
if grep -q __asan_init "$BIN/minicdn-edge"; then
	echo "scripts-memory: RSS checks skipped on the sanitizer build (its allocator keeps freed memory)"
else
	lim=$((base + 120))
	t_check "RSS during the burst stays under a bound (${max} MiB < ${lim})" test "$max" -lt "$lim"
	t_check "RSS back within 8 MiB of baseline after idle (${base} -> ${after} MiB)" test "$after" -le $((base + 8))
fi
t_check "edge still healthy" curl -sf "$E/healthz"

# The ceiling of all states together (memory_total = 24M, each state may
# use 32M): a request that filled 12 MB and waits on a slow subrequest keeps
# it; a second request filling 12 MB meanwhile must be refused with a
# memory error, whichever worker state it lands on; one alone fits.
t_stop edge-eu
sed -i 's/memory = "32M";/memory = "32M"; memory_total = "24M"; fetch_timeout = "5s";/' "$T_DIR/edge-eu.conf"
cat >"$B/hold.lua" <<'EOL'
--[[minicdn
name = "hold";
routes = ( { path = "/hold"; } );
]]
function handle(req)
  local t = {}
  for i = 1, 12000000 // 80 do t[i] = string.rep("h", 29) .. string.format("%010d", i) end
  local r = fetch("/slow")
  return { body = "held " .. #t .. " " .. tostring(r and r.status) .. "\n" }
end
EOL
t_start edge-eu2 "$BIN/minicdn-edge" -c "$T_DIR/edge-eu.conf"
t_wait_http "$E/healthz" 10 || t_fail "edge did not restart"
r=$(sc_push edge-eu "$(sc_sign "$B/hold.lua" 1 >"$B/hold.env"; echo "$B/hold.env")"); t_eq "hold script active" "200" "${r%% *}"
curl -s -o /dev/null -X POST --data-binary '{"path":"/slow","delay":4,"body":"late"}' "$O/__set"
curl -s -o "$T_DIR/hold.out" --max-time 20 "$E/hold" &
HOLD=$!
sleep 2
t_eq "a fill while another request holds 12 MB: refused (500)" 500 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$E/fill?size=64&total=12000000")"
wait $HOLD
t_check "the holding request finished ($(cat "$T_DIR/hold.out"))" grep -q '^held 150000 200' "$T_DIR/hold.out"
t_check "the ceiling's refusal is a memory error" grep -q 'fill v1 failed on GET /fill: memory' "$T_DIR/edge-eu2.log"
t_eq "one fill alone fits under the ceiling" 200 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$E/fill?size=64&total=12000000")"
t_check "edge still healthy under the ceiling" curl -sf "$E/healthz"
t_done
