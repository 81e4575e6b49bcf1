#!/bin/bash
# edge-drain: `minicdnctl drain EDGE` takes a real edge out of a real DNS
# server's answers within TTL + health interval while the edge keeps serving;
# `undrain` brings it back; draining survives the edge's SIGHUP and restart;
# the control endpoints need the secret; when every other edge is down the
# fail-open answer is the down edges, never the drained one.
. "$(dirname "$0")/../../lib.sh"
t_init edge-drain
OP=$(t_free_port); EP=$(t_free_port); DP=$(t_free_port); SP=$(t_free_port)
TTL=2 INTERVAL_MS=300
cat >"$T_DIR/origin.conf" <<CONF
name = "origin"; region = "eu";
listen = "127.0.0.10:$OP";
root = "$T_ROOT/deploy/demo-site";
control_secret = "drain-secret";
CONF
for r in eu us; do
	case $r in eu) ip=127.0.0.11 ;; us) ip=127.0.0.12 ;; esac
	cat >"$T_DIR/edge-$r.conf" <<CONF
name = "edge-$r"; region = "$r";
listen = "$ip:$EP";
origin = "http://127.0.0.10:$OP";
control_secret = "drain-secret";
cache = { path = "$T_DIR/cache-$r"; map_size = "64M"; };
CONF
done
printf '127.0.1.0/24 eu\n127.0.2.0/24 us\n' >"$T_DIR/map.txt"
cat >"$T_DIR/cdn.test.zone" <<ZONE
\$ORIGIN cdn.test.
\$TTL 300
@ IN SOA ns1.cdn.test. hostmaster.cdn.test. 1 3600 600 86400 60
@ IN NS ns1.cdn.test.
ns1 IN A 127.0.0.1
ZONE
cat >"$T_DIR/dns.conf" <<CONF
listen = [ "127.0.0.1:$DP" ];
stats_listen = "127.0.0.1:$SP";
ttl = $TTL;
zones = ( { name = "cdn.test."; file = "cdn.test.zone"; } );
dynamic = [ "www.cdn.test." ];
map = "map.txt";
default_region = "eu";
regions = ( { name = "eu"; lat = 50.1; lon = 8.7; }, { name = "us"; lat = 39.0; lon = -77.5; } );
edges = (
  { name = "edge-eu"; region = "eu"; address = "127.0.0.11"; healthz = "http://127.0.0.11:$EP/healthz"; },
  { name = "edge-us"; region = "us"; address = "127.0.0.12"; healthz = "http://127.0.0.12:$EP/healthz"; }
);
health = { interval = "${INTERVAL_MS}ms"; timeout = "250ms"; fall = 2; rise = 2; initial = "up"; };
CONF
cat >"$T_DIR/ctl.conf" <<CONF
control_secret = "drain-secret";
origin = "http://127.0.0.10:$OP";
nodes = (
  { name = "dns"; role = "dns"; url = "http://127.0.0.1:$SP"; },
  { name = "edge-eu"; role = "edge"; url = "http://127.0.0.11:$EP"; },
  { name = "edge-us"; role = "edge"; url = "http://127.0.0.12:$EP"; }
);
CONF
t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_start eu "$BIN/minicdn-edge" -c "$T_DIR/edge-eu.conf"
t_start us "$BIN/minicdn-edge" -c "$T_DIR/edge-us.conf"
t_wait_http "http://127.0.0.11:$EP/healthz" 10 && t_wait_http "http://127.0.0.12:$EP/healthz" 10 || t_fail "edges did not start"
t_start dns "$BIN/minicdn-dns" -c "$T_DIR/dns.conf"
t_wait_dns 127.0.0.1 "$DP" www.cdn.test || t_fail "dns did not answer"
CTL() { "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" "$@"; }
EU() { dig +short +time=1 +tries=1 -b 127.0.1.1 @127.0.0.1 -p "$DP" www.cdn.test; }
has() { grep -qE -- "$1" <<<"$2"; }
# until the eu client's answer is $1, at most $2 seconds; prints the seconds it took
wait_answer() {
	local t0 now; t0=$(date +%s.%N)
	while :; do
		[ "$(EU)" = "$1" ] && { now=$(date +%s.%N); echo "$now - $t0" | bc; return 0; }
		now=$(date +%s.%N)
		(( $(echo "$now - $t0 > $2" | bc) )) && return 1
		sleep 0.05
	done
}
# the promised bound: TTL + health interval (a cached answer may live TTL
# seconds; the checker notices within one interval)
BOUND=$(printf '%.1f' "$(echo "$TTL + $INTERVAL_MS / 1000" | bc -l)")

