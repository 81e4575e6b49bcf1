#!/bin/bash
# dns-geoip: addresses not in the subnet map are located with a MaxMind DB
# (built here with MaxMind::DB::Writer) and sent to the nearest edge by
# great-circle distance; the map still wins where it matches; the ECS scope
# covers the GeoIP network; a bad database is a clear start-up error.
. "$(dirname "$0")/../../lib.sh"
t_init dns-geoip
HERE=$(cd "$(dirname "$0")" && pwd)
P=$(t_free_port); SP=$(t_free_port)
perl "$HERE/mkmmdb.pl" "$T_DIR/geo.mmdb" || t_fail "cannot build the test MaxMind DB"
printf '$ORIGIN cdn.test.\n@ 300 IN SOA ns1 h 1 3600 600 86400 60\n@ 300 IN NS ns1\nns1 300 IN A 127.0.0.1\n' > "$T_DIR/cdn.test.zone"
printf '127.0.1.0/24 us\n127.0.9.128/25 eu\n' > "$T_DIR/map.txt"
cat > "$T_DIR/dns.conf" <<CONF
listen = [ "127.0.0.1:$P" ];
stats_listen = "127.0.0.1:$SP";
zones = ( { name = "cdn.test."; file = "cdn.test.zone"; } );
dynamic = [ "www.cdn.test." ];
map = "map.txt";
geoip = "geo.mmdb";
default_region = "eu";
regions = ( { name = "eu"; lat = 50.1; lon = 8.7; }, { name = "us"; lat = 39.0; lon = -77.5; },
            { name = "ap"; lat = 1.35; lon = 103.8; } );
edges = ( { name = "eu1"; region = "eu"; address = "127.0.0.11"; },
          { name = "us1"; region = "us"; address = "127.0.0.12"; },
          { name = "ap1"; region = "ap"; address = "127.0.0.13"; } );
CONF
t_start dns "$BIN/minicdn-dns" -c "$T_DIR/dns.conf"
t_wait_dns 127.0.0.1 "$P" www.cdn.test || t_fail "server did not answer"
A() { dig +short +time=2 +tries=1 -p "$P" @127.0.0.1 "$@"; }
has() { grep -qE -- "$1" <<<"$2"; }

t_eq "GeoIP: 127.0.9.1 (Singapore) -> ap1" 127.0.0.13 "$(A -b 127.0.9.1 www.cdn.test)"
t_eq "GeoIP: 127.0.8.1 (Washington) -> us1" 127.0.0.12 "$(A -b 127.0.8.1 www.cdn.test)"
t_eq "the map wins over GeoIP (127.0.9.200 in map: eu)" 127.0.0.11 "$(A -b 127.0.9.200 www.cdn.test)"
t_eq "in neither: default region" 127.0.0.11 "$(A -b 127.0.7.1 www.cdn.test)"
OUT=$(kdig +time=2 -p "$P" @127.0.0.1 +subnet=198.51.101.0/24 www.cdn.test)
t_check "ECS in GeoIP (Munich) -> eu1" has 'A[[:space:]]+127\.0\.0\.11' "$OUT"
t_check "ECS scope is the GeoIP network (/22)" has 'CLIENT-SUBNET: 198.51.101.0/24/22' "$OUT"
OUT=$(kdig +time=2 -p "$P" @127.0.0.1 +subnet=2001:db8:9::/48 www.cdn.test)
t_check "IPv6 ECS in GeoIP (Sydney) -> nearest edge ap1" has 'A[[:space:]]+127\.0\.0\.13' "$OUT"
EX=$(curl -s "http://127.0.0.1:$SP/explain?name=www.cdn.test&addr=127.0.9.1")
t_check "explain: source geoip with coordinates" has '"source":"geoip","match_len":24,"scope":[0-9]+,"lat":1.3000,"lon":103.9000' "$EX"
t_check "explain: reason names GeoIP" has 'GeoIP coordinates' "$EX"

echo "not a database" > "$T_DIR/bad.mmdb"
sed 's/geo.mmdb/bad.mmdb/' "$T_DIR/dns.conf" > "$T_DIR/bad.conf"
t_fails_with 1 "bad MaxMind DB: exit 1" "$BIN/minicdn-dns" -t -c "$T_DIR/bad.conf"; OUT=$T_OUT
t_check "bad MaxMind DB: error names the file" has 'bad.mmdb: ' "$OUT"
t_done
