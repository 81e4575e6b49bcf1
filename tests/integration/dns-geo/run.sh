#!/bin/bash
# dns-geo: dynamic answers of minicdn-dns: subnet map, default region, ECS
# (RFC 7871) with echo and scope, IPv6 clients, AAAA, weights, backup regions,
# nearest region, N answers, explain (HTTP + minicdnctl), stats and metrics,
# query log.
. "$(dirname "$0")/../../lib.sh"
t_init dns-geo
HERE=$(cd "$(dirname "$0")" && pwd)
P=$(t_free_port); SP=$(t_free_port)
cp "$HERE/map.txt" "$HERE/cdn.test.zone" "$T_DIR/"
sed -e "s/@PORT@/$P/g; s/@SPORT@/$SP/; s/@ANSWERS@/1/" "$HERE/dns.conf.in" > "$T_DIR/dns.conf"
sed -e "s/@SPORT@/$SP/" "$HERE/ctl.conf.in" > "$T_DIR/ctl.conf"
t_start dns "$BIN/minicdn-dns" -c "$T_DIR/dns.conf"
t_wait_dns 127.0.0.1 "$P" www.cdn.test || t_fail "server did not answer"

A() { dig +short +time=2 +tries=1 -p "$P" "$@"; }
K() { kdig +time=2 +retry=0 -p "$P" "$@"; }
has() { grep -qE -- "$1" <<<"$2"; }
hasnot() { ! grep -qE -- "$1" <<<"$2"; }

t_eq "client 127.0.1.1 (eu) gets an eu edge" 1 "$(A -b 127.0.1.1 @127.0.0.1 www.cdn.test | grep -cE '^127\.0\.0\.(11|21)$')"
t_eq "client 127.0.2.1 (us) gets us1" 127.0.0.12 "$(A -b 127.0.2.1 @127.0.0.1 www.cdn.test)"
t_eq "client 127.0.3.1 (ap) gets ap1" 127.0.0.13 "$(A -b 127.0.3.1 @127.0.0.1 www.cdn.test)"
t_eq "wildcard dynamic name answered like www" 127.0.0.13 "$(A -b 127.0.3.1 @127.0.0.1 img.cdn.test)"
t_eq "unmapped client 127.0.0.1 gets the default region (eu)" 1 "$(A -b 127.0.0.1 @127.0.0.1 www.cdn.test | grep -cE '^127\.0\.0\.(11|21)$')"
t_eq "backup region beats distance (sa -> ap, not the nearer us)" 127.0.0.13 "$(A -b 127.0.4.1 @127.0.0.1 www.cdn.test)"
t_eq "region without edges or backup -> nearest region (oc -> ap)" 127.0.0.13 "$(A -b 127.0.5.1 @127.0.0.1 www.cdn.test)"
t_eq "dynamic TTL from config (20)" 20 "$(dig +noall +answer -b 127.0.2.1 @127.0.0.1 -p "$P" www.cdn.test | awk '{print $2}')"
t_eq "static record in the same zone" 192.0.2.1 "$(A @127.0.0.1 static.cdn.test)"
t_eq "AAAA for a client in us" fd00::12 "$(A -b 127.0.2.1 @127.0.0.1 www.cdn.test AAAA)"
t_eq "AAAA for ap (no IPv6 edge there) -> nearest edge with IPv6" 1 \
	"$(A -b 127.0.3.1 @127.0.0.1 www.cdn.test AAAA | grep -cE '^fd00::(11|21|12)$')"

# ---- ECS: the option decides, is echoed, scope = widest block with the same answer
OUT=$(K @127.0.0.1 +subnet=10.1.2.0/24 www.cdn.test)
t_check "ECS 10.1.2.0/24 (eu) answered with an eu edge" grep -qE 'A[[:space:]]+127\.0\.0\.(11|21)' <<<"$OUT"
t_check "ECS echoed with source 24, scope 24" grep -q 'CLIENT-SUBNET: 10.1.2.0/24/24' <<<"$OUT"
OUT=$(K @127.0.0.1 +subnet=10.1.5.0/24 www.cdn.test)
t_check "ECS 10.1.5.0/24 -> ap (10.1/16)" grep -qE 'A[[:space:]]+127\.0\.0\.13' <<<"$OUT"
t_check "ECS scope 22: widest block around 10.1.5.0 without 10.1.2/24" grep -q 'CLIENT-SUBNET: 10.1.5.0/24/22' <<<"$OUT"
OUT=$(K @127.0.0.1 +subnet=10.200.0.0/16 www.cdn.test)
t_check "ECS 10.200/16 -> us (10/8), scope 9 (not the /8: 10.1/16 differs)" \
	bash -c "grep -qE 'A[[:space:]]+127\.0\.0\.12' <<<'$OUT' && grep -q 'CLIENT-SUBNET: 10.200.0.0/16/9' <<<'$OUT'"
