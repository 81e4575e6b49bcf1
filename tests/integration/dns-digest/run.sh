#!/bin/bash
# dns-digest: two DNS servers loaded from the same files report the same
# digest in /healthz and answer alike; minicdnctl status is clean.  A changed
# map on one of them (after its reload) changes its digest, and minicdnctl
# status flags that server and exits 1; restoring the file clears it.  The
# digest also moves with the zone and the edge list.  minicdnctl -t checks
# its configuration.
. "$(dirname "$0")/../../lib.sh"
t_init dns-digest
P1=$(t_free_port); S1=$(t_free_port); P2=$(t_free_port); S2=$(t_free_port)
for n in 1 2; do
	mkdir -p "$T_DIR/ns$n"
	cat >"$T_DIR/ns$n/cdn.test.zone" <<ZONE
\$ORIGIN cdn.test.
\$TTL 300
@ IN SOA ns1.cdn.test. hostmaster.cdn.test. 1 3600 600 86400 60
@ IN NS ns1.cdn.test.
@ IN NS ns2.cdn.test.
ns1 IN A 127.0.0.1
ns2 IN A 127.0.0.2
ZONE
	printf '127.0.1.0/24 eu\n127.0.2.0/24 us\n' >"$T_DIR/ns$n/map.txt"
	eval "p=\$P$n s=\$S$n"
	cat >"$T_DIR/ns$n/dns.conf" <<CONF
listen = [ "127.0.0.$n:$p" ];
stats_listen = "127.0.0.$n:$s";
control_secret = "digest-secret";
zones = ( { name = "cdn.test."; file = "cdn.test.zone"; } );
dynamic = [ "www.cdn.test." ];
map = "map.txt";
default_region = "eu";
regions = ( { name = "eu"; lat = 50.1; lon = 8.7; }, { name = "us"; lat = 39.0; lon = -77.5; } );
edges = (
  { name = "edge-eu"; region = "eu"; address = "127.0.0.11"; },
  { name = "edge-us"; region = "us"; address = "127.0.0.12"; }
);
CONF
done
cat >"$T_DIR/ctl.conf" <<CONF
control_secret = "digest-secret";
nodes = (
  { name = "ns1"; role = "dns"; url = "http://127.0.0.1:$S1"; },
  { name = "ns2"; role = "dns"; url = "http://127.0.0.2:$S2"; }
);
CONF
t_start ns1 "$BIN/minicdn-dns" -c "$T_DIR/ns1/dns.conf"
t_start ns2 "$BIN/minicdn-dns" -c "$T_DIR/ns2/dns.conf"
t_wait_dns 127.0.0.1 "$P1" www.cdn.test && t_wait_dns 127.0.0.2 "$P2" www.cdn.test || t_fail "servers did not answer"
digest() { curl -s "http://127.0.0.$1:$2/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("digest",""))'; }
CTL() { "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" "$@"; }
has() { grep -qE -- "$1" <<<"$2"; }
# reloads one server and waits for its generation to move
reload() { # n stats-port
	local g0 g; g0=$(curl -s "http://127.0.0.$1:$2/healthz" | grep -o '"generation":[0-9]*')
	curl -s -o /dev/null -X POST -H 'Authorization: Bearer digest-secret' "http://127.0.0.$1:$2/reload"
	for _ in $(seq 50); do
		g=$(curl -s "http://127.0.0.$1:$2/healthz" | grep -o '"generation":[0-9]*')
		[ "$g" != "$g0" ] && return 0
		sleep 0.1
	done
	return 1
}

t_eq "minicdnctl -t accepts the config" "$T_DIR/ctl.conf: configuration OK" "$(CTL -t)"
printf 'nodes = ( { name = "x"; role = "cache"; url = "http://127.0.0.1:1"; } );\n' >"$T_DIR/bad-ctl.conf"
t_eq "minicdnctl -t refuses a bad role with exit 2" 2 "$("$BIN/minicdnctl" -t -c "$T_DIR/bad-ctl.conf" >/dev/null 2>&1; echo $?)"

D1=$(digest 1 "$S1"); D2=$(digest 2 "$S2")
t_check "ns1 reports a 32-hex-digit digest ($D1)" has '^[0-9a-f]{32}$' "$D1"
t_eq "same files: ns2 reports the same digest" "$D1" "$D2"
for c in 127.0.1.1 127.0.2.1; do
	t_eq "both answer client $c alike" "$(dig +short -b "$c" @127.0.0.1 -p "$P1" www.cdn.test)" "$(dig +short -b "$c" @127.0.0.2 -p "$P2" www.cdn.test)"
done
out=$(CTL status 2>&1); rc=$?
t_check "minicdnctl status exits 0 when they agree" test $rc = 0
t_check "and flags nothing" test -z "$(grep -E 'DIFFERS|digest differs' <<<"$out")"

printf '127.0.1.0/24 us\n127.0.2.0/24 us\n' >"$T_DIR/ns2/map.txt"
t_check "ns2 reloads the changed map" reload 2 "$S2"
D2b=$(digest 2 "$S2")
t_check "ns2's digest changed ($D2b)" test "$D2b" != "$D1"
t_eq "ns1's digest did not" "$D1" "$(digest 1 "$S1")"
out=$(CTL status 2>&1); rc=$?
t_check "minicdnctl status exits 1 when they differ" test $rc = 1
t_check "and flags ns2" has '^ns2 .*DIFFERS' "$out"
t_check "and not ns1" test -z "$(grep -E '^ns1 .*DIFFERS' <<<"$out")"
t_check "and says so in a summary line" has 'DNS server\(s\) answer from different data' "$out"
t_check "--json marks ns2 digest_differs" has '"digest_differs": true' "$(CTL --json status 2>&1)"

printf '127.0.1.0/24 eu\n127.0.2.0/24 us\n' >"$T_DIR/ns2/map.txt"
t_check "ns2 reloads the restored map" reload 2 "$S2"
t_eq "restored map: same digest as ns1 again" "$D1" "$(digest 2 "$S2")"
t_check "minicdnctl status exits 0 again" CTL status

echo "www2 IN A 127.0.0.99" >>"$T_DIR/ns2/cdn.test.zone"
reload 2 "$S2"
t_check "a zone change moves the digest" test "$(digest 2 "$S2")" != "$D1"
sed -i '$d' "$T_DIR/ns2/cdn.test.zone"
sed -i 's/address = "127.0.0.12"/address = "127.0.0.13"/' "$T_DIR/ns2/dns.conf"
reload 2 "$S2"
t_check "an edge address change moves the digest" test "$(digest 2 "$S2")" != "$D1"
t_done
