#!/bin/bash
# dns-health: minicdn-dns polls the edges' /healthz: failover within
# interval x fall + 1 s when an edge stops, recovery when it returns, HTTP
# status rules, load threshold, fail-open when everything is down, health in
# /stats and /metrics.  Fake edges are small python3 HTTP servers.
. "$(dirname "$0")/../../lib.sh"
t_init dns-health
HERE=$(cd "$(dirname "$0")" && pwd)
P=$(t_free_port); SP=$(t_free_port); EP=$(t_free_port)
cat > "$T_DIR/cdn.test.zone" <<ZONE
\$ORIGIN cdn.test.
@ 300 IN SOA ns1 h 1 3600 600 86400 60
@ 300 IN NS ns1
ns1 300 IN A 127.0.0.1
ZONE
printf '127.0.1.0/24 eu\n127.0.2.0/24 us\n' > "$T_DIR/map.txt"
cat > "$T_DIR/dns.conf" <<CONF
listen = [ "127.0.0.1:$P" ];
stats_listen = "127.0.0.1:$SP";
workers = 1;
zones = ( { name = "cdn.test."; file = "cdn.test.zone"; } );
dynamic = [ "www.cdn.test." ];
map = "map.txt";
default_region = "eu";
regions = ( { name = "eu"; lat = 50.1; lon = 8.7; }, { name = "us"; lat = 39.0; lon = -77.5; } );
edges = (
  { name = "edge-eu"; region = "eu"; address = "127.0.0.11"; healthz = "http://127.0.0.11:$EP/healthz"; },
  { name = "edge-us"; region = "us"; address = "127.0.0.12"; healthz = "http://127.0.0.12:$EP/healthz"; }
);
health = { interval = "300ms"; timeout = "250ms"; fall = 2; rise = 2; up_statuses = "200-299";
           initial = "down"; load_threshold = 0.8; };
CONF
echo "200 0.1" > "$T_DIR/eu.state"; echo "200 0.1" > "$T_DIR/us.state"
t_start eu python3 "$HERE/fake_edge.py" 127.0.0.11 "$EP" "$T_DIR/eu.state"
t_start us python3 "$HERE/fake_edge.py" 127.0.0.12 "$EP" "$T_DIR/us.state"
t_wait_http "http://127.0.0.11:$EP/healthz" 5 && t_wait_http "http://127.0.0.12:$EP/healthz" 5 || t_fail "fake edges did not start"
# Until the first assertion the edges answer too late for any check to pass, so
# "down" there can only come from initial = down, however slow the start is.
echo hold > "$T_DIR/eu.state"; echo hold > "$T_DIR/us.state"
t_start dns "$BIN/minicdn-dns" -c "$T_DIR/dns.conf"
t_wait_dns 127.0.0.1 "$P" www.cdn.test || t_fail "server did not answer"

EU() { dig +short +time=1 +tries=1 -b 127.0.1.1 @127.0.0.1 -p "$P" www.cdn.test; }
US() { dig +short +time=1 +tries=1 -b 127.0.2.1 @127.0.0.1 -p "$P" www.cdn.test; }
# until the answer to client $3 (EU by default) is $1, at most $2 seconds;
# prints the seconds it took
wait_answer() {
	local t0 now; t0=$(date +%s.%N)
	while :; do
		[ "$("${3:-EU}")" = "$1" ] && { now=$(date +%s.%N); echo "$now - $t0" | bc; return 0; }
		now=$(date +%s.%N)
		(( $(echo "$now - $t0 > $2" | bc) )) && return 1
		sleep 0.05
	done
}
has() { grep -qE -- "$1" <<<"$2"; }

# initial = down, rise = 2: up after two good checks
both_up() {
	local s; s=$(curl -s "http://127.0.0.1:$SP/stats")
	has '"name":"edge-eu","region":"eu","up":true' "$s" && has '"name":"edge-us","region":"us","up":true' "$s"
}
t_check "before any check (initial = down) /stats shows edges down" has '"name":"edge-eu","region":"eu","up":false' "$(curl -s http://127.0.0.1:$SP/stats)"
echo "200 0.1" > "$T_DIR/eu.state"; echo "200 0.1" > "$T_DIR/us.state"
for _ in $(seq 40); do both_up && break; sleep 0.1; done
t_check "edges come up after rise=2 successful checks" both_up
t_check "/stats: edge-eu up, checked, load 0.1" has '"name":"edge-eu","region":"eu","up":true,"usable":true,"checked":true,"load":0.100' "$(curl -s http://127.0.0.1:$SP/stats)"
t_eq "eu client gets edge-eu" 127.0.0.11 "$(EU)"

