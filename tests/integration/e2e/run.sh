#!/bin/bash
# e2e: the walking skeleton end to end -- origin, two edges, DNS and minicdnctl
# on free loopback ports.  Two source addresses resolve to two different edges;
# a fetch through the edge is a miss then a hit with the origin's bytes; the
# edge restarts and still hits; every process stops and nothing is left behind.
. "$(dirname "$0")/../../lib.sh"
t_init e2e
ROOT=$T_ROOT
OP=$(t_free_port); EP=$(t_free_port); DP=$(t_free_port); SP=$(t_free_port)
SITE=$ROOT/deploy/demo-site

cat >"$T_DIR/origin.conf" <<CONF
name = "origin"; region = "eu";
listen = "127.0.0.10:$OP";
root = "$SITE";
control_secret = "e2e-secret";
rules = ( { match = "*.css"; cache_control = "public, max-age=600"; } );
CONF
for r in eu us; do
	case $r in eu) ip=127.0.0.11 ;; us) ip=127.0.0.12 ;; esac
	cat >"$T_DIR/edge-$r.conf" <<CONF
name = "edge-$r"; region = "$r";
listen = "$ip:$EP";
origin = "http://127.0.0.10:$OP";
control_secret = "e2e-secret";
cache = { path = "$T_DIR/cache-$r"; map_size = "64M"; };
CONF
done
cat >"$T_DIR/map.txt" <<MAP
127.0.1.0/24 eu
127.0.2.0/24 us
MAP
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
zones = ( { name = "cdn.test."; file = "cdn.test.zone"; } );
dynamic = [ "www.cdn.test." ];
map = "map.txt";
default_region = "eu";
regions = ( { name = "eu"; lat = 50.1; lon = 8.7; }, { name = "us"; lat = 39.0; lon = -77.5; } );
edges = (
  { name = "edge-eu"; region = "eu"; address = "127.0.0.11"; healthz = "http://127.0.0.11:$EP/healthz"; },
  { name = "edge-us"; region = "us"; address = "127.0.0.12"; healthz = "http://127.0.0.12:$EP/healthz"; }
);
CONF
cat >"$T_DIR/ctl.conf" <<CONF
control_secret = "e2e-secret";
origin = "http://127.0.0.10:$OP";
nodes = (
  { name = "dns"; role = "dns"; url = "http://127.0.0.1:$SP"; },
  { name = "edge-eu"; role = "edge"; url = "http://127.0.0.11:$EP"; },
  { name = "edge-us"; role = "edge"; url = "http://127.0.0.12:$EP"; },
  { name = "origin"; role = "origin"; url = "http://127.0.0.10:$OP"; }
);
CONF

for p in origin edge-eu edge-us dns; do
	case $p in origin) b=minicdn-origin ;; edge-*) b=minicdn-edge ;; dns) b=minicdn-dns ;; esac
	t_check "$p config passes -t" "$BIN/$b" -t -c "$T_DIR/$p.conf"
done

t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_start edge-eu "$BIN/minicdn-edge" -c "$T_DIR/edge-eu.conf"
t_start edge-us "$BIN/minicdn-edge" -c "$T_DIR/edge-us.conf"
t_start dns "$BIN/minicdn-dns" -c "$T_DIR/dns.conf"
t_wait_http "http://127.0.0.10:$OP/healthz" || t_fail "origin did not start"
t_wait_http "http://127.0.0.11:$EP/healthz" || t_fail "edge-eu did not start"
t_wait_http "http://127.0.0.12:$EP/healthz" || t_fail "edge-us did not start"
t_wait_dns 127.0.0.1 "$DP" www.cdn.test || t_fail "dns did not start"

# ---- DNS: two source addresses, two edges; SOA/NS; REFUSED outside the zone
t_eq "client 127.0.1.1 resolves to the eu edge" 127.0.0.11 "$(dig +short -p "$DP" -b 127.0.1.1 @127.0.0.1 www.cdn.test)"
t_eq "client 127.0.2.1 resolves to the us edge" 127.0.0.12 "$(dig +short -p "$DP" -b 127.0.2.1 @127.0.0.1 www.cdn.test)"
t_eq "unmapped client gets the default region" 127.0.0.11 "$(dig +short -p "$DP" -b 127.0.0.1 @127.0.0.1 www.cdn.test)"
t_eq "SOA served" "ns1.cdn.test." "$(dig +short -p "$DP" @127.0.0.1 cdn.test SOA | awk '{print $1}')"
t_eq "NS served" "ns1.cdn.test." "$(dig +short -p "$DP" @127.0.0.1 cdn.test NS)"
t_eq "name outside the zone is REFUSED" REFUSED "$(dig -p "$DP" @127.0.0.1 example.org | grep -o 'status: [A-Z]*' | cut -d' ' -f2)"