OUT=$(K @127.0.0.1 -b 127.0.2.1 +subnet=127.0.3.0/24 www.cdn.test)
t_check "ECS wins over the resolver's own address (resolver us, ECS ap)" grep -qE 'A[[:space:]]+127\.0\.0\.13' <<<"$OUT"
OUT=$(K @127.0.0.1 +subnet=2001:db8:1::/56 www.cdn.test)
t_check "IPv6 ECS 2001:db8:1::/56 -> ap, scope 48" \
	bash -c "grep -qE 'A[[:space:]]+127\.0\.0\.13' <<<'$OUT' && grep -q 'CLIENT-SUBNET: 2001:db8:1::/56/48' <<<'$OUT'"
OUT=$(K @127.0.0.1 +subnet=192.0.2.0/24 www.cdn.test)
t_check "ECS not in map -> default region, scope not /0" \
	bash -c "grep -qE 'A[[:space:]]+127\.0\.0\.(11|21)' <<<'$OUT' && grep -qE 'CLIENT-SUBNET: 192.0.2.0/24/([1-9]|[12][0-9]|3[0-2])\$' <<<'$OUT'"
OUT=$(K @127.0.0.1 +subnet=10.1.2.0/24 static.cdn.test)
t_check "static answer: ECS echoed with scope 0" grep -q 'CLIENT-SUBNET: 10.1.2.0/24/0' <<<"$OUT"
OUT=$(K @127.0.0.1 -b 127.0.3.1 +subnet=0.0.0.0/0 www.cdn.test)
t_check "ECS source /0: the resolver's address decides (ap), scope 0" \
	bash -c "grep -qE 'A[[:space:]]+127\.0\.0\.13' <<<'$OUT' && grep -q 'CLIENT-SUBNET: 0.0.0.0/0/0' <<<'$OUT'"
t_eq "ECS with non-zero scope in the query -> FORMERR" FORMERR \
	"$(K @127.0.0.1 +ednsopt=8:000118080a0102 www.cdn.test | grep -o 'status: [A-Z]*' | head -1 | cut -d' ' -f2)"
t_eq "ECS family 3 -> FORMERR" FORMERR \
	"$(K @127.0.0.1 +ednsopt=8:000318000a0102 www.cdn.test | grep -o 'status: [A-Z]*' | head -1 | cut -d' ' -f2)"

# ---- IPv6 transport: needs ::1 on this machine; without it the block says
# SKIP (counted by tests/run.sh) instead of disappearing from the tally.
if python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' 2>/dev/null; then
	t_eq "IPv6 client ::1 (map ::1/128 -> us) gets us1" 127.0.0.12 "$(A -b ::1 @::1 www.cdn.test)"
	t_eq "IPv6 client asking AAAA gets us1's IPv6" fd00::12 "$(A -b ::1 @::1 www.cdn.test AAAA)"
	t_eq "kdig over IPv6 TCP" 127.0.0.12 "$(kdig +short +tcp -p "$P" @::1 www.cdn.test)"
else
	t_skip "IPv6 transport: ::1 cannot be bound here; 3 checks (UDP A, UDP AAAA, TCP over ::1) not run"
fi

# ---- weights: eu1 weight 3, eu2 weight 1 among equals
NAMES=$(for i in $(seq 300); do echo www.cdn.test; done)
EU1=$(dig +short -b 127.0.1.1 @127.0.0.1 -p "$P" $NAMES | grep -c '^127.0.0.11$')
EU2=$(dig +short -b 127.0.1.1 @127.0.0.1 -p "$P" $NAMES | grep -c '^127.0.0.21$')
t_check "weights 3:1 respected (eu1=$EU1 eu2=$EU2 of 300)" bash -c "[ $EU1 -ge 180 ] && [ $EU1 -le 270 ] && [ $EU2 -ge 30 ]"

