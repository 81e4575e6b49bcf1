#!/bin/bash
# dns-reload: SIGHUP and POST /reload (and minicdnctl reload) swap in a new
# snapshot atomically: new map takes effect, a bad map/zone/config is rejected
# with a clear error while the old one keeps serving, and a dnsperf load
# running through several reloads loses no query.
. "$(dirname "$0")/../../lib.sh"
t_init dns-reload
P=$(t_free_port); SP=$(t_free_port)
zone() { cat > "$T_DIR/cdn.test.zone" <<ZONE
\$ORIGIN cdn.test.
@ 300 IN SOA ns1 h $1 3600 600 86400 60
@ 300 IN NS ns1
ns1 300 IN A 127.0.0.1
ZONE
}
zone 1
printf '127.0.1.0/24 eu\n127.0.2.0/24 us\n' > "$T_DIR/map.txt"
cat > "$T_DIR/dns.conf" <<CONF
listen = [ "127.0.0.1:$P" ];
stats_listen = "127.0.0.1:$SP";
control_secret = "s3cret";
workers = 2;
zones = ( { name = "cdn.test."; file = "cdn.test.zone"; } );
dynamic = [ "www.cdn.test." ];
map = "map.txt";
default_region = "eu";
regions = ( { name = "eu"; lat = 50.1; lon = 8.7; }, { name = "us"; lat = 39.0; lon = -77.5; } );
edges = ( { name = "edge-eu"; region = "eu"; address = "127.0.0.11"; },
          { name = "edge-us"; region = "us"; address = "127.0.0.12"; } );
CONF
printf 'control_secret = "s3cret";\nnodes = ( { name = "dns"; role = "dns"; url = "http://127.0.0.1:%s"; } );\n' "$SP" > "$T_DIR/ctl.conf"
t_start dns "$BIN/minicdn-dns" -c "$T_DIR/dns.conf"
t_wait_dns 127.0.0.1 "$P" www.cdn.test || t_fail "server did not answer"
DNSPID=$(t_pid dns)
has() { grep -qE -- "$1" <<<"$2"; }
ASK() { dig +short +time=1 +tries=1 -b "$1" @127.0.0.1 -p "$P" "${2:-www.cdn.test}" "${@:3}"; }
gen() { curl -s "http://127.0.0.1:$SP/healthz" | sed -n 's/.*"generation":\([0-9]*\).*/\1/p'; }
udp() { curl -s "http://127.0.0.1:$SP/stats" | sed -n 's/.*"udp":\([0-9]*\).*/\1/p'; }
now_ms() { date +%s%3N; }
# SIGHUP, then wait until the server logged that reload's outcome: signals
# sent closer together could merge into one reload.
hup() {
	local m; m=$(t_log_mark dns)
	kill -HUP "$DNSPID"
	for _ in $(seq 50); do
		t_log_since dns "$m" | grep -qE 'reload: (loaded|rejected)' && return 0
		sleep 0.1
	done
}

t_eq "before: 127.0.2.1 -> us" 127.0.0.12 "$(ASK 127.0.2.1)"
G0=$(gen)

# a load running through every reload below
for i in $(seq 200); do echo "www.cdn.test A"; echo "ns1.cdn.test A"; done > "$T_DIR/queries"
dnsperf -s 127.0.0.1 -p "$P" -d "$T_DIR/queries" -l 8 -Q 4000 -t 2 > "$T_DIR/dnsperf.out" 2>&1 &
PERF=$!
# The window: from a moment dnsperf's queries are seen arriving (the server's
# UDP counter moving) to one after the last reload when they still arrive.
# Every reload logged between the two happened under load.
Q0=$(udp)
for _ in $(seq 50); do [ "$(udp)" -gt "$Q0" ] && break; sleep 0.1; done
WIN_START=$(now_ms)
t_check "dnsperf's queries arrive before the first reload" test "$(udp)" -gt "$Q0"

# SIGHUP with a new map: 127.0.2.0/24 now eu
printf '127.0.1.0/24 us\n127.0.2.0/24 eu\n' > "$T_DIR/map.txt"
hup
for _ in $(seq 30); do [ "$(ASK 127.0.2.1)" = 127.0.0.11 ] && break; sleep 0.1; done
t_eq "SIGHUP: new map in effect (127.0.2.1 -> eu)" 127.0.0.11 "$(ASK 127.0.2.1)"
t_check "SIGHUP: generation increased" test "$(gen)" -gt "$G0"

# POST /reload needs the control secret; GETs stay open
G1=$(gen)
OUT=$(curl -s -i -X POST "http://127.0.0.1:$SP/reload")
t_check "POST /reload without a secret: HTTP 401" has '^HTTP/1.1 401' "$OUT"
t_check "401 says WWW-Authenticate: Bearer" has '^WWW-Authenticate: Bearer' "$OUT"
t_eq "POST /reload with a wrong secret: HTTP 401" 401 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cre' -X POST "http://127.0.0.1:$SP/reload")"
t_eq "POST /reload with a longer wrong secret: HTTP 401" 401 \
	"$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer s3cretX' -X POST "http://127.0.0.1:$SP/reload")"
