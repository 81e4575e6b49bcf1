#!/usr/bin/env bash
# edge-sites: several websites behind one edge.  Each Host goes to its own
# site's origin (a Host no site has gets 421 and reaches no origin); the
# same path on two sites is two cache entries; a purge of one site's prefix
# leaves the other's identical path cached; /metrics counts per site and
# the access log names the site; the control API answers on its own address
# only; an https origin is verified (a good certificate: 200, a certificate
# from another CA: 502 with the reason in the log).
. "$(dirname "$0")/../../lib.sh"
t_init edge-sites
. "$T_ROOT/tests/integration/edge-common.sh"
C=$T_DIR/pki
mkdir -p "$C" "$T_DIR/www"

# ---------- two CAs; origin certificates for 127.0.0.1 ----------
mkca() { # name
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$1.key" \
		-out "$C/$1.pem" -days 30 -subj "/CN=$1" 2>/dev/null
}
mkleaf() { # name ca
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/$1.key" \
		-subj "/CN=$1" -out "$C/$1.csr" 2>/dev/null &&
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$C/$1.ext" &&
	openssl x509 -req -in "$C/$1.csr" -CA "$C/$2.pem" -CAkey "$C/$2.key" -set_serial "1$RANDOM" \
		-days 30 -extfile "$C/$1.ext" -out "$C/$1.pem" 2>/dev/null
}
mkca ca && mkca other-ca && mkleaf good ca && mkleaf bad other-ca ||
	{ t_fail "openssl could not make the test PKI"; t_done; }

# ---------- two https origins ----------
# good: HTTP/1.1 keep-alive over TLS, counting connections and the SNI names
# it was sent (as https://localhost, so the edge sends SNI); bad: a
# certificate from another CA (openssl s_server).
printf 'secure body\n' >"$T_DIR/www/s.txt"
GPORT=$(t_free_port)
BPORT=$(t_free_port)
cat >"$T_DIR/tls_origin.py" <<'PY'
import http.server, json, ssl, sys
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
stats = {"connections": 0, "sni": []}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        stats["connections"] += 1
    def do_GET(self):
        body = json.dumps(stats).encode() if self.path == "/__stats" else b"secure body\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if self.path == "/__stats" else "max-age=60")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.sni_callback = lambda sock, name, c: stats["sni"].append(name) and None
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
t_start good python3 "$T_DIR/tls_origin.py" "$GPORT" "$C/good.pem" "$C/good.key"
(cd "$T_DIR/www" && exec openssl s_server -quiet -WWW -accept "127.0.0.1:$BPORT" \
	-cert "$C/bad.pem" -key "$C/bad.key") >"$T_DIR/bad.log" 2>&1 &
echo $! >"$T_DIR/bad.pid"
trap 'kill "$(cat "$T_DIR/bad.pid")" 2>/dev/null' EXIT
for _ in $(seq 50); do
	curl -s -o /dev/null --cacert "$C/ca.pem" "https://localhost:$GPORT/__stats" && break
	sleep 0.1
done
gstats() { curl -s --cacert "$C/ca.pem" "https://localhost:$GPORT/__stats"; }

OPORT=$(t_free_port)
CPORT=$(t_free_port)
"$BIN/bundle-sign" keygen "$T_DIR/origin.pub" "$T_DIR/origin.key" >/dev/null ||
	{ t_fail "bundle-sign keygen"; t_done; }