# ---- explain
EX=$(curl -s "http://127.0.0.1:$SP/explain?name=www.cdn.test&addr=127.0.4.9")
t_check "explain: client located in region sa" has '"region":"sa"' "$EX"
t_check "explain: reason is the backup region" has 'backup region' "$EX"
t_check "explain: ap1 picked" has '"edge":"ap1",[^}]*"picked":true' "$EX"
t_eq "explain: bad address -> HTTP 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SP/explain?name=www.cdn.test&addr=nonsense")"
OUT=$("$BIN/minicdnctl" -c "$T_DIR/ctl.conf" explain www.cdn.test 127.0.2.7 2>&1)
t_check "minicdnctl explain: region us" has 'region us' "$OUT"
t_check "minicdnctl explain: us1 picked" has '^ +us1 .* yes' "$OUT"
EX=$(curl -s "http://127.0.0.1:$SP/explain?name=www.cdn.test&addr=127.0.2.7&type=AAAA")
t_check "explain AAAA: type echoed" has '"type":"AAAA"' "$EX"
t_check "explain AAAA: us1 picked with its IPv6 address" has '"edge":"us1",[^}]*"address":"fd00::12"[^}]*"picked":true' "$EX"
EX=$(curl -s "http://127.0.0.1:$SP/explain?name=www.cdn.test&addr=127.0.3.7&type=AAAA")
t_check "explain AAAA for ap (no IPv6 edge there): ap1 not a candidate" hasnot '"edge":"ap1"' "$EX"
t_check "explain AAAA for ap: an IPv6 edge picked" has '"address":"fd00::(11|21|12)"[^}]*"picked":true' "$EX"
t_eq "explain: bad type -> HTTP 400" 400 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SP/explain?name=www.cdn.test&addr=127.0.2.7&type=MX")"
OUT=$("$BIN/minicdnctl" -c "$T_DIR/ctl.conf" explain www.cdn.test 127.0.2.7 AAAA 2>&1)
t_check "minicdnctl explain AAAA: header says AAAA" has 'www.cdn.test AAAA for 127.0.2.7' "$OUT"
t_check "minicdnctl explain AAAA: us1 picked with fd00::12" has '^ +us1 +us +fd00::12 .* yes' "$OUT"
t_fails_with 2 "minicdnctl explain with a bad type: exit 2" "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" explain www.cdn.test 127.0.2.7 MX
t_check "minicdnctl explain with a bad type: usage names A|AAAA" grep -q 'A|AAAA' <<<"$T_OUT"

# ---- stats and metrics
ST=$(curl -s "http://127.0.0.1:$SP/stats")
t_check "/stats counts answers per edge (us1 > 0)" bash -c "grep -qE '\"name\":\"us1\"[^}]*\"answers\":[1-9]' <<<'$ST'"
t_check "/stats counts ECS queries" bash -c "grep -qE '\"ecs\":[1-9]' <<<'$ST'"
t_check "/stats counts FORMERR" bash -c "grep -qE '\"FORMERR\":[1-9]' <<<'$ST'"
M=$(curl -s "http://127.0.0.1:$SP/metrics")
t_check "/metrics: edge answers counter" grep -qE '^minicdn_dns_edge_answers_total\{edge="ap1"\} [1-9]' <<<"$M"
t_check "/metrics: region answers counter" grep -qE '^minicdn_dns_region_answers_total\{region="sa"\} [1-9]' <<<"$M"
t_check "/metrics: edge up gauge" grep -q '^minicdn_dns_edge_up{edge="eu1",region="eu"} 1' <<<"$M"
t_check "query log explains an answer" grep -q 'query: q=www.cdn.test. A resolver=127.0.4.1 .*match=map/24 region=sa .*answer=ap1 why="client.s region has no usable edge: backup region"' "$T_DIR/dns.log"

# ---- N answers
t_stop dns
sed -e "s/@PORT@/$P/g; s/@SPORT@/$SP/; s/@ANSWERS@/3/" "$HERE/dns.conf.in" > "$T_DIR/dns.conf"
t_start dns "$BIN/minicdn-dns" -c "$T_DIR/dns.conf"
t_wait_dns 127.0.0.1 "$P" www.cdn.test || t_fail "server did not answer"
OUT=$(A -b 127.0.1.1 @127.0.0.1 www.cdn.test | sort | xargs)
t_eq "answers=3: both eu edges, then the nearest other region (us)" "127.0.0.11 127.0.0.12 127.0.0.21" "$OUT"
t_done