t_eq "POST /reload with Basic auth: HTTP 401" 401 \
	"$(curl -s -o /dev/null -w '%{http_code}' -u s3cret:s3cret -X POST "http://127.0.0.1:$SP/reload")"
t_eq "refused reloads did not reload (generation unchanged)" "$G1" "$(gen)"
t_check "refused reload logged" grep -q 'POST /reload refused' "$T_DIR/dns.log"
t_refusal_log_limited "dns: refused reloads" POST "http://127.0.0.1:$SP/reload" "$T_DIR/dns.log" \
	'POST /reload refused'
printf 'control_secret = "wrong";\nnodes = ( { name = "dns"; role = "dns"; url = "http://127.0.0.1:%s"; } );\n' "$SP" > "$T_DIR/ctl-bad.conf"
t_fails_with 1 "minicdnctl reload with the wrong secret: exit 1" "$BIN/minicdnctl" -c "$T_DIR/ctl-bad.conf" reload
t_eq "minicdnctl reload with the wrong secret did not reload" "$G1" "$(gen)"
OUT=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer s3cret' -X POST "http://127.0.0.1:$SP/reload")
t_check "POST /reload with the right secret: HTTP 200" bash -c "grep -q '\"ok\":true' <<<'$OUT' && grep -q ' 200$' <<<'$OUT'"
t_check "right secret: generation increased" test "$(gen)" -gt "$G1"
t_eq "GET /stats needs no secret" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SP/stats")"

# a bad map is rejected, the old one keeps serving
printf '127.0.1.0/24 us\n127.0.2.0/24 mars\n' > "$T_DIR/map.txt"
OUT=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer s3cret' -X POST "http://127.0.0.1:$SP/reload")
t_check "POST /reload with a bad map: HTTP 400" has ' 400$' "$OUT"
t_check "the error names file, line and problem" has 'map.txt:2: unknown region .mars.' "$OUT"
t_eq "old map still serving (127.0.2.1 -> eu)" 127.0.0.11 "$(ASK 127.0.2.1)"
hup
t_check "SIGHUP with a bad map: logged as rejected" grep -q "rejected, the previous configuration keeps serving: .*map.txt:2" "$T_DIR/dns.log"
t_eq "still the old map after the bad SIGHUP" 127.0.0.11 "$(ASK 127.0.2.1)"

# a bad zone is rejected too
printf '127.0.1.0/24 us\n127.0.2.0/24 us\n' > "$T_DIR/map.txt"
echo "garbage line here" >> "$T_DIR/cdn.test.zone"
t_fails_with 1 "minicdnctl reload with a bad zone: exit 1" "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" reload; OUT=$T_OUT
t_check "minicdnctl reload reports the zone error" has 'rejected.*cdn.test.zone:5' "$OUT"
t_eq "old data still serving" 127.0.0.11 "$(ASK 127.0.2.1)"
t_eq "old zone serial still served" 1 "$(ASK 127.0.0.1 cdn.test SOA | awk '{print $3}')"

# fixed zone with a new serial: accepted through minicdnctl
zone 2
OUT=$("$BIN/minicdnctl" -c "$T_DIR/ctl.conf" reload 2>&1); RC=$?
t_check "minicdnctl reload: exit 0" test $RC -eq 0
t_check "minicdnctl reload: reports the generation" has 'dns: reloaded \(generation [0-9]+\)' "$OUT"
t_eq "new zone serial served" 2 "$(ASK 127.0.0.1 cdn.test SOA | awk '{print $3}')"
t_eq "new map: 127.0.2.1 -> us" 127.0.0.12 "$(ASK 127.0.2.1)"
for _ in 1 2 3 4 5; do hup; done
Q1=$(udp); sleep 0.3
t_check "dnsperf's queries still arrive after the last reload" test "$(udp)" -gt "$Q1"
WIN_END=$(now_ms)

wait "$PERF"
# Reload outcomes logged inside the window: SIGHUP, POST /reload, minicdnctl
# and five SIGHUPs loaded (8); the bad map twice and the bad zone rejected (3).
inwin=$(python3 - "$T_DIR/dns.log" "$WIN_START" "$WIN_END" <<'PY'
import re, sys
from datetime import datetime, timezone
path, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = {"loaded": 0, "rejected": 0, "outside": 0}
for line in open(path, errors="replace"):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z .* reload: (loaded|rejected)", line)
    if not m:
        continue
    t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    ms = int(t.timestamp() * 1000)
    n[m.group(2) if lo <= ms <= hi else "outside"] += 1
print("%(loaded)d loaded, %(rejected)d rejected, %(outside)d outside" % n)
PY
)
# "outside": the start-up load only.
t_eq "reloads inside the dnsperf window" "8 loaded, 3 rejected, 1 outside" "$inwin"
LOST=$(sed -n 's/.*Queries lost: *\([0-9]*\).*/\1/p' "$T_DIR/dnsperf.out")
DONE=$(sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p' "$T_DIR/dnsperf.out")
t_check "dnsperf ran ($DONE queries completed)" test "${DONE:-0}" -gt 5000
t_eq "no query lost during the 11 reloads under load" 0 "${LOST:-missing}"
t_check "no SERVFAIL during reloads" bash -c "! grep -q 'SERVFAIL' '$T_DIR/dnsperf.out'"
t_done
