#!/bin/bash
# wanem: the WAN emulator's jitter, loss and drop rules on a network-only
# testbed (no daemons; about 15 s).
#   a-b: 50 ms RTT, +-10 ms jitter per direction  -> RTTs spread over [30, 70] ms
#   a-c: 20 ms RTT, 30 % loss per direction        -> about 49 % of echoes return
#   b-c: 10 ms RTT, clean                          -> every echo, within 10 %
#   an address outside every region is dropped and counted, not routed
. "$(dirname "$0")/../lib.sh"
t_init wanem
TB=$T_ROOT/scripts/testbed/testbed
NAME=nw$$
export MINICDN_BIN=$BIN
tb_cleanup() {
	[ -n "${SRV_B:-}" ] && kill "$SRV_B" 2>/dev/null
	[ -n "${SRV_C:-}" ] && kill "$SRV_C" 2>/dev/null
	"$TB" down --name "$NAME" >/dev/null 2>&1
	t_cleanup
}
trap tb_cleanup EXIT

cat >"$T_DIR/regions.conf" <<'EOF'
region a 0 0
region b 0 10
region c 0 20
rtt a b 50 10
rtt a c 20 0 30
rtt b c 10
local_rtt 1
EOF
"$TB" up --net-only --wan wanem --name "$NAME" --regions "$T_DIR/regions.conf" >"$T_DIR/up.log" 2>&1
t_check "network-only testbed up" test -d "/run/minicdn-testbed/$NAME"
ip netns exec "$NAME-b-res" "$BIN/tbprobe" serve 10.77.2.53:9 & SRV_B=$!
ip netns exec "$NAME-c-res" "$BIN/tbprobe" serve 10.77.3.53:9 & SRV_C=$!
sleep 0.3

# fields: tcp_min tcp_med udp_min udp_med ok udp_max
read -r _ _ jmin jmed jok jmax < <(ip netns exec "$NAME-a-client1" "$BIN/tbprobe" rtt 10.77.2.53:9 -U -n 40 -i 0 -t 1000)
echo "    jitter link a-b: min $jmin med $jmed max $jmax ms over $jok echoes"
t_eq "jitter: no echo lost" 40 "$jok"
# The floor is exact (a packet never leaves before its delay); the ceiling gets
# 30 ms of slack because a loaded 2-core machine may schedule the echo late.
t_check "jitter: RTTs stay inside 50 +- 20 ms (min $jmin, max $jmax, +30 ms scheduling slack)" \
	awk -v a="$jmin" -v b="$jmax" 'BEGIN { exit !(a >= 29.5 && b <= 101.5) }'
t_check "jitter: RTTs really vary (max - min = $(awk -v a="$jmin" -v b="$jmax" 'BEGIN{print b-a}') ms > 10)" \
	awk -v a="$jmin" -v b="$jmax" 'BEGIN { exit !(b - a > 10) }'
t_check "jitter: median near 50 ms ($jmed)" awk -v m="$jmed" 'BEGIN { exit !(m >= 43 && m <= 57) }'

read -r _ _ lmin _ lok _ < <(ip netns exec "$NAME-a-client1" "$BIN/tbprobe" rtt 10.77.3.53:9 -U -n 80 -i 0 -t 150)
echo "    lossy link a-c: $lok of 80 echoes returned (expected about 39), min RTT $lmin ms"
t_check "loss: 30 % per direction loses about half the echoes ($lok/80 returned)" test "$lok" -ge 22 -a "$lok" -le 56
t_check "loss: the survivors still take the link's 20 ms ($lmin)" awk -v m="$lmin" 'BEGIN { exit !(m >= 19.9 && m <= 22) }'

read -r _ _ cmin _ cok _ < <(ip netns exec "$NAME-b-client1" "$BIN/tbprobe" rtt 10.77.3.53:9 -U -n 20 -i 0 -t 1000)
t_eq "clean link b-c: no loss" 20 "$cok"
t_check "clean link b-c: 10 ms within 10 % ($cmin)" awk -v m="$cmin" 'BEGIN { exit !(m >= 9.9 && m <= 11) }'

read -r _ _ _ _ xok _ < <(ip netns exec "$NAME-a-client1" "$BIN/tbprobe" rtt 10.77.99.1:9 -U -n 2 -i 0 -t 200)
t_eq "address outside every region: nothing comes back" 0 "$xok"
pid=$(awk '$1 == "wanem" { print $2 }' "/run/minicdn-testbed/$NAME/pids")
kill -USR1 "$pid"; sleep 0.3
st="/run/minicdn-testbed/$NAME/wanem.stats"
t_check "wanem counted the unroutable packets" awk '$2 == "unroutable" && $3 >= 2 { f = 1 } END { exit !f }' "$st"
t_check "wanem counted random losses on a-c" awk '($1 == "a" && $2 == "c") || ($1 == "c" && $2 == "a") { l += $6 } END { exit !(l > 10) }' "$st"
t_check "wanem counted no loss on b-c" awk '($1 == "b" && $2 == "c") || ($1 == "c" && $2 == "b") { l += $6 } END { exit !(l == 0) }' "$st"

kill "$SRV_B" "$SRV_C"; wait "$SRV_B" "$SRV_C" 2>/dev/null; SRV_B="" SRV_C=""
"$TB" down --name "$NAME" >/dev/null 2>&1
t_eq "down: no namespace left" "" "$(ip netns list | grep "^$NAME-")"
t_check "down: wanem stopped" bash -c "! kill -0 $pid 2>/dev/null"
t_done