# failover: interval 0.3 s x fall 2 + 1 s = 1.6 s
t_stop eu
if T=$(wait_answer 127.0.0.12 1.6); then t_pass "eu edge stopped: eu client moved to edge-us in ${T}s (<= 1.6 s)"; else t_fail "no failover within 1.6 s"; fi
t_eq "and stays there" 127.0.0.12 "$(EU)"
t_check "/metrics: edge-eu down" has '^minicdn_dns_edge_up\{edge="edge-eu",region="eu"\} 0' "$(curl -s http://127.0.0.1:$SP/metrics)"
t_check "the state change is logged" grep -q "edge edge-eu is down" "$T_DIR/dns.log"
printf 'control_secret = "x";\nnodes = ( { name = "dns"; role = "dns"; url = "http://127.0.0.1:%s"; } );\n' "$SP" > "$T_DIR/ctl.conf"
t_check "minicdnctl status shows edge-eu down" has '^edge-eu +eu +down' "$("$BIN/minicdnctl" -c "$T_DIR/ctl.conf" status 2>&1)"
t_check "minicdnctl status shows edge-us up" has '^edge-us +us +up' "$("$BIN/minicdnctl" -c "$T_DIR/ctl.conf" status 2>&1)"
t_start eu python3 "$HERE/fake_edge.py" 127.0.0.11 "$EP" "$T_DIR/eu.state"
if T=$(wait_answer 127.0.0.11 2.5); then t_pass "eu edge restarted: answered again after ${T}s"; else t_fail "eu edge not answered again within 2.5 s"; fi

# an HTTP status outside up_statuses counts as down
echo "503 0.1" > "$T_DIR/eu.state"
t_check "status 503 (not in 200-299) takes the edge out" wait_answer 127.0.0.12 1.6
echo "204 0.1" > "$T_DIR/eu.state"
t_check "status 204 (in 200-299) brings it back" wait_answer 127.0.0.11 2.5

# load threshold 0.8: an overloaded edge is skipped while another has room
echo "200 0.95" > "$T_DIR/eu.state"
t_check "edge-eu above the load threshold: eu client sent to edge-us" wait_answer 127.0.0.12 2
t_check "/stats shows edge-eu up but not usable" has '"name":"edge-eu","region":"eu","up":true,"usable":false' "$(curl -s http://127.0.0.1:$SP/stats)"
echo "200 0.9" > "$T_DIR/us.state"
t_check "every edge overloaded: back to the nearest one (edge-eu)" wait_answer 127.0.0.11 2
echo "200 0.1" > "$T_DIR/eu.state"; echo "200 0.1" > "$T_DIR/us.state"

# fail-open: with no edge up every edge is a candidate again, so each client
# gets its nearest edge although it is down.  Each half first takes a
# client's own edge down, so that it is sent to the other one, then the
# other one too: only fail-open sends it back to its own (down) edge.
both_down() {
	local s; s=$(curl -s "http://127.0.0.1:$SP/stats")
	has '"name":"edge-eu","region":"eu","up":false' "$s" && has '"name":"edge-us","region":"us","up":false' "$s"
}
t_check "healthy again: us client gets edge-us" wait_answer 127.0.0.12 2.5 US
t_check "healthy again: eu client gets edge-eu" wait_answer 127.0.0.11 2.5 EU
t_stop us
t_check "edge-us stopped: us client sent to edge-eu" wait_answer 127.0.0.11 1.6 US
fail_open() { curl -s "http://127.0.0.1:$SP/stats" | sed -n 's/.*"fail_open":\([0-9]*\).*/\1/p'; }
m=$(t_log_mark dns) fo0=$(fail_open)
t_stop eu
for _ in $(seq 40); do both_down && break; sleep 0.1; done
t_check "edge-eu stopped too: /stats shows both edges down" both_down
t_eq "all edges down: fail-open sends the us client back to edge-us" 127.0.0.12 "$(US)"
t_eq "all edges down: the eu client gets edge-eu" 127.0.0.11 "$(EU)"
t_check "fail-open is logged" grep -q "fail-open" <<<"$(t_log_since dns "$m")"
# (counted from start-up too, when initial = down: compared with before)
t_check "fail-open answers counted ($fo0 before, $(fail_open) now)" test "$(fail_open)" -ge $((fo0 + 2))
t_check "explain says fail-open" has 'fail-open' "$(curl -s "http://127.0.0.1:$SP/explain?name=www.cdn.test&addr=127.0.1.1")"
t_start us python3 "$HERE/fake_edge.py" 127.0.0.12 "$EP" "$T_DIR/us.state"
t_check "edge-us back, edge-eu down: eu client sent to edge-us" wait_answer 127.0.0.12 2.5 EU
t_stop us
t_check "all edges down again: fail-open sends the eu client back to edge-eu" wait_answer 127.0.0.11 1.6 EU
t_done