EDGE_NO_ORIGIN=1 edge_setup "scripts = { pubkey = \"$T_DIR/origin.pub\"; path = \"$T_DIR/scripts\"; };
access_log = \"$T_DIR/access.log\";
control_listen = \"127.0.0.1:$CPORT\";
sites = (
  { name = \"a\"; hosts = [\"a.test\", \"www.a.test\"]; origin = \"http://127.0.0.1:$OPORT\"; },
  { name = \"b\"; hosts = [\"*.b.test\"]; origin = \"http://127.0.0.1:$OPORT/\";
    origin_host = \"origin.b.test\"; },
  { name = \"s\"; hosts = [\"secure.test\"]; origin = \"https://localhost:$GPORT\";
    origin_ca = \"$C/ca.pem\"; },
  { name = \"x\"; hosts = [\"bad.test\"]; origin = \"https://127.0.0.1:$BPORT\";
    origin_ca = \"$C/ca.pem\"; }
);"
CTL=http://127.0.0.1:$CPORT

# ---------- Host to site ----------
oset '{"path":"/p","headers":{"Cache-Control":"max-age=60"},"body":"page\n"}'
get /p -H 'Host: www.a.test'
t_eq "site a: 200 from its origin" "200 page" "$(status) $(body)"
get /p -H 'Host: x.b.test'
t_eq "site b (wildcard): 200" 200 "$(status)"
t_eq "the same path on two sites is two entries (two origin fetches)" 2 "$(ocount /p)"
t_eq "b's origin got b's configured Host" origin.b.test \
	"$(olast /p | python3 -c 'import json,sys; print(json.load(sys.stdin)["headers"].get("Host"))')"
get /p -H 'Host: www.a.test'
t_check "a's second request is a hit" cs_has hit
get /p -H 'Host: x.b.test'
t_check "b's second request is a hit" cs_has hit
get /p -H 'Host: y.y.b.test'
t_eq "a wildcard covers one label only: two labels get 421" 421 "$(status)"
get /p -H 'Host: nobody.example'
t_eq "a Host no site has: 421" 421 "$(status)"
t_eq "and nothing reached any origin" 2 "$(ocount /p)"
# A request body streamed to the origin goes to its site's origin too.
head -c 600000 /dev/urandom >"$T_DIR/post.bin"
t_eq "a 600 kB POST to site b: 200" 200 \
	"$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$T_DIR/post.bin" -H 'Host: x.b.test' "$E/up")"
t_eq "it reached b's origin whole, with b's Host" "$(sha256sum <"$T_DIR/post.bin" | cut -c1-64) origin.b.test" \
	"$(olast /up | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["body_sha256"], d["headers"].get("Host"))')"
get /p -H 'Host: www.a.test:8080'
t_eq "a port in Host still finds the site (its own entry: host[:port] keys)" 200 "$(status)"

# ---------- purges per site ----------
t_eq "the public listener does not serve the control API" 404 \
	"$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer test-secret' \
		--data '{"prefix":"/","site":"a"}' "$E/.minicdn/purge")"
purge() { curl -s -X POST -H 'Authorization: Bearer test-secret' --data "$1" "$CTL/.minicdn/purge"; }
t_eq "a path prefix with several sites needs a site" 400 \
	"$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer test-secret' \
		--data '{"prefix":"/p"}' "$CTL/.minicdn/purge")"
t_eq "purge prefix /p of site a (both host spellings) on the control listener" '{"purged":2}' "$(purge '{"prefix":"/p","site":"a"}')"
get /p -H 'Host: x.b.test'
t_check "b's identical path is still cached" cs_has hit
get /p -H 'Host: www.a.test'
t_check "a's is gone: a miss" cs_has uri-miss
t_eq "a URL of b's host purges b's entry" '{"purged":1}' "$(purge '{"url":"http://x.b.test/p"}')"
get /p -H 'Host: www.a.test'
t_check "and leaves a's" cs_has hit
t_eq "a URL whose host is not the named site's is refused" 400 \
	"$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer test-secret' \
		--data '{"url":"http://x.b.test/p","site":"a"}' "$CTL/.minicdn/purge")"

# ---------- a script route limited to one site ----------
mkdir -p "$T_DIR/bundles"
cat >"$T_DIR/bundles/hi.lua" <<'EOL'
--[[minicdn
name = "hi";
routes = ( { path = "/hi"; site = "b"; } );
]]
function handle(req)
  local r, err = fetch("/so", { from = "origin" })
  if not r then return { status = 502, body = err } end
  return { status = 200, body = "script for b: " .. r.body }
end
EOL
oset '{"path":"/so","headers":{"Cache-Control":"no-store"},"body":"from b origin"}'
"$BIN/bundle-sign" sign "$T_DIR/origin.key" "$T_DIR/bundles/hi.lua" 1 >"$T_DIR/hi.env"
t_eq "the bundle activates (control listener)" 200 \
	"$(curl -s -o /dev/null -w '%{http_code}' --data-binary "@$T_DIR/hi.env" "$CTL/.minicdn/scripts")"
get /hi -H 'Host: x.b.test'
t_eq "site b runs the script" "200 script for b: from b origin" "$(status) $(body)"
t_eq "its origin subrequest went to b's origin with b's Host" origin.b.test \
	"$(olast /so | python3 -c 'import json,sys; print(json.load(sys.stdin)["headers"].get("Host"))')"
oset '{"path":"/hi","headers":{"Cache-Control":"no-store"},"body":"plain a"}'
get /hi -H 'Host: www.a.test'
t_eq "site a does not: its origin answers" "200 plain a" "$(status) $(body)"

# ---------- https origins ----------
c0=$(gstats | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"])')
get /s.txt -H 'Host: secure.test'
t_eq "https origin with a certificate from the site's CA: 200" "200 secure body" "$(status) $(body)"
get /s2.txt -H 'Host: secure.test'
get /s3.txt -H 'Host: secure.test'
t_eq "three misses to the https origin" "200 secure body" "$(status) $(body)"
t_eq "over one kept-alive connection (plus our stats query)" 2 \
	"$(($(gstats | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"])') - c0))"
t_check "the edge sent SNI (the origin's name)" sh -c "curl -s --cacert '$C/ca.pem' https://localhost:$GPORT/__stats | grep -q '\"localhost\"'"
get /s.txt -H 'Host: bad.test'
t_eq "https origin with a certificate from another CA: 502" 502 "$(status)"
t_check "the reason is in the error" grep -q 'certificate' "$T_DIR/b"
t_check "and in the log" grep -q 'origin TLS failed' "$T_DIR/edge.log"

# ---------- metrics and the access log ----------
curl -s "$E/metrics" >"$T_DIR/metrics"
t_eq "per-site requests (a)" 6 "$(awk '/^minicdn_edge_site_requests_total\{site="a"\}/ {print $2}' "$T_DIR/metrics")"
t_eq "per-site hits (b)" 2 "$(awk '/^minicdn_edge_site_cache_hits_total\{site="b"\}/ {print $2}' "$T_DIR/metrics")"
t_eq "per-site purged (a)" 2 "$(awk '/^minicdn_edge_site_purged_total\{site="a"\}/ {print $2}' "$T_DIR/metrics")"
t_eq "421s counted" 2 "$(awk '/^minicdn_edge_misdirected_total / {print $2}' "$T_DIR/metrics")"
# ---------- minicdnctl purge --site (after the counts above) ----------
# The operator's tool speaks the same per-site purge. the operator's tool speaks the same per-site purge.
cat >"$T_DIR/ctl.conf" <<EOC
control_secret = "test-secret";
origin = "http://127.0.0.1:9";
timeout = "5s";
nodes = ( { name = "e1"; role = "edge"; url = "$CTL"; } );
EOC
get /q -H 'Host: www.a.test'; get /q -H 'Host: x.b.test'
get /q -H 'Host: www.a.test'; t_check "a's /q cached" cs_has hit
out=$("$BIN/minicdnctl" -c "$T_DIR/ctl.conf" purge --site b --prefix /q 2>&1); rc=$?
t_eq "minicdnctl purge --site b --prefix /q: exit 0" 0 "$rc"
t_check "it purged b's one entry" grep -Eq '^e1 +ok +1' <<<"$out"
t_check "its summary names the site" grep -q 'site=b' <<<"$out"
get /q -H 'Host: www.a.test'
t_check "a's /q untouched by b's purge" cs_has hit
get /q -H 'Host: x.b.test'; get /q -H 'Host: x.b.test'
t_check "b's /q cached again" cs_has hit
t_fails_with 1 "a path prefix without --site, several sites: exit 1" \
	"$BIN/minicdnctl" -c "$T_DIR/ctl.conf" purge --prefix /q
t_check "the edge's reason is shown" grep -q 'needs' <<<"$T_OUT"
t_fails_with 1 "an unknown site: exit 1" "$BIN/minicdnctl" -c "$T_DIR/ctl.conf" purge --site nosuch
t_check "named in the answer" grep -q "no site named 'nosuch'" <<<"$T_OUT"
n_a=$("$BIN/minicdnctl" -c "$T_DIR/ctl.conf" --json purge --site a 2>&1)
t_check "purge --site a alone empties site a (JSON: ok, purged >= 2)" python3 -c \
	'import json,sys; d=json.loads(sys.argv[1]); sys.exit(not (d[0]["ok"] and d[0]["purged"] >= 2))' "$n_a"
get /q -H 'Host: www.a.test'
t_check "a's /q is a miss after the whole-site purge" cs_has uri-miss
get /q -H 'Host: x.b.test'
t_check "b's objects survive a's whole-site purge" cs_has hit

t_stop edge # writes the access log out
# (Workers write their lines in batches: count, do not rely on the order.)
t_eq "the access log names the site of each /p request" "a=5 b=3" \
	"$(awk '$7 == "/p" && $9 == 200 {n[$NF]++} END {printf "a=%d b=%d", n["a"], n["b"]}' "$T_DIR/access.log")"
t_check "a 421 is logged with no site" sh -c "awk '\$9 == 421 {print \$NF}' '$T_DIR/access.log' | grep -qx -- -"
t_done