# ---- HTTP through the edge the DNS chose for a us client
EDGE=$(dig +short -p "$DP" -b 127.0.2.1 @127.0.0.1 www.cdn.test)
get() { curl -s -D "$T_DIR/h.$1" -o "$T_DIR/b.$1" --resolve "www.cdn.test:$EP:$EDGE" "http://www.cdn.test:$EP/$2"; }
get 1 css/site.css
t_check "first fetch is a miss (Cache-Status fwd=)" grep -qi '^cache-status:.*fwd=' "$T_DIR/h.1"
t_check "miss is stored" grep -qi '^cache-status:.*stored' "$T_DIR/h.1"
t_check "origin sets Cache-Control from its rule" grep -qi '^cache-control: public, max-age=600' "$T_DIR/h.1"
t_check "miss bytes identical to the origin file" cmp -s "$T_DIR/b.1" "$SITE/css/site.css"
get 2 css/site.css
t_check "second fetch is a hit" grep -qiE '^cache-status: [^;]+; hit' "$T_DIR/h.2"
t_check "hit bytes identical to the origin file" cmp -s "$T_DIR/b.2" "$SITE/css/site.css"

# ---- gzip through the edge: the origin compresses for gzip clients, the edge
# keeps two variants (Accept-Encoding normalised: browsers' lists share one),
# and an identity client never gets gzip bytes.
getae() { curl -s -D "$T_DIR/h.$1" -o "$T_DIR/b.$1" ${3:+-H "Accept-Encoding: $3"} --resolve "www.cdn.test:$EP:$EDGE" "http://www.cdn.test:$EP/$2"; }
getae gz1 menu.html "gzip"
t_check "gzip client: Content-Encoding gzip" grep -qi '^content-encoding: gzip' "$T_DIR/h.gz1"
t_check "gzip client: stored" grep -qi '^cache-status:.*stored' "$T_DIR/h.gz1"
t_check "gzip client: bytes inflate to the file" sh -c "gunzip -c '$T_DIR/b.gz1' | cmp -s - '$SITE/menu.html'"
getae gz2 menu.html "gzip, deflate, br, zstd"
t_check "another gzip spelling: a hit on the same variant" grep -qiE '^cache-status: [^;]+; hit' "$T_DIR/h.gz2"
t_check "... with the gzip bytes" cmp -s "$T_DIR/b.gz1" "$T_DIR/b.gz2"
getae id1 menu.html ""
t_check "identity client: no Content-Encoding" sh -c "! grep -qi '^content-encoding' '$T_DIR/h.id1'"
t_check "identity client: the file's bytes" cmp -s "$T_DIR/b.id1" "$SITE/menu.html"
t_check "identity client: its own variant (vary-miss)" grep -qi '^cache-status:.*fwd=vary-miss' "$T_DIR/h.id1"
getae id2 menu.html "br"
t_check "a client without gzip shares the identity variant" grep -qiE '^cache-status: [^;]+; hit' "$T_DIR/h.id2"
t_check "... with the file's bytes" cmp -s "$T_DIR/b.id2" "$SITE/menu.html"

# ---- the cache survives a restart of the edge (even with the origin gone)
t_stop edge-us
t_stop origin
t_start edge-us "$BIN/minicdn-edge" -c "$T_DIR/edge-us.conf"
t_wait_http "http://127.0.0.12:$EP/healthz" || t_fail "edge-us did not restart"
get 3 css/site.css
t_check "after restart (origin stopped): still a hit" grep -qiE '^cache-status: [^;]+; hit' "$T_DIR/h.3"
t_check "after restart: bytes identical" cmp -s "$T_DIR/b.3" "$SITE/css/site.css"

# ---- minicdnctl status: the origin is down now, everything else up
t_fails_with 1 "status exits non-zero when a node is down" "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" status; OUT=$T_OUT
t_check "status shows edge-us up" grep -qE '^edge-us +edge .* up ' <<<"$OUT"
t_check "status shows the origin down" grep -qE '^origin +origin .* down' <<<"$OUT"
t_start origin "$BIN/minicdn-origin" -c "$T_DIR/origin.conf"
t_wait_http "http://127.0.0.10:$OP/healthz" || t_fail "origin did not restart"
t_check "status exits 0 when every node is up" "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" status

# ---- every process stops by PID on SIGTERM (t_stop fails the test otherwise)
PIDS="${T_PIDS[*]}"
for p in dns edge-eu edge-us origin; do t_stop "$p"; done
left=0; for pid in $PIDS; do kill -0 "$pid" 2>/dev/null && left=1; done
t_eq "no daemon left running" 0 "$left"
t_done