t_eq "eu client gets edge-eu" 127.0.0.11 "$(EU)"
t_check "healthz says not draining" has '"draining":false' "$(curl -s "http://127.0.0.11:$EP/healthz")"
t_eq "drain without the secret is refused" 401 "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.11:$EP/.minicdn/drain")"
t_eq "GET on the drain endpoint is refused" 405 "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer drain-secret' "http://127.0.0.11:$EP/.minicdn/drain")"
t_check "minicdnctl drain rejects an unknown edge" test "$(CTL drain edge-xx >/dev/null 2>&1; echo $?)" = 2

out=$(CTL drain edge-eu); rc=$?
t_check "minicdnctl drain edge-eu succeeds ($out)" test $rc = 0
t_check "edge-eu /healthz reports draining" has '"status":"ok".*"draining":true' "$(curl -s "http://127.0.0.11:$EP/healthz")"
if T=$(wait_answer 127.0.0.12 "$BOUND"); then t_pass "drained edge-eu left the answers after ${T}s (<= TTL + interval = ${BOUND}s)"
else t_fail "edge-eu still answered ${BOUND}s after the drain"; fi
never=1
for _ in $(seq 20); do [ "$(EU)" = 127.0.0.11 ] && never=0; sleep 0.05; done
t_check "and stays out (20 queries over 1 s)" test $never = 1
t_eq "a drained edge still serves requests" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.11:$EP/index.html" -H 'Host: www.cdn.test')"
t_check "/stats shows edge-eu up, draining, not usable" has '"name":"edge-eu","region":"eu","up":true,"usable":false,"checked":true,"load":[0-9.]+,"draining":true' "$(curl -s "http://127.0.0.1:$SP/stats")"
t_check "minicdnctl status shows edge-eu draining" has '^edge-eu +eu +draining' "$(CTL status 2>&1)"
t_check "the DNS server logs it" grep -q "edge edge-eu is draining" "$T_DIR/dns.log"

# SIGHUP on the edge and on the DNS server: still drained
kill -HUP "$(t_pid eu)" "$(t_pid dns)"
sleep 1
t_check "after SIGHUP the edge still reports draining" has '"draining":true' "$(curl -s "http://127.0.0.11:$EP/healthz")"
t_eq "after SIGHUP the eu client still gets edge-us" 127.0.0.12 "$(EU)"
# restart (an upgrade): the flag file keeps it drained
t_stop eu
t_start eu "$BIN/minicdn-edge" -c "$T_DIR/edge-eu.conf"
t_wait_http "http://127.0.0.11:$EP/healthz" 10 || t_fail "edge-eu did not restart"
t_check "after a restart the edge still reports draining" has '"draining":true' "$(curl -s "http://127.0.0.11:$EP/healthz")"
sleep 1
t_eq "after the restart the eu client still gets edge-us" 127.0.0.12 "$(EU)"

# every other edge down: fail-open answers the down edge, never the drained one
t_stop us
sleep 1.2
t_eq "edge-us down too: fail-open answers edge-us, not the drained edge-eu" 127.0.0.12 "$(EU)"
t_start us "$BIN/minicdn-edge" -c "$T_DIR/edge-us.conf"
t_wait_http "http://127.0.0.12:$EP/healthz" 10 || t_fail "edge-us did not restart"

out=$(CTL undrain edge-eu); rc=$?
t_check "minicdnctl undrain edge-eu succeeds ($out)" test $rc = 0
t_check "edge-eu /healthz no longer draining" has '"draining":false' "$(curl -s "http://127.0.0.11:$EP/healthz")"
t_check "the flag file is gone" test ! -e "$T_DIR/cache-eu/draining"
if T=$(wait_answer 127.0.0.11 "$BOUND"); then t_pass "undrained edge-eu answered again after ${T}s"
else t_fail "edge-eu not answered ${BOUND}s after undrain"; fi
t_check "the DNS server logs the undrain" grep -q "edge edge-eu is undrained" "$T_DIR/dns.log"
t_done
